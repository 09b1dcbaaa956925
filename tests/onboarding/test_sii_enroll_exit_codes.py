"""`manage.py sii_enroll`'s exit codes, one per failure class, as README.md's table documents them:
every typed failure of the bot is classified here on purpose (a new one fails the first test until
it is), the command exits with its class' code, and README's table lists exactly those codes."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

import sii_bot
from onboarding.management.commands import sii_enroll
from sii_bot import errors
from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

ROOT = Path(__file__).resolve().parents[2]

EXPECTED: dict[str, int] = {
    # 3: the SII refused the certificate or its holder
    "certificate_rejected": 3, "certificate_not_read": 3, "certificate_revoked": 3, "certificate_expired": 3,
    "certificate_issuer_not_accepted": 3, "certificate_invalid": 3, "holder_not_administrator": 3,
    "company_not_authorized": 3, "option_not_allowed": 3, "user_rut_invalid": 3, "permissions_unavailable": 3,
    # 4: session limits, retry no sooner than an hour
    "too_many_sessions": 4, "login_throttled": 4,
    # 5: transient
    "sii_unavailable": 5, "sii_outage": 5, "waf_rejected": 5, "session_expired": 5, "step_timeout": 5,
    "job_timeout": 5, "browser_crashed": 5,
    # 6: unexpected or a check that did not match: nothing saved blindly
    "unexpected_page": 6, "confirmation_mismatch": 6, "edit_screen_mismatch": 6, "verification_failed": 6,
    "user_still_present": 6, "delete_unavailable": 6, "replacement_incomplete": 6, "internal_error": 6,
    "cancelled": 6, "enrollment_failure": 6,
    # 7: no browser
    "browser_unavailable": 7, "server_certificate_untrusted": 7,
    # 8: the owner must act at the SII first
    "certificate_login_disabled": 8, "legal_representative_mismatch": 8, "authentication_locked": 8,
}


def make(code: str) -> errors.EnrollmentFailure:
    cls = errors.failure_from_code(code)
    if cls is errors.ReplacementIncomplete:
        return cls("old one still there", cause=None, addition=None)
    return cls("detail")


def test_every_failure_class_has_its_documented_exit_code() -> None:
    assert set(EXPECTED) == set(errors.FAILURE_CODES), "classify every failure code in EXPECTED"
    assert {code: sii_enroll.exit_code_for(make(code)) for code in EXPECTED} == EXPECTED


@pytest.fixture
def pfx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "admin.pfx"
    path.write_bytes(make_pfx(CertSpec(cn="MARIA JOSE SOTO", san_rut="12531909-2"), password="secreto"))
    monkeypatch.setenv("SII_PFX_PASSWORD", "secreto")
    return path


def run(pfx: Path, *extra: str) -> tuple[int, Any]:
    try:
        call_command("sii_enroll", "--pfx", str(pfx), "--company-rut", "76.086.428-5", "--user-rut", "13.322.924-8",
                     "--json", *extra)
    except SystemExit as stop:
        return int(stop.code or 0), stop
    return 0, None


@pytest.mark.parametrize("code", sorted(set(EXPECTED) - {"replacement_incomplete"}))
def test_the_command_exits_with_the_failure_s_code(pfx, monkeypatch, capsys, code) -> None:  # type: ignore[no-untyped-def]
    failure = make(code)

    def enroll(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(sii_bot, "enroll", enroll)
    exit_code, _ = run(pfx)
    assert exit_code == EXPECTED[code]
    out, err = capsys.readouterr()
    assert f'"error": "{code}"' in out and failure.user_message[:40] in err  # the Spanish message, one line


def test_usage_and_certificate_file_errors(pfx, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert run(pfx, "--permissions", "nada")[0] == 1
    monkeypatch.setenv("SII_PFX_PASSWORD", "incorrecta")
    assert run(pfx)[0] == 2


def test_readme_documents_exactly_these_exit_codes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("#### `sii_enroll` exit codes"):]
    section = section[: section.index("\n\n", section.index("| `8`"))]
    rows = re.findall(r"^\| `(\d)` \|", section, re.MULTILINE)
    assert rows == [str(n) for n in range(9)]
    for code, exit_code in EXPECTED.items():
        if code not in ("enrollment_failure", "cancelled", "replacement_incomplete", "internal_error"):
            row = re.search(rf"^\| `{exit_code}` \|.*$", section, re.MULTILINE).group(0)  # type: ignore[union-attr]
            assert f"`{code}`" in row, f"README: {code} belongs in the row of exit code {exit_code}"
