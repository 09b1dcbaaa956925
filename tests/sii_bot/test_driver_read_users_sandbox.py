"""End-to-end: reading companies' authorized users in one SII session, against the sandbox.

The firm representative 13322924-8 (PKI "representative") is Usuario Administrador of 76777777-9 only;
the demo holder administers 76086428-5 (MIPYME) and 76543210-3 (market software, six attributes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sii_sandbox.server")

from sii_bot import (
    BrowserEngine,
    CertificateMaterial,
    CompanyUsersRead,
    ProgressEvent,
    SiiSettings,
    SiiUser,
    Step,
    UsersReadRequest,
    UsersReadResult,
    errors,
    open_pkcs12,
)
from sii_bot.rut import normalize_rut
from sii_bot.settings import default_chromium_path

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.browser,
    pytest.mark.skipif(default_chromium_path() is None, reason="no system Chromium (apt-get install -y chromium)"),
]

REPRESENTATIVE = "13322924-8"
REPRESENTED = "76777777-9"  # ASESORIAS DELEGADAS SPA: the representative is Usuario Administrador there
DEMO_COMPANY = "76086428-5"  # COMERCIAL DEMO SPA (MIPYME): the representative may not operate there
MARKET = "76543210-3"  # DISTRIBUIDORA FACTURA MERCADO SPA (market software): the demo holder administers it
MARCELA = "14567890-0"

ALEX_ADMIN = SiiUser(REPRESENTATIVE, "ALEX BRITO MARDONES", admin=True, sign=False, registry=False)
MARCELA_SIGN_REGISTRY = SiiUser(MARCELA, "MARCELA IGNACIA ROJAS DÍAZ", admin=False, sign=True, registry=True)


@pytest.fixture(scope="module")
def engine() -> Iterator[BrowserEngine]:
    with BrowserEngine(name="sii-bot-read-users-test") as shared:
        yield shared


def settings_for(sb: Any) -> SiiSettings:
    return SiiSettings.from_env(sb.env).replace(step_timeout_seconds=10, job_timeout_seconds=60, screenshots=False)


def material(sb: Any, name: str) -> CertificateMaterial:
    entry = sb.pki[name]
    return open_pkcs12(Path(entry.path).read_bytes(), entry.password or "").material


def read(engine: BrowserEngine, sb: Any, companies: list[str], *, cert: str = "representative",
         events: list[ProgressEvent] | None = None) -> UsersReadResult:
    return engine.read_users(UsersReadRequest(tuple(companies)), material(sb, cert), settings_for(sb),
                             on_progress=events.append if events is not None else None)


def holder_sessions(sb: Any, holder: str = REPRESENTATIVE) -> dict[str, Any]:
    return sb.state()["sessions"].get(holder, {"logins": 0, "logouts": 0, "active": 0})


def count_pages_per_session(sb: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Enrolment pages (palena requests with a live session) of every session, noted at its logout."""
    pages: list[int] = []
    store = sb.store
    real_end = store.end_session

    def end_session(token: str | None) -> Any:
        session = real_end(token)
        if session is not None:
            pages.append(session.pages)
        return session

    monkeypatch.setattr(store, "end_session", end_session)
    return pages


# ---------------------------------------------------------------------------------------------------


def test_representative_reads_his_company_and_fails_alone_elsewhere_in_one_login(
        engine: BrowserEngine, sandbox: Any) -> None:
    events: list[ProgressEvent] = []
    result = read(engine, sandbox, [DEMO_COMPANY, REPRESENTED, "96874030-K"], events=events)

    denied, own, not_issuer = result.per_company
    assert (denied.company_rut, denied.users, denied.company_name) == (DEMO_COMPANY, [], "")
    assert denied.failure is not None and denied.failure["code"] == "holder_not_administrator"
    assert denied.failure["user_message"] == errors.HolderNotAdministrator.user_message
    assert own == CompanyUsersRead(REPRESENTED, "ASESORIAS DELEGADAS SPA", [ALEX_ADMIN, MARCELA_SIGN_REGISTRY])
    # A MIPYME page shows three attributes: the other three are unknown, not "NO".
    assert (own.users[0].folios, own.users[0].annul, own.users[0].send) == (None, None, None)
    assert not_issuer.failure is not None and not_issuer.failure["code"] == "company_not_authorized"
    assert result.logins == 1 and not result.all_read
    sessions = holder_sessions(sandbox)
    assert (sessions["logins"], sessions["logouts"], sessions["active"]) == (1, 1, 0)
    assert sandbox.state()["saves"] == {} and sandbox.state()["log"] == []
    # Progress: one login, then company + list per company (each failure reported on its step), one logout.
    done = [(e.step, e.status) for e in events if e.status != "started"]
    assert done == [
        (Step.OPEN_PAGE, "done"), (Step.LOGIN, "done"),
        (Step.COMPANY, "failed"),
        (Step.COMPANY, "done"), (Step.USER_LIST, "done"),
        (Step.COMPANY, "failed"),
        (Step.LOGOUT, "done"),
    ]
    assert [e.message for e in events if e.step is Step.COMPANY and e.status == "started"] == [
        "Ingresando el RUT de la empresa 76.086.428-5.", "Ingresando el RUT de la empresa 76.777.777-9.",
        "Ingresando el RUT de la empresa 96.874.030-K."]


@pytest.mark.parametrize("config", [{}, {"layout": "alternate", "actions": "links", "company_rut_screens": 2}],
                         ids=["standard", "alternate-links-two-screens"])
def test_market_company_shows_six_attributes(engine: BrowserEngine, sandbox: Any, config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    result = read(engine, sandbox, [MARKET, DEMO_COMPANY], cert="demo")
    market, mipyme = result.per_company
    assert market == CompanyUsersRead(MARKET, "DISTRIBUIDORA FACTURA MERCADO SPA", [
        SiiUser("10345678-9", "MARIA JOSE SOTO PEREZ", admin=True, sign=True, registry=True,
                folios=True, annul=True, send=True),
        SiiUser("7880442-4", "ROSA ELENA ARAYA CASTRO", admin=False, sign=True, registry=False,
                folios=False, annul=False, send=True),
    ])
    assert mipyme == CompanyUsersRead(DEMO_COMPANY, "COMERCIAL DEMO SPA", [
        SiiUser("10345678-9", "MARIA JOSE SOTO PEREZ", admin=True, sign=True, registry=True),
        SiiUser("7880442-4", "ROSA ELENA ARAYA CASTRO", admin=False, sign=True, registry=True),
    ])
    assert result.logins == 1 and holder_sessions(sandbox, "10345678-9")["active"] == 0


def test_drift_through_the_control_api_shows_in_the_next_read(engine: BrowserEngine, sandbox: Any) -> None:
    import httpx

    assert read(engine, sandbox, [REPRESENTED]).per_company[0].users == [ALEX_ADMIN, MARCELA_SIGN_REGISTRY]
    control = sandbox.env["SANDBOX_CONTROL_URL"]
    changed = httpx.post(f"{control}/users/update",
                         json={"company": REPRESENTED, "rut": MARCELA, "attributes": {"FIRMAR": False, "SUP_USU": True}})
    assert changed.status_code == 200, changed.text
    added = httpx.post(f"{control}/users", json={"company": REPRESENTED, "rut": "11111111-1",
                                                 "attributes": {"CONSULTAR": True}})
    assert added.status_code == 200, added.text

    again = read(engine, sandbox, [REPRESENTED]).per_company[0]
    assert again.users == [
        ALEX_ADMIN,
        SiiUser("11111111-1", "JUAN PEREZ GONZALEZ", admin=False, sign=False, registry=True),
        SiiUser(MARCELA, "MARCELA IGNACIA ROJAS DÍAZ", admin=True, sign=False, registry=True),
    ]
    assert holder_sessions(sandbox)["logins"] == 2 and holder_sessions(sandbox)["active"] == 0


def test_refused_login_gives_every_company_its_failure_and_leaves_no_session(
        engine: BrowserEngine, sandbox: Any) -> None:
    sandbox.set_faults(too_many_sessions=True)
    result = read(engine, sandbox, [REPRESENTED, DEMO_COMPANY])
    assert result.logins == 0
    assert [(c.company_rut, c.users, c.failure["code"] if c.failure else None) for c in result.per_company] == [
        (REPRESENTED, [], "too_many_sessions"), (DEMO_COMPANY, [], "too_many_sessions")]
    assert result.per_company[0].failure is not None and result.per_company[0].failure["step"] == "login"
    assert holder_sessions(sandbox)["active"] == 0


def test_outage_after_the_login_ends_the_run_and_still_logs_out(engine: BrowserEngine, sandbox: Any) -> None:
    # SII's "servicio no disponible" from the company form submission on: the session is open.
    sandbox.set_faults(outage=["eu_valida_empresa"])
    result = read(engine, sandbox, [REPRESENTED, DEMO_COMPANY])
    assert [(c.company_rut, c.users, c.failure["code"] if c.failure else None) for c in result.per_company] == [
        (REPRESENTED, [], "sii_outage"), (DEMO_COMPANY, [], "sii_outage")]
    assert result.logins == 1
    sessions = holder_sessions(sandbox)
    assert (sessions["logins"], sessions["logouts"], sessions["active"]) == (1, 1, 0)


def test_session_lost_mid_run_ends_it_for_the_remaining_companies(
        engine: BrowserEngine, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = count_pages_per_session(sandbox, monkeypatch)
    # The session dies after 3 enrolment pages: the first company's form + list, then the way back to
    # the form; the second company's form submission meets the login again.
    sandbox.set_faults(session_expiry_pages=3, session_expiry_count=1)
    result = read(engine, sandbox, [REPRESENTED, DEMO_COMPANY, MARKET])
    first, second, third = result.per_company
    assert first == CompanyUsersRead(REPRESENTED, "ASESORIAS DELEGADAS SPA", [ALEX_ADMIN, MARCELA_SIGN_REGISTRY])
    assert [(c.company_rut, c.failure["code"] if c.failure else None) for c in (second, third)] == [
        (DEMO_COMPANY, "session_expired"), (MARKET, "session_expired")]
    assert result.logins == 1
    sessions = holder_sessions(sandbox)
    assert (sessions["logins"], sessions["active"]) == (1, 0)
    assert pages == []  # the session died in the sandbox: the logout found none to end


def test_twenty_companies_in_one_session_two_requests_each(
        engine: BrowserEngine, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    companies = [_company_rut(77000001 + i) for i in range(20)]
    for index, rut in enumerate(companies):
        sandbox.add_company(rut, f"CLIENTE {index + 1:02d} SPA", admins=[], layout="market" if index % 2 else "mipyme")
        sandbox.add_user(rut, REPRESENTATIVE, attributes={"SUP_USU": True})
        sandbox.add_user(rut, MARCELA, attributes={"FIRMAR": True, "ENVIAR": bool(index % 2)})
    pages = count_pages_per_session(sandbox, monkeypatch)

    result = read(engine, sandbox, companies)

    assert result.all_read and result.logins == 1
    for index, company in enumerate(result.per_company):
        market = bool(index % 2)
        unshown = None if not market else False
        assert company == CompanyUsersRead(companies[index], f"CLIENTE {index + 1:02d} SPA", [
            SiiUser(REPRESENTATIVE, "ALEX BRITO MARDONES", admin=True, sign=False, registry=False,
                    folios=unshown, annul=unshown, send=unshown),
            SiiUser(MARCELA, "MARCELA IGNACIA ROJAS DÍAZ", admin=False, sign=True, registry=False,
                    folios=unshown, annul=unshown, send=True if market else None),
        ]), index
    sessions = holder_sessions(sandbox)
    assert (sessions["logins"], sessions["logouts"], sessions["active"]) == (1, 1, 0)
    # SII pages requested in the session: the company form the login lands on, then per company the
    # form submission (which answers the list) and, from the second company on, the way back to the
    # form: 2 per company.
    assert pages == [2 * len(companies)]


def _company_rut(body: int) -> str:
    """The RUT with ``body`` and its Módulo 11 check digit."""
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    check = 11 - total % 11
    return normalize_rut(f"{body}-{'0' if check == 11 else 'K' if check == 10 else check}")


def test_the_pause_between_companies_spaces_them_out(engine: BrowserEngine, sandbox: Any) -> None:
    events: list[ProgressEvent] = []
    settings = settings_for(sandbox).replace(company_pause_seconds=0.6)
    result = engine.read_users(UsersReadRequest((REPRESENTED, DEMO_COMPANY, "96874030-K")),
                               material(sandbox, "representative"), settings, on_progress=events.append)
    assert result.per_company[0].ok and result.logins == 1
    starts = [e.at for e in events if e.step is Step.COMPANY and e.status == "started"]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(starts, starts[1:])]
    assert len(gaps) == 2 and all(gap >= 0.6 for gap in gaps), gaps
