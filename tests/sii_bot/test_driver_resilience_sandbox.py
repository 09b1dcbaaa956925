"""End-to-end: resilience inside one attempt, against the SII sandbox.

A page answered with HTTP 500 or SII's generic error is requested again within the attempt; a
session that expires mid-flow is logged into again and the flow resumes from the company step; a
save answered with an error is never submitted again blindly: the user list decides.

"Once" faults (the first request of one CGI fails) are made by wrapping the sandbox's
``Enrolment.run`` in the test (the page bodies are the sandbox's own); the probability fault
(``http500_rate``) and ``expire_sessions`` are the sandbox's public controls.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sii_sandbox.server")

from sii_bot import (
    BrowserEngine,
    CertificateMaterial,
    EnrollmentFailure,
    EnrollmentRequest,
    EnrollmentResult,
    Permission,
    ProgressEvent,
    SiiSettings,
    Step,
    errors,
    open_pkcs12,
)
from sii_bot.settings import default_chromium_path
from sii_sandbox import enrolment as sandbox_enrolment
from sii_sandbox import pages as sandbox_pages
from sii_sandbox.config import FAULTS
from sii_sandbox.handlers import TEXT_GENERIC

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.browser,
    pytest.mark.skipif(default_chromium_path() is None, reason="no system Chromium (apt-get install -y chromium)"),
]

DEMO_COMPANY = "76086428-5"  # COMERCIAL DEMO SPA: demo holder is its administrator
USER = "11111111-1"  # JUAN PEREZ GONZALEZ, not yet a user of the demo company
EXISTING = "7880442-4"  # seeded in the demo company with sign + registry
RETRY_PAGE = "Reintentando: el SII respondió con un error (1/3)."


@pytest.fixture(scope="module")
def engine() -> Iterator[BrowserEngine]:
    with BrowserEngine(name="sii-bot-resilience-browser") as shared:
        yield shared


def settings_for(sb: Any, **changes: Any) -> SiiSettings:
    base = SiiSettings.from_env(sb.env).replace(
        step_timeout_seconds=10, job_timeout_seconds=90, screenshots=False,
        transient_backoff_seconds=(0.05, 0.1, 0.2),
    )
    return base.replace(**changes) if changes else base


def material(sb: Any) -> CertificateMaterial:
    entry = sb.pki["demo"]
    return open_pkcs12(Path(entry.path).read_bytes(), entry.password or "").material


class Run:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.result: EnrollmentResult | None = None
        self.failure: EnrollmentFailure | None = None

    def messages(self) -> list[str]:
        return [e.message for e in self.events]

    def count(self, step: Step, status: str) -> int:
        return sum(1 for e in self.events if e.step is step and e.status == status)


def run(engine: BrowserEngine, sb: Any, *, user: str = USER, permissions: str = "sign,registry",
        settings: SiiSettings | None = None, on_event: Callable[[ProgressEvent], None] | None = None) -> Run:
    outcome = Run()

    def progress(event: ProgressEvent) -> None:
        outcome.events.append(event)
        if on_event is not None:
            on_event(event)

    request = EnrollmentRequest(DEMO_COMPANY, user, Permission.parse_list(permissions))
    try:
        outcome.result = engine.enroll(request, material(sb), settings or settings_for(sb), on_progress=progress)
    except EnrollmentFailure as failure:
        outcome.failure = failure
    return outcome


def creates(sb: Any) -> list[dict[str, Any]]:
    return [e for e in sb.state()["log"] if e["action"] == "create"]


def assert_logged_out(sb: Any) -> None:
    sessions = sb.state()["sessions"]
    assert all(entry["active"] == 0 for entry in sessions.values()), sessions


class Once:
    """Wraps the sandbox's ``Enrolment.run``: the first ``times`` requests of CGI ``step`` get ``fault``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, step: str, fault: Callable[[Any, Callable[[], None]], None],
                 times: int = 1) -> None:
        self.step, self.fault, self.left = step, fault, times
        self.calls: dict[str, int] = {}
        original = sandbox_enrolment.Enrolment.run
        wrapper = self

        def run(self: Any, step: str) -> None:
            wrapper.calls[step] = wrapper.calls.get(step, 0) + 1
            if step == wrapper.step and wrapper.left > 0:
                wrapper.left -= 1
                wrapper.fault(self, lambda: original(self, step))
                return
            original(self, step)

        monkeypatch.setattr(sandbox_enrolment.Enrolment, "run", run)


def http500(enrolment: Any, _original: Callable[[], None]) -> None:
    enrolment.html(sandbox_pages.http500_body(), 500)


def generic_error(enrolment: Any, _original: Callable[[], None]) -> None:
    enrolment.html(sandbox_pages.message_page(sandbox_pages.TITLE, [TEXT_GENERIC], back="history",
                                              code="01.01.209.500.709.21"))


def session_expires(enrolment: Any, _original: Callable[[], None]) -> None:
    # As the sandbox does for an expired session: the session is gone and the page sends to the login.
    enrolment.rt.store.expire_sessions(None)
    enrolment.h.send_redirect(enrolment.rt.login_redirect(enrolment.rt.origins["palena"] + enrolment.h.path))


def saved_then_http500(enrolment: Any, original: Callable[[], None]) -> None:
    # SII saved the user but answered the save with a server error.
    send = enrolment.html
    enrolment.html = lambda page, status=200: send(sandbox_pages.http500_body(), 500)
    original()


# ---------------------------------------------------------------------------------------------------
# A transient error on a page is requested again within the attempt


@pytest.mark.parametrize(
    ("cgi", "fault", "step"),
    [
        ("eu_valida_empresa", http500, Step.COMPANY),  # POST of the company form
        ("eu_ingresa_usuario", http500, Step.NEW_USER),  # "Ingresar Nuevo Usuario"
        ("eu_confirma_usuario", http500, Step.CONFIRM),  # POST of the new-user form
        ("eu_confirma_usuario", generic_error, Step.CONFIRM),
    ],
    ids=["500-company", "500-new-user", "500-confirm", "generic-confirm"],
)
def test_transient_error_on_a_page_is_retried_and_saves_once(engine: BrowserEngine, sandbox: Any,
                                                              monkeypatch: pytest.MonkeyPatch, cgi: str,
                                                              fault: Callable[..., None], step: Step) -> None:
    once = Once(monkeypatch, cgi, fault)
    outcome = run(engine, sandbox)
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "created"
    assert len(creates(sandbox)) == 1
    assert once.calls[cgi] == 2  # the failed request and its one retry
    assert once.calls["eu_graba_usuario"] == 1
    retries = [e for e in outcome.events if e.message.startswith("Reintentando")]
    assert [(e.step, e.status, e.message) for e in retries] == [(step, "started", RETRY_PAGE)]
    assert outcome.count(Step.SAVE, "started") == 1
    assert {u["rut"] for u in sandbox.users(DEMO_COMPANY)} >= {USER}
    assert_logged_out(sandbox)


def test_persistent_500_ends_the_attempt_after_three_retries(engine: BrowserEngine, sandbox: Any) -> None:
    sandbox.set_faults(http500_rate=1.0, http500_steps=["eu_ingresa_usuario"])
    outcome = run(engine, sandbox)
    assert type(outcome.failure) is errors.SiiUnavailable and outcome.failure.step == Step.NEW_USER.value
    retries = [e.message for e in outcome.events if e.message.startswith("Reintentando")]
    assert retries == [f"Reintentando: el SII respondió con un error ({n}/3)." for n in (1, 2, 3)]
    assert outcome.count(Step.NEW_USER, "failed") == 1
    assert creates(sandbox) == []
    assert_logged_out(sandbox)


# ---------------------------------------------------------------------------------------------------
# Session expiry: log in again and resume from the company step


@pytest.mark.parametrize(("cgi", "step"), [("eu_ingresa_usuario", Step.NEW_USER),
                                           ("eu_confirma_usuario", Step.CONFIRM),
                                           ("eu_graba_usuario", Step.RESULT)],
                         ids=["at-new-user", "at-confirm", "at-save"])
def test_session_expiry_mid_flow_logs_in_again_and_saves_once(engine: BrowserEngine, sandbox: Any,
                                                              monkeypatch: pytest.MonkeyPatch, cgi: str,
                                                              step: Step) -> None:
    once = Once(monkeypatch, cgi, session_expires)
    outcome = run(engine, sandbox)
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "created"
    assert len(creates(sandbox)) == 1
    assert outcome.count(Step.LOGIN, "done") == 2
    resumed = [e for e in outcome.events if e.message.startswith("Reintentando: la sesión del SII expiró")]
    assert len(resumed) == 1 and resumed[0].message.endswith("(1/3).")
    assert not [e for e in outcome.events if e.status == "failed"]
    # After the new login the flow went through the company and the list again.
    assert outcome.count(Step.COMPANY, "done") == 2 and outcome.count(Step.USER_LIST, "done") == 2
    assert once.calls.get("eu_graba_usuario") == (2 if cgi == "eu_graba_usuario" else 1)
    assert_logged_out(sandbox)


def test_session_expiring_again_and_again_ends_as_session_expired(engine: BrowserEngine, sandbox: Any) -> None:
    sandbox.set_faults(session_expiry_pages=2)
    outcome = run(engine, sandbox)
    assert type(outcome.failure) is errors.SessionExpired
    # The first login and one more (relogin_limit: SII throttles quick re-logins).
    assert outcome.count(Step.LOGIN, "done") == 2
    assert outcome.count(Step.NEW_USER, "failed") == 1
    assert creates(sandbox) == []
    assert_logged_out(sandbox)


# ---------------------------------------------------------------------------------------------------
# An error on the save: the list decides, never a blind second save


def test_error_on_save_reads_the_list_then_saves_since_nothing_was_saved(
        engine: BrowserEngine, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    once = Once(monkeypatch, "eu_graba_usuario", http500)
    outcome = run(engine, sandbox)
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "created"
    assert len(creates(sandbox)) == 1
    messages = outcome.messages()
    resume = ("Reintentando: el SII respondió con un error al grabar; revisaremos la lista de usuarios "
              "antes de volver a grabar (1/3).")
    assert resume in messages
    # The list was read before the second save (it did not show the user), never a replay of the POST.
    after = messages.index(resume)
    later = [(e.step, e.status) for e in outcome.events[after:]]
    assert later.index((Step.USER_LIST, "done")) < later.index((Step.SAVE, "started"))
    assert once.calls["eu_graba_usuario"] == 2 and once.calls["eu_confirma_usuario"] == 2
    assert not [e for e in outcome.events if e.status == "failed"]
    assert_logged_out(sandbox)


def test_save_that_went_through_despite_the_error_is_not_saved_again(
        engine: BrowserEngine, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    once = Once(monkeypatch, "eu_graba_usuario", saved_then_http500)
    outcome = run(engine, sandbox)
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert result is not None and result.outcome == "created"
    assert (result.record.user_rut, result.record.sign, result.record.registry, result.record.admin) == (
        USER, True, True, False)
    assert len(creates(sandbox)) == 1  # SII's one save; the bot never submitted another
    assert once.calls["eu_graba_usuario"] == 1
    assert outcome.count(Step.SAVE, "started") == 1
    final = [e for e in outcome.events if e.step is Step.RESULT and e.status == "done"]
    assert final[-1].message.startswith("El SII no mostró el resultado de la grabación, pero la lista")
    assert_logged_out(sandbox)


def test_error_on_saving_changes_reads_the_list_not_a_second_save(
        engine: BrowserEngine, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    once = Once(monkeypatch, "eu_actualiza_usuario", saved_then_http500)
    outcome = run(engine, sandbox, user=EXISTING, permissions="admin,sign,registry")
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "updated"
    updates = [e for e in sandbox.state()["log"] if e["action"] == "update"]
    assert len(updates) == 1 and once.calls["eu_actualiza_usuario"] == 1
    assert outcome.count(Step.SAVE, "started") == 1
    assert_logged_out(sandbox)


# ---------------------------------------------------------------------------------------------------
# Faults the sandbox does not model yet (the lead wires them after merging the sandbox work)


@pytest.mark.skipif("outage" not in FAULTS, reason="needs sandbox fault outage (redirect to /ayudas/ page)")
def test_outage_redirect_is_a_sii_outage_without_in_attempt_retries(engine: BrowserEngine, sandbox: Any) -> None:
    sandbox.set_faults(outage=True)
    outcome = run(engine, sandbox)
    assert type(outcome.failure) is errors.SiiOutage
    assert outcome.failure.retryable and outcome.failure.retry_after_seconds == 300
    assert not [e for e in outcome.events if e.message.startswith("Reintentando: el SII respondió")]
    assert creates(sandbox) == []


# SII's login messages by code, through the sandbox's login_alert fault (200 + alert('…') at login)

LOGIN_ALERTS = [
    (("Debe autenticarse con Clave Tributaria, NO con Certificado Digital. "
     "El código de este mensaje es 01.01.203.500.720.33"), errors.CertificateLoginDisabled, 0),
    (("El Certificado Digital que usted ha seleccionado para identificarse fue revocado por la entidad que "
     "lo emitió. El código de este mensaje es 01.01.203.500.720.35"), errors.CertificateRevoked, 0),
    (("Su Clave Tributaria se encuentra bloqueada por ingresos erróneos sucesivos. "
     "El código de este mensaje es 01.01.203.500.720.19"), errors.AuthenticationLocked, 0),
    # SII's advice for ...34 and ...38 is one more try: the bot makes it, within the attempt.
    ("Intente ingresar nuevamente su Certificado Digital. El código de este mensaje es 01.01.203.500.720.34",
     errors.CertificateNotRead, 1),
    ("Se recomienda cerrar el browser e intentar de nuevo. El código de este mensaje es 01.01.203.500.720.38",
     errors.CertificateInvalid, 1),
]


@pytest.mark.parametrize(("alert", "cls", "tries"), LOGIN_ALERTS, ids=[a[1].code for a in LOGIN_ALERTS])
def test_login_messages_end_in_their_typed_failure(engine: BrowserEngine, sandbox: Any, alert: str,
                                                   cls: type[EnrollmentFailure], tries: int) -> None:
    sandbox.set_faults(login_alert=alert)
    outcome = run(engine, sandbox)
    failure = outcome.failure
    assert type(failure) is cls and failure.step == Step.LOGIN.value, repr(failure)
    assert not failure.retryable and failure.needs_person
    assert failure.sii_text == alert
    again = [e for e in outcome.events
             if e.message == "Reintentando: el SII pidió presentar nuevamente el certificado digital."]
    assert len(again) == tries
    failed = [e for e in outcome.events if e.status == "failed"]
    assert [(e.step, e.message) for e in failed] == [(Step.LOGIN, cls.user_message)]
    assert creates(sandbox) == []


# ---------------------------------------------------------------------------------------------------
# The resilience figure, small: 20 % of the enrolment pages answer HTTP 500 and one session expires


def test_one_attempt_survives_20_percent_500s_and_a_session_expiry(engine: BrowserEngine, sandbox: Any) -> None:
    runs, completed = 10, 0
    rng = random.Random(17)
    for index in range(runs):
        sandbox.reset()
        sandbox.set_faults(http500_rate=0.2, seed=1000 + index)
        expire_at = rng.choice([Step.COMPANY, Step.USER_LIST, Step.NEW_USER, Step.FILL_FORM, Step.CONFIRM])
        fired: list[bool] = []

        def expire(event: ProgressEvent, at: Step = expire_at, fired: list[bool] = fired) -> None:
            if event.step is at and event.status == "started" and not fired:
                fired.append(True)
                sandbox.expire_sessions()

        outcome = run(engine, sandbox, on_event=expire)
        saves = len(creates(sandbox))
        assert saves == (1 if outcome.result is not None else 0), (index, outcome.failure)
        completed += outcome.result is not None and outcome.result.outcome == "created"
    # A run fails only when one page answers HTTP 500 four times in a row (0.2**4 per page, ~2 % a run,
    # as `python -m benchmarks --only resilience` measures over 100 runs); 8 of 10 keeps this test
    # from flaking while a broken retry (most runs failing) still fails it.
    assert completed >= 8, f"{completed}/{runs} attempts completed"
