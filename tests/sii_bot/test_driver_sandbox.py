"""End-to-end: the bot drives headless Chromium against the SII sandbox (sii_sandbox).

One BrowserEngine (one Chromium) is shared by the whole module; the ``sandbox`` fixture resets the
sandbox's state, faults and configuration before every test. Screenshots are off except where a
test checks them (they cost ~80 ms per step).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sii_sandbox.server")

from sii_bot import (  # noqa: E402
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
from sii_bot.settings import default_chromium_path  # noqa: E402

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.browser,
    pytest.mark.skipif(default_chromium_path() is None, reason="no system Chromium (apt-get install -y chromium)"),
]

DEMO_COMPANY = "76086428-5"  # COMERCIAL DEMO SPA: demo holder is its administrator
SPARE_COMPANY = "76111111-6"  # EMPRESA DE PRUEBA 01 SPA: no users, demo holder administers it
USER = "11111111-1"  # JUAN PEREZ GONZALEZ, not yet a user of the demo company
EXISTING = "7880442-4"  # seeded in the demo company with sign + registry
HOLDER = "10345678-9"


@pytest.fixture(scope="module")
def engine() -> Iterator[BrowserEngine]:
    with BrowserEngine(name="sii-bot-test-browser") as shared:
        yield shared


def settings_for(sb: Any, **changes: Any) -> SiiSettings:
    base = SiiSettings.from_env(sb.env).replace(step_timeout_seconds=10, job_timeout_seconds=60, screenshots=False)
    return base.replace(**changes) if changes else base


def material(sb: Any, name: str = "demo") -> CertificateMaterial:
    entry = sb.pki[name]
    return open_pkcs12(Path(entry.path).read_bytes(), entry.password or "").material


def raw_material(sb: Any, name: str, *, chain: bool = True) -> CertificateMaterial:
    """PEM material straight from the PKI, bypassing open_pkcs12's checks (to see what SII's TLS says)."""
    entry = sb.pki[name]
    pem = Path(entry.cert_pem).read_bytes()
    end = b"-----END CERTIFICATE-----\n"
    certs = [c.strip() + b"\n" + end for c in pem.split(end.strip()) if b"BEGIN CERTIFICATE" in c]
    return CertificateMaterial(cert_pem=certs[0], key_pem=Path(entry.key_pem).read_bytes(),
                               chain_pem=b"".join(certs[1:]) if chain else b"")


class Run:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.result: EnrollmentResult | None = None
        self.failure: EnrollmentFailure | None = None

    def statuses(self) -> list[tuple[str, str]]:
        return [(e.step.value, e.status) for e in self.events if e.status != "started"]


def run(engine: BrowserEngine, sb: Any, *, company: str = DEMO_COMPANY, user: str = USER,
        permissions: str = "sign,registry", cert: CertificateMaterial | None = None,
        settings: SiiSettings | None = None) -> Run:
    outcome = Run()
    request = EnrollmentRequest(company, user, Permission.parse_list(permissions))
    try:
        outcome.result = engine.enroll(request, cert or material(sb), settings or settings_for(sb),
                                       on_progress=outcome.events.append)
    except EnrollmentFailure as failure:
        outcome.failure = failure
    return outcome


def flags(user: dict[str, Any]) -> tuple[bool, bool, bool]:
    return (user["admin"], user["sign"], user["registry"])


def users_by_rut(sb: Any, company: str = DEMO_COMPANY) -> dict[str, tuple[bool, bool, bool]]:
    return {u["rut"]: flags(u) for u in sb.users(company)}


def assert_logged_out(sb: Any) -> None:
    sessions = sb.state()["sessions"]
    assert all(entry["active"] == 0 for entry in sessions.values()), sessions


def assert_failed(outcome: Run, cls: type[EnrollmentFailure], step: Step) -> EnrollmentFailure:
    assert outcome.result is None, outcome.result
    failure = outcome.failure
    assert type(failure) is cls, repr(failure)
    assert failure is not None and failure.step == step.value, repr(failure)
    assert (step.value, "failed") in outcome.statuses()
    return failure


# ---------------------------------------------------------------------------------------------------
# Success on every page variant

VARIANTS = [
    {},
    {"login_entry": "password", "company_rut_screens": 2, "actions": "links"},
    {"login_response": "redirect", "layout": "alternate"},
    {"login_entry": "password", "layout": "alternate", "actions": "links"},
    {"company_rut_screens": 2, "login_response": "redirect", "layout": "alternate"},
    {"login_entry": "password", "company_rut_screens": 2, "actions": "links", "login_response": "redirect",
     "layout": "alternate", "require_client_chain": True},
]


@pytest.mark.parametrize("config", VARIANTS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_creates_user_on_every_variant(engine: BrowserEngine, sandbox: Any, config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    before = users_by_rut(sandbox)
    outcome = run(engine, sandbox)
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert result is not None and result.outcome == "created"
    record = result.record
    assert (record.company_rut, record.user_rut) == (DEMO_COMPANY, USER)
    assert (record.admin, record.sign, record.registry) == (False, True, True)
    assert record.company_name == "COMERCIAL DEMO SPA"
    assert record.user_name == "JUAN PEREZ GONZALEZ"
    assert record.authorized_by == "MARIA JOSE SOTO PEREZ"
    assert users_by_rut(sandbox) == {**before, USER: (False, True, True)}
    assert [e["action"] for e in sandbox.state()["log"]] == ["create"]
    assert_logged_out(sandbox)
    assert outcome.statuses() == [(s.value, "done") for s in Step]


def test_progress_events_and_screenshots(engine: BrowserEngine, sandbox: Any) -> None:
    outcome = run(engine, sandbox, company=SPARE_COMPANY, permissions="admin",
                  settings=settings_for(sandbox, screenshots=True))
    assert outcome.result is not None and outcome.result.outcome == "created"
    events = outcome.events
    # started/done pairs in guide order, Spanish messages, aware timestamps, PNGs on "done".
    assert [(e.step, e.status) for e in events] == [
        (step, status) for step in Step for status in ("started", "done")
    ]
    assert all(e.at.tzinfo is not None for e in events)
    assert all(e.screenshot is None or e.screenshot.startswith(b"\x89PNG") for e in events)
    # Evidence only: SII's confirmation and SII's result (each costs 50-150 ms); the list decided
    # nothing here (the user was not on it).
    assert {step for step, _ in outcome.result.screenshots} == {"confirm", "result"}
    assert {e.step.value for e in events if e.screenshot} == {"confirm", "result"}
    assert all(png.startswith(b"\x89PNG") for _, png in outcome.result.screenshots)
    text = " ".join(e.message for e in events)
    assert "certificado digital" in text and "demo1234" not in text and "PRIVATE KEY" not in text
    assert 0 < outcome.result.duration_seconds < 60


def test_every_step_screenshots_when_asked(engine: BrowserEngine, sandbox: Any) -> None:
    outcome = run(engine, sandbox, company=SPARE_COMPANY, permissions="admin",
                  settings=settings_for(sandbox, screenshots=True).replace(screenshot_every_step=True))
    assert outcome.result is not None and outcome.result.outcome == "created"
    assert {step for step, _ in outcome.result.screenshots} == {s.value for s in Step if s is not Step.LOGOUT}
    assert all(png.startswith(b"\x89PNG") for _, png in outcome.result.screenshots)


def test_already_authorized_saves_nothing(engine: BrowserEngine, sandbox: Any) -> None:
    before = users_by_rut(sandbox)
    assert before[EXISTING] == (False, True, True)
    outcome = run(engine, sandbox, user=EXISTING, permissions="registry,sign")
    assert outcome.result is not None and outcome.result.outcome == "already_authorized"
    assert outcome.result.record.user_rut == EXISTING
    assert users_by_rut(sandbox) == before
    assert sandbox.state()["log"] == []
    statuses = dict(outcome.statuses())
    assert statuses["save"] == "skipped" and statuses["result"] == "done"
    assert_logged_out(sandbox)


def test_already_authorized_keeps_the_list_as_evidence(engine: BrowserEngine, sandbox: Any) -> None:
    outcome = run(engine, sandbox, user=EXISTING, permissions="registry,sign",
                  settings=settings_for(sandbox, screenshots=True))
    assert outcome.result is not None and outcome.result.outcome == "already_authorized"
    # The list decided the outcome, so its screenshot is kept.
    assert "user_list" in {step for step, _ in outcome.result.screenshots}


@pytest.mark.parametrize("config", [{}, {"actions": "links", "layout": "alternate"}], ids=["buttons", "links-alt"])
def test_updates_existing_user(engine: BrowserEngine, sandbox: Any, config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    before = users_by_rut(sandbox)
    outcome = run(engine, sandbox, user=EXISTING, permissions="admin")
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "updated"
    record = outcome.result.record
    assert (record.user_rut, record.admin, record.sign, record.registry) == (EXISTING, True, False, False)
    assert users_by_rut(sandbox) == {**before, EXISTING: (True, False, False)}
    assert [e["action"] for e in sandbox.state()["log"]] == ["update"]  # never a delete
    assert dict(outcome.statuses())["confirm"] == "skipped"
    assert_logged_out(sandbox)


def test_user_added_meanwhile_is_detected(engine: BrowserEngine, sandbox: Any) -> None:
    # "Grabar Usuario" finds the user already there (someone else added it): the bot reads the list
    # again and reports it as already authorized, without saving twice.
    sandbox.set_faults(user_exists=True)
    outcome = run(engine, sandbox)
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "already_authorized"
    assert users_by_rut(sandbox)[USER] == (False, True, True)
    assert sandbox.state()["log"] == []
    assert_logged_out(sandbox)


def test_lower_case_k_holder(engine: BrowserEngine, sandbox: Any) -> None:
    outcome = run(engine, sandbox, company="76999999-K", cert=material(sandbox, "lowercase_k"), permissions="sign")
    assert outcome.result is not None and outcome.result.outcome == "created", repr(outcome.failure)
    assert outcome.result.record.company_rut == "76999999-K"


# ---------------------------------------------------------------------------------------------------
# Every fault ends in the right typed failure, with nothing saved


FAULTS: list[tuple[str, dict[str, Any], str, type[EnrollmentFailure], Step]] = [
    ("company_not_authorized", {"company_not_authorized": True}, DEMO_COMPANY, errors.CompanyNotAuthorized,
     Step.COMPANY),
    ("unknown_company", {}, "96874030-K", errors.CompanyNotAuthorized, Step.COMPANY),
    ("holder_not_admin", {"holder_not_admin": True}, DEMO_COMPANY, errors.HolderNotAdministrator, Step.COMPANY),
    ("foreign_company", {}, "77879240-0", errors.HolderNotAdministrator, Step.COMPANY),
    ("too_many_sessions", {"too_many_sessions": True}, DEMO_COMPANY, errors.TooManySessions, Step.LOGIN),
    ("login_throttled", {"login_throttled": True}, DEMO_COMPANY, errors.LoginThrottled, Step.LOGIN),
    ("waf_everywhere", {"waf": True}, DEMO_COMPANY, errors.WafRejected, Step.LOGIN),
    ("waf_f5_confirm", {"waf": ["eu_confirma_usuario"], "waf_style": "f5"}, DEMO_COMPANY, errors.WafRejected,
     Step.CONFIRM),
    ("generic_error_list", {"generic_error": ["eu_valida_empresa"]}, DEMO_COMPANY, errors.SiiUnavailable,
     Step.COMPANY),
    ("http500_save", {"http500_rate": 1.0, "http500_steps": ["eu_graba_usuario"]}, DEMO_COMPANY,
     errors.SiiUnavailable, Step.RESULT),
    ("http500_new_user", {"http500_rate": 1.0, "http500_steps": ["eu_ingresa_usuario"]}, DEMO_COMPANY,
     errors.SiiUnavailable, Step.NEW_USER),
    ("login_alert", {"login_alert": True}, DEMO_COMPANY, errors.CertificateRejected, Step.LOGIN),
    ("no_certificate", {"no_certificate": True}, DEMO_COMPANY, errors.CertificateRejected, Step.LOGIN),
    ("session_expiry", {"session_expiry_pages": 2}, DEMO_COMPANY, errors.SessionExpired, Step.NEW_USER),
]


@pytest.mark.parametrize(("name", "faults", "company", "cls", "step"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_ends_in_typed_failure(engine: BrowserEngine, sandbox: Any, name: str, faults: dict[str, Any],
                                     company: str, cls: type[EnrollmentFailure], step: Step) -> None:
    sandbox.set_faults(faults)
    before = sandbox.state()["companies"]
    outcome = run(engine, sandbox, company=company)
    failure = assert_failed(outcome, cls, step)
    assert failure.page_html, "the failing page's HTML is kept"
    assert failure.user_message and failure.code == cls.code
    after = sandbox.state()
    assert after["companies"] == before, "nothing may be saved"
    assert after["log"] == []
    assert_logged_out(sandbox)
    # Nothing after the failing step ran, except the logout.
    later = [s.value for s in Step][list(Step).index(step) + 1 : -1]
    assert not [e for e in outcome.events if e.step.value in later]


def test_failure_keeps_screenshot_when_enabled(engine: BrowserEngine, sandbox: Any) -> None:
    sandbox.set_faults(holder_not_admin=True)
    outcome = run(engine, sandbox, settings=settings_for(sandbox, screenshots=True))
    failure = assert_failed(outcome, errors.HolderNotAdministrator, Step.COMPANY)
    assert failure.screenshot is not None and failure.screenshot.startswith(b"\x89PNG")
    assert failure.sii_text and "no está autorizado para operar en la empresa" in failure.sii_text
    failed = [e for e in outcome.events if e.status == "failed"]
    assert failed[0].message == errors.HolderNotAdministrator.user_message
    assert failed[0].screenshot is not None


def test_confirmation_mismatch_never_saves(engine: BrowserEngine, sandbox: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Make the bot read the confirmation as showing another permission set than requested.
    import sii_bot.driver.enroll as driver

    real = driver.parse_confirmation

    def tampered(html: str) -> Any:
        record = real(html)
        return type(record)(**{**record.to_dict(), "admin": not record.admin})

    monkeypatch.setattr(driver, "parse_confirmation", tampered)
    before = users_by_rut(sandbox)
    outcome = run(engine, sandbox)
    failure = assert_failed(outcome, errors.ConfirmationMismatch, Step.CONFIRM)
    assert "nothing saved" in failure.detail
    assert users_by_rut(sandbox) == before and sandbox.state()["log"] == []
    assert not any(e.step is Step.SAVE for e in outcome.events)
    assert_logged_out(sandbox)


def test_sii_alert_on_user_form(engine: BrowserEngine, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Type a wrong check digit so SII's own form validation (alert) refuses it.
    import sii_bot.driver.enroll as driver

    real = driver.split_rut

    def wrong_dv(rut: str) -> tuple[str, str]:
        body, dv = real(rut)
        return (body, "0" if dv != "0" else "1") if rut == USER else (body, dv)

    monkeypatch.setattr(driver, "split_rut", wrong_dv)
    outcome = run(engine, sandbox)
    failure = assert_failed(outcome, errors.UserRutInvalid, Step.FILL_FORM)
    assert failure.sii_text == "RUT incorrecto según Módulo 11"
    assert sandbox.state()["log"] == []
    assert_logged_out(sandbox)


@pytest.mark.parametrize(
    ("name", "chain", "cls"),
    [("expired", True, errors.CertificateRejected), ("not_yet_valid", True, errors.CertificateRejected),
     ("unknown_ca", True, errors.CertificateRejected)],
)
def test_certificate_refused_in_tls(engine: BrowserEngine, sandbox: Any, name: str, chain: bool,
                                    cls: type[EnrollmentFailure]) -> None:
    outcome = run(engine, sandbox, cert=raw_material(sandbox, name, chain=chain))
    failure = assert_failed(outcome, cls, Step.LOGIN)
    assert failure.sii_text and "Playwright client-certificate error" in failure.sii_text
    assert sandbox.state()["sessions"] == {}


def test_untrusted_server_is_never_sent_the_certificate(engine: BrowserEngine, sandbox: Any) -> None:
    # Without the sandbox CA, the verifying proxy refuses the servers: no login happens at all.
    outcome = run(engine, sandbox, settings=settings_for(sandbox, ca_bundle=None))
    assert_failed(outcome, errors.ServerCertificateUntrusted, Step.LOGIN)
    assert sandbox.state()["sessions"] == {}


def test_slow_sii_times_out(engine: BrowserEngine, sandbox: Any) -> None:
    sandbox.configure(latency_ms=1500)
    outcome = run(engine, sandbox, settings=settings_for(sandbox, step_timeout_seconds=1))
    assert outcome.failure is not None and outcome.failure.code in ("step_timeout", "sii_unavailable")
    assert outcome.failure.retryable


def test_job_budget(engine: BrowserEngine, sandbox: Any) -> None:
    sandbox.configure(latency_ms=250)
    outcome = run(engine, sandbox, settings=settings_for(sandbox, job_timeout_seconds=1.5))
    assert type(outcome.failure) is errors.JobTimeout, repr(outcome.failure)
    assert sandbox.state()["log"] == []


def test_callback_error_stops_the_job(engine: BrowserEngine, sandbox: Any) -> None:
    class DatabaseDown(Exception):
        pass

    seen: list[ProgressEvent] = []

    def on_progress(event: ProgressEvent) -> None:
        seen.append(event)
        if event.step is Step.FILL_FORM:
            raise DatabaseDown

    request = EnrollmentRequest(DEMO_COMPANY, USER, Permission.parse_list("sign"))
    with pytest.raises(DatabaseDown):
        engine.enroll(request, material(sandbox), settings_for(sandbox), on_progress=on_progress)
    assert sandbox.state()["log"] == []
    assert_logged_out(sandbox)
    # The engine is still usable afterwards.
    assert run(engine, sandbox).result is not None


def test_missing_chromium_is_reported(sandbox: Any) -> None:
    with BrowserEngine() as engine:
        outcome = run(engine, sandbox, settings=settings_for(sandbox, chromium_path="/nonexistent/chromium"))
    assert type(outcome.failure) is errors.BrowserUnavailable
    assert "apt-get install -y chromium" in outcome.failure.detail
    assert "playwright install chromium" in outcome.failure.detail


@pytest.mark.parametrize(("permissions", "outcome_name"), [("sign,registry", "already_authorized"),
                                                           ("registry", "updated")])
def test_list_without_permission_columns_uses_edit_screen(engine: BrowserEngine, sandbox: Any,
                                                          monkeypatch: pytest.MonkeyPatch, permissions: str,
                                                          outcome_name: str) -> None:
    # Some lists may show only RUT and name: the bot then reads the permissions on the edit screen.
    import sii_bot.driver.session as driver

    real = driver.parse_user_list
    monkeypatch.setattr(driver, "parse_user_list",
                        lambda html: [type(u)(rut=u.rut, name=u.name) for u in real(html)])
    before = users_by_rut(sandbox)
    outcome = run(engine, sandbox, user=EXISTING, permissions=permissions)
    assert outcome.result is not None, repr(outcome.failure)
    assert outcome.result.outcome == outcome_name
    expected = (False, True, True) if outcome_name == "already_authorized" else (False, False, True)
    assert users_by_rut(sandbox) == {**before, EXISTING: expected}
    assert [e["action"] for e in sandbox.state()["log"]] == ([] if outcome_name == "already_authorized" else ["update"])
    assert_logged_out(sandbox)


def _descendants(prefix: str, *, leaders_only: bool = False) -> set[int]:
    """PIDs of processes started (indirectly) by this test process whose name starts with ``prefix``;
    with ``leaders_only``, not those whose parent has such a name too (one per browser or driver)."""
    import os

    parents: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
        names[int(entry.name)] = name
    found: set[int] = set()
    stack = [(os.getpid(), "")]
    while stack:
        pid, parent_name = stack.pop()
        for child in parents.get(pid, []):
            name = names.get(child, "")
            stack.append((child, name))
            if name.startswith(prefix) and not (leaders_only and parent_name.startswith(prefix)):
                found.add(child)
    return found


def test_engine_relaunches_a_dead_browser(sandbox: Any) -> None:
    import os
    import signal

    with BrowserEngine() as engine:
        before = _descendants("chrom")
        assert run(engine, sandbox, company=SPARE_COMPANY).result is not None
        ours = _descendants("chrom") - before
        # The browser's main process is the one whose parent is not itself a Chromium process.
        main = min(ours)
        os.kill(main, signal.SIGKILL)
        sandbox.reset()
        outcome = run(engine, sandbox, company=SPARE_COMPANY)
        assert outcome.result is not None and outcome.result.outcome == "created", repr(outcome.failure)


def test_progress_runs_in_caller_thread_and_jobs_from_two_threads_queue(engine: BrowserEngine,
                                                                         sandbox: Any) -> None:
    import threading

    results: dict[str, Any] = {}
    callback_threads: dict[str, set[int]] = {}

    def worker(company: str) -> None:
        callback_threads[company] = set()
        request = EnrollmentRequest(company, USER, Permission.parse_list("sign"))
        results[company] = engine.enroll(
            request, material(sandbox), settings_for(sandbox),
            on_progress=lambda event: callback_threads[company].add(threading.get_ident()),
        )
        results[company + ":thread"] = threading.get_ident()

    threads = [threading.Thread(target=worker, args=(c,)) for c in (SPARE_COMPANY, "76222222-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for company in (SPARE_COMPANY, "76222222-1"):
        assert results[company].outcome == "created"
        assert callback_threads[company] == {results[company + ":thread"]}
        assert users_by_rut(sandbox, company) == {USER: (False, True, False)}
    assert_logged_out(sandbox)


@pytest.mark.parametrize("max_jobs", [1, 2])
def test_one_browser_serves_as_many_jobs_at_once_as_allowed(sandbox: Any, max_jobs: int) -> None:
    import threading
    import time

    sandbox.configure(latency_ms=120)  # ~1 s per job: long enough to see two of them overlap
    companies = (SPARE_COMPANY, "76222222-1")
    spans: dict[str, tuple[float, float]] = {}
    results: dict[str, Any] = {}
    drivers_before, browsers_before = _descendants("node", leaders_only=True), _descendants("chrom", leaders_only=True)
    with BrowserEngine(max_jobs=max_jobs) as engine:
        seen: dict[str, list[float]] = {c: [] for c in companies}
        processes: list[tuple[set[int], set[int]]] = []

        def worker(company: str) -> None:
            request = EnrollmentRequest(company, USER, Permission.parse_list("sign"))

            def progress(event: Any) -> None:
                seen[company].append(time.monotonic())
                if event.step is Step.USER_LIST:
                    processes.append((_descendants("node", leaders_only=True) - drivers_before,
                                      _descendants("chrom", leaders_only=True) - browsers_before))

            results[company] = engine.enroll(request, material(sandbox), settings_for(sandbox), on_progress=progress)
            spans[company] = (seen[company][0], seen[company][-1])

        threads = [threading.Thread(target=worker, args=(c,)) for c in companies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    for company in companies:
        assert results[company].outcome == "created"
        assert users_by_rut(sandbox, company) == {USER: (False, True, False)}
    (start_a, end_a), (start_b, end_b) = spans[companies[0]], spans[companies[1]]
    overlapped = start_a < end_b and start_b < end_a
    assert overlapped is (max_jobs == 2), spans
    # Whether one after the other or side by side: one Playwright driver and one Chromium for both.
    assert processes and all(len(drivers) == 1 and len(browsers) == 1 for drivers, browsers in processes), processes
    assert_logged_out(sandbox)
