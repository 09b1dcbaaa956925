"""End-to-end: every certificate-login refusal the sandbox models as a page (SII's wording and
"El código de este mensaje es 01.01.190.500.720.NN", the sandbox's `login_error` fault) ends the real
bot's attempt in its own typed failure, with its Spanish message and retry policy, nothing saved.
The alert form of some of them is in test_driver_resilience_sandbox.py."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("sii_sandbox.server")

from sii_bot import EnrollmentFailure, Step, errors
from tests.sii_bot.test_driver_resilience_sandbox import creates, engine, run  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.sandbox, pytest.mark.browser]

# SII's code (last two digits) → the failure the bot reports.
CASES: list[tuple[int, type[EnrollmentFailure]]] = [
    (27, errors.TooManySessions),
    (33, errors.CertificateLoginDisabled),
    (34, errors.CertificateNotRead),
    (35, errors.CertificateRevoked),
    (36, errors.CertificateExpired),
    (37, errors.CertificateIssuerNotAccepted),
    (38, errors.CertificateInvalid),
    (41, errors.LegalRepresentativeMismatch),
    (9, errors.AuthenticationLocked),
    (19, errors.AuthenticationLocked),
    (49, errors.AuthenticationLocked),
    (55, errors.AuthenticationLocked),
]


@pytest.mark.parametrize(("code", "cls"), CASES, ids=[f"{c:02d}-{k.code}" for c, k in CASES])
def test_login_refusal_page_ends_in_its_typed_failure(engine: Any, sandbox: Any, code: int,  # noqa: F811
                                                      cls: type[EnrollmentFailure]) -> None:
    sandbox.set_faults(login_error=code)
    outcome = run(engine, sandbox)
    failure = outcome.failure
    assert type(failure) is cls and failure.step == Step.LOGIN.value, repr(failure)
    assert failure.user_message == cls.user_message
    if cls is errors.TooManySessions:
        assert failure.retryable and failure.retry_after_seconds >= 3600 and not failure.needs_person
    else:
        assert not failure.retryable and failure.needs_person
    assert failure.sii_text  # the SII's own words, kept for staff
    assert creates(sandbox) == []
