"""End-to-end: revocations, changes of representative and permission downgrades against the sandbox.

One BrowserEngine (one Chromium) for the whole module; the ``sandbox`` fixture resets the sandbox's
state, faults and configuration before every test. Every test compares ``sb.users(company)`` before
and after: only the RUTs the job is about may change, and every other user keeps its flags.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sii_sandbox.server")

from sii_bot import (
    BrowserEngine,
    CertificateMaterial,
    EnrollmentFailure,
    EnrollmentRequest,
    Permission,
    ProgressEvent,
    ReplacementIncomplete,
    ReplacementRequest,
    ReplacementResult,
    RevocationRequest,
    RevocationResult,
    SiiSettings,
    Step,
    errors,
    open_pkcs12,
)
from sii_bot.settings import default_chromium_path

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.browser,
    pytest.mark.skipif(default_chromium_path() is None, reason="no system Chromium (apt-get install -y chromium)"),
]

DEMO_COMPANY = "76086428-5"  # COMERCIAL DEMO SPA: the demo holder administers it
HOLDER = "10345678-9"  # seeded in the demo company with every permission
EXISTING = "7880442-4"  # seeded in the demo company with sign + registry
OLD = "14567890-0"  # MARCELA IGNACIA ROJAS DÍAZ: the old representative (added by each test)
NEW = "13322924-8"  # ALEX BRITO MARDONES: the firm's new representative, not yet a user
ABSENT = "10987654-2"  # FRANCISCO JAVIER LAGOS VERA: never a user of the demo company
SAVE_CGI = "eu_actualiza_usuario"  # the sandbox's CGI behind "Guardar Cambios" (update and delete)

LAYOUTS = [
    pytest.param({}, id="buttons-standard"),
    pytest.param({"actions": "links", "layout": "alternate"}, id="links-alternate"),
]


@pytest.fixture(scope="module")
def engine() -> Iterator[BrowserEngine]:
    with BrowserEngine(name="sii-bot-revoke-test-browser") as shared:
        yield shared


@pytest.fixture(scope="module")
def certificate(sandbox_server: Any) -> CertificateMaterial:
    entry = sandbox_server.pki["demo"]
    return open_pkcs12(Path(entry.path).read_bytes(), entry.password or "").material


def settings_for(sb: Any, **changes: Any) -> SiiSettings:
    base = SiiSettings.from_env(sb.env).replace(step_timeout_seconds=10, job_timeout_seconds=60, screenshots=False)
    return base.replace(**changes) if changes else base


class Run:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.result: Any = None
        self.failure: EnrollmentFailure | None = None

    def statuses(self) -> list[tuple[str, str]]:
        return [(e.step.value, e.status) for e in self.events if e.status != "started"]


def revoke(engine: BrowserEngine, sb: Any, cert: CertificateMaterial, user: str = OLD, *,
           company: str = DEMO_COMPANY, settings: SiiSettings | None = None) -> Run:
    outcome = Run()
    try:
        outcome.result = engine.revoke(RevocationRequest(company, user), cert, settings or settings_for(sb),
                                       on_progress=outcome.events.append)
    except EnrollmentFailure as failure:
        outcome.failure = failure
    return outcome


def replace(engine: BrowserEngine, sb: Any, cert: CertificateMaterial, *, new: str = NEW, old: str = OLD,
            permissions: str = "admin,sign", company: str = DEMO_COMPANY) -> Run:
    outcome = Run()
    request = ReplacementRequest(company, new, old, Permission.parse_list(permissions))
    try:
        outcome.result = engine.replace(request, cert, settings_for(sb), on_progress=outcome.events.append)
    except EnrollmentFailure as failure:
        outcome.failure = failure
    return outcome


def users(sb: Any, company: str = DEMO_COMPANY) -> dict[str, dict[str, Any]]:
    """Every user's whole record (flags, authorized_by, timestamps) by RUT."""
    return {u["rut"]: u for u in sb.users(company)}


def flags(user: dict[str, Any]) -> tuple[bool, bool, bool]:
    return (user["admin"], user["sign"], user["registry"])


def actions(sb: Any) -> list[tuple[str, str]]:
    return [(e["action"], e["user"] if isinstance(e["user"], str) else e["user"]["rut"]) for e in sb.state()["log"]]


def assert_logged_out(sb: Any) -> None:
    sessions = sb.state()["sessions"]
    assert sessions, "the job logged in"
    for entry in sessions.values():
        assert entry["logins"] == entry["logouts"] and entry["active"] == 0, sessions


def assert_only(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], *,
                gone: tuple[str, ...] = (), added: dict[str, tuple[bool, bool, bool]] | None = None) -> None:
    """``after`` is ``before`` minus ``gone`` plus ``added``; every other record is untouched."""
    added = added or {}
    assert set(after) == (set(before) - set(gone)) | set(added), (sorted(before), sorted(after))
    for rut, record in before.items():
        if rut not in gone and rut not in added:
            assert after[rut] == record, rut
    for rut, wanted in added.items():
        assert flags(after[rut]) == wanted, rut


# ---------------------------------------------------------------------------------------------------
# Revocation


@pytest.mark.parametrize("config", [
    *LAYOUTS,
    # Two company screens: the list is read again (VERIFY) through both of them too.
    pytest.param({"company_rut_screens": 2, "layout": "alternate", "login_response": "redirect"},
                 id="two-screens-buttons-alternate"),
])
def test_revoke_removes_exactly_the_user(engine: BrowserEngine, sandbox: Any, certificate: CertificateMaterial,
                                         config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True, sign=True, registry=True)
    before = users(sandbox)
    outcome = revoke(engine, sandbox, certificate)
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert isinstance(result, RevocationResult) and result.outcome == "revoked"
    assert_only(before, users(sandbox), gone=(OLD,))
    assert actions(sandbox) == [("delete", OLD)]
    assert (result.company_rut, result.user_rut, result.company_name) == (DEMO_COMPANY, OLD, "COMERCIAL DEMO SPA")
    assert result.removed is not None and (result.removed.admin, result.removed.sign) == (True, True)
    assert result.removed.name == "MARCELA IGNACIA ROJAS DÍAZ"
    assert result.sii_result is not None
    assert (result.sii_result.user_rut, result.sii_result.company_rut) == (OLD, DEMO_COMPANY)
    assert "eliminado satisfactoriamente" in result.sii_result.message
    assert result.confirm_text and "eliminar este usuario" in result.confirm_text
    assert result.final_entries == {OLD: None}
    assert result.to_dict()["final_entries"] == {OLD: None}
    assert outcome.statuses() == [(step.value, "done") for step in Step.flow("revoke")]
    assert_logged_out(sandbox)


def test_revoke_absent_user_saves_nothing_with_screenshots(engine: BrowserEngine, sandbox: Any,
                                                           certificate: CertificateMaterial) -> None:
    before = users(sandbox)
    outcome = revoke(engine, sandbox, certificate, ABSENT, settings=settings_for(sandbox, screenshots=True))
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert result.outcome == "not_present" and result.removed is None and result.sii_result is None
    assert result.final_entries == {ABSENT: None} and result.confirm_text is None
    assert users(sandbox) == before
    assert sandbox.state()["log"] == []
    statuses = dict(outcome.statuses())
    assert statuses == {"open_page": "done", "login": "done", "company": "done", "user_list": "done",
                        "open_edit": "skipped", "delete": "skipped", "verify": "done", "logout": "done"}
    assert {step for step, _ in result.screenshots} == {"user_list", "verify"}
    assert all(png.startswith(b"\x89PNG") for _, png in result.screenshots)
    assert_logged_out(sandbox)


REVOKE_FAULTS = [
    pytest.param({"http500_rate": 1.0, "http500_steps": ["eu_modifica_usuario"]}, errors.SiiUnavailable,
                 Step.OPEN_EDIT, id="http500-edit-screen"),
    pytest.param({"generic_error": [SAVE_CGI]}, errors.SiiUnavailable, Step.DELETE, id="generic-error-delete"),
]


@pytest.mark.parametrize(("faults", "cls", "step"), REVOKE_FAULTS)
def test_revoke_failure_is_typed_deletes_nothing_and_logs_out(
        engine: BrowserEngine, sandbox: Any, certificate: CertificateMaterial, faults: dict[str, Any],
        cls: type[EnrollmentFailure], step: Step) -> None:
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True)
    sandbox.set_faults(faults)
    before = users(sandbox)
    outcome = revoke(engine, sandbox, certificate)
    failure = outcome.failure
    assert type(failure) is cls and failure.step == step.value, repr(failure)
    assert failure.retryable and failure.page_html and failure.phase is None
    assert (step.value, "failed") in outcome.statuses()
    assert users(sandbox) == before and sandbox.state()["log"] == []
    assert_logged_out(sandbox)


def test_edit_screen_of_another_user_is_never_saved(engine: BrowserEngine, sandbox: Any,
                                                    certificate: CertificateMaterial,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from sii_bot.driver import session as driver

    real = driver.parse_edit_screen
    monkeypatch.setattr(driver, "parse_edit_screen",
                        lambda html: dataclasses.replace(real(html), user_ruts=(EXISTING,)))
    sandbox.add_user(DEMO_COMPANY, OLD, registry=True)
    before = users(sandbox)
    outcome = revoke(engine, sandbox, certificate)
    failure = outcome.failure
    assert type(failure) is errors.EditScreenMismatch and failure.step == "open_edit", repr(failure)
    assert isinstance(failure, errors.ConfirmationMismatch) and not failure.retryable
    assert not any(e.step is Step.DELETE and e.status != "skipped" for e in outcome.events)
    assert users(sandbox) == before and sandbox.state()["log"] == []
    assert_logged_out(sandbox)


def test_user_still_listed_after_delete_is_a_typed_failure(engine: BrowserEngine, sandbox: Any,
                                                           certificate: CertificateMaterial,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # SII answers "eliminado" but the list read again still shows the user.
    from sii_bot.driver import session as driver

    real = driver.parse_user_list
    calls: list[int] = []

    def stale(html: str) -> Any:
        calls.append(1)
        found = real(html)
        if len(calls) > 1 and all(u.rut != OLD for u in found):
            found.append(driver.SiiUser(rut=OLD, name="MARCELA", admin=True, sign=False, registry=False))
        return found

    monkeypatch.setattr(driver, "parse_user_list", stale)
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True)
    outcome = revoke(engine, sandbox, certificate)
    failure = outcome.failure
    assert type(failure) is errors.UserStillPresent and failure.step == "verify", repr(failure)
    assert failure.retryable and failure.page_html
    assert actions(sandbox) == [("delete", OLD)]
    assert_logged_out(sandbox)


def test_delete_that_sii_saves_as_a_modification_is_caught(engine: BrowserEngine, sandbox: Any,
                                                           certificate: CertificateMaterial,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The delete option does not take (here: never ticked): SII saves the user instead of deleting it.
    from sii_bot.driver import revoke as driver

    async def never_ticked(self: Any, name: str) -> None:
        return None

    monkeypatch.setattr(driver.RevokeFlow, "_tick_delete", never_ticked)
    sandbox.add_user(DEMO_COMPANY, OLD, sign=True)
    before = users(sandbox)
    outcome = revoke(engine, sandbox, certificate)
    failure = outcome.failure
    assert type(failure) is errors.UserStillPresent and failure.step == "delete", repr(failure)
    assert set(users(sandbox)) == set(before) and flags(users(sandbox)[OLD]) == (False, True, False)
    assert_logged_out(sandbox)


# ---------------------------------------------------------------------------------------------------
# Change of representative


@pytest.mark.parametrize("config", LAYOUTS)
def test_replace_adds_the_new_then_removes_the_old(engine: BrowserEngine, sandbox: Any,
                                                   certificate: CertificateMaterial, config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True, sign=True, registry=True)
    before = users(sandbox)
    outcome = replace(engine, sandbox, certificate)
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert isinstance(result, ReplacementResult) and result.outcome == "replaced"
    assert (result.add_outcome, result.remove_outcome) == ("created", "revoked")
    assert_only(before, users(sandbox), gone=(OLD,), added={NEW: (True, True, False)})
    assert actions(sandbox) == [("create", NEW), ("delete", OLD)]  # in that order
    record = result.addition.record
    assert (record.user_rut, record.admin, record.sign, record.registry) == (NEW, True, True, False)
    assert result.removal.sii_result is not None and result.removal.sii_result.user_rut == OLD
    assert set(result.final_entries) == {NEW, OLD} and result.final_entries[OLD] is None
    new_entry = result.final_entries[NEW]
    assert new_entry is not None and (new_entry.admin, new_entry.sign, new_entry.registry) == (True, True, False)
    assert outcome.statuses() == [(step.value, "done") for step in Step.flow("replace")]
    assert result.to_dict()["add_outcome"] == "created"
    assert_logged_out(sandbox)


@pytest.mark.parametrize(("faults", "cause"), [
    pytest.param({"http500_rate": 1.0, "http500_steps": [SAVE_CGI]}, errors.SiiUnavailable, id="http500"),
    pytest.param({"generic_error": [SAVE_CGI], "alt_layout": True}, errors.SiiUnavailable,
                 id="generic-error-alternate"),
])
def test_replace_interrupted_after_the_add_is_rerunnable(engine: BrowserEngine, sandbox: Any,
                                                         certificate: CertificateMaterial, faults: dict[str, Any],
                                                         cause: type[EnrollmentFailure]) -> None:
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True, sign=True)
    before = users(sandbox)
    sandbox.set_faults(faults)
    first = replace(engine, sandbox, certificate)
    failure = first.failure
    assert type(failure) is ReplacementIncomplete, repr(failure)
    assert failure.code == "replacement_incomplete" and failure.phase == "remove" and failure.step == "delete"
    assert type(failure.cause) is cause and failure.__cause__ is failure.cause
    assert failure.retryable and failure.retry_after_seconds == cause.retry_after_seconds
    assert failure.addition is not None and failure.addition.outcome == "created"
    assert "nuevo representante" in failure.user_message and "anterior" in failure.user_message
    data = failure.to_dict()
    assert (data["phase"], data["addition_outcome"], data["cause_code"]) == ("remove", "created", cause.code)
    # The new one is in place and the old one too: never neither.
    assert_only(before, users(sandbox), added={NEW: (True, True, False)})
    assert actions(sandbox) == [("create", NEW)]
    assert_logged_out(sandbox)

    sandbox.clear_faults()
    second = replace(engine, sandbox, certificate)
    assert second.failure is None, repr(second.failure)
    assert (second.result.add_outcome, second.result.remove_outcome) == ("already_authorized", "revoked")
    assert_only(before, users(sandbox), gone=(OLD,), added={NEW: (True, True, False)})
    assert actions(sandbox) == [("create", NEW), ("delete", OLD)]
    statuses = dict(second.statuses())
    assert statuses["save"] == "skipped" and statuses["delete"] == "done" and statuses["verify"] == "done"
    assert_logged_out(sandbox)


def test_replace_whose_add_fails_removes_nothing(engine: BrowserEngine, sandbox: Any,
                                                 certificate: CertificateMaterial) -> None:
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True)
    sandbox.set_faults(http500_rate=1.0, http500_steps=["eu_graba_usuario"])
    before = users(sandbox)
    outcome = replace(engine, sandbox, certificate)
    failure = outcome.failure
    assert type(failure) is errors.SiiUnavailable and failure.step == "result", repr(failure)
    assert failure.phase == "add" and failure.addition is None and failure.to_dict()["phase"] == "add"
    assert not any(e.step in (Step.OPEN_EDIT, Step.DELETE, Step.VERIFY) for e in outcome.events)
    assert users(sandbox) == before and sandbox.state()["log"] == []
    assert_logged_out(sandbox)


def test_replace_updates_an_existing_new_representative(engine: BrowserEngine, sandbox: Any,
                                                        certificate: CertificateMaterial) -> None:
    # The new representative was already a user with fewer permissions: updated, then the old removed.
    sandbox.configure(actions="links")
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True)
    sandbox.add_user(DEMO_COMPANY, NEW, registry=True)
    before = users(sandbox)
    outcome = replace(engine, sandbox, certificate, permissions="admin")
    assert outcome.failure is None, repr(outcome.failure)
    assert (outcome.result.add_outcome, outcome.result.remove_outcome) == ("updated", "revoked")
    assert_only(before, users(sandbox), gone=(OLD,), added={NEW: (True, False, False)})
    assert actions(sandbox) == [("update", NEW), ("delete", OLD)]
    assert_logged_out(sandbox)


def test_replace_when_old_is_gone_and_new_in_place_saves_nothing(engine: BrowserEngine, sandbox: Any,
                                                                 certificate: CertificateMaterial) -> None:
    sandbox.add_user(DEMO_COMPANY, NEW, admin=True, sign=True)
    before = users(sandbox)
    outcome = replace(engine, sandbox, certificate)
    assert outcome.failure is None, repr(outcome.failure)
    assert (outcome.result.add_outcome, outcome.result.remove_outcome) == ("already_authorized", "not_present")
    assert outcome.result.final_entries[OLD] is None and outcome.result.final_entries[NEW] is not None
    assert users(sandbox) == before and sandbox.state()["log"] == []
    assert_logged_out(sandbox)


def test_replace_when_old_is_gone_adds_the_new(engine: BrowserEngine, sandbox: Any,
                                               certificate: CertificateMaterial) -> None:
    before = users(sandbox)
    outcome = replace(engine, sandbox, certificate, permissions="registry")
    assert outcome.failure is None, repr(outcome.failure)
    assert (outcome.result.add_outcome, outcome.result.remove_outcome) == ("created", "not_present")
    assert_only(before, users(sandbox), added={NEW: (False, False, True)})
    assert actions(sandbox) == [("create", NEW)]
    statuses = dict(outcome.statuses())
    assert statuses["open_edit"] == "done" and statuses["delete"] == "skipped" and statuses["verify"] == "done"
    assert_logged_out(sandbox)


# ---------------------------------------------------------------------------------------------------
# Permission changes (the enrolment path's "updated"), downgrades included


@pytest.mark.parametrize("config", LAYOUTS)
def test_permission_downgrade_unchecks_boxes(engine: BrowserEngine, sandbox: Any, certificate: CertificateMaterial,
                                             config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True, sign=True, registry=True)
    before = users(sandbox)
    outcome = Run()
    request = EnrollmentRequest(DEMO_COMPANY, OLD, Permission.parse_list("registry"))
    try:
        outcome.result = engine.enroll(request, certificate, settings_for(sandbox), on_progress=outcome.events.append)
    except EnrollmentFailure as failure:
        outcome.failure = failure
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result.outcome == "updated"
    record = outcome.result.record
    assert (record.user_rut, record.admin, record.sign, record.registry) == (OLD, False, False, True)
    assert_only(before, users(sandbox), added={OLD: (False, False, True)})
    assert actions(sandbox) == [("update", OLD)]  # never a delete
    assert dict(outcome.statuses())["confirm"] == "skipped"
    assert_logged_out(sandbox)


# ---------------------------------------------------------------------------------------------------
# Edit screens the sandbox does not render: SII's delete mechanism is not documented, so the bot also
# handles a delete control of its own and a confirm() asked when the box is ticked.


def _delete_button(html: str) -> str:
    html = html.replace('<INPUT TYPE="checkbox" NAME="ELIMINAR" VALUE="S">',
                        '<INPUT TYPE="hidden" NAME="ELIMINAR" VALUE=""><INPUT TYPE="hidden" NAME="ACEPTAR" '
                        'VALUE="Guardar Cambios">')
    button = ('<INPUT TYPE="button" VALUE="Eliminar Usuario" onClick="if (confirm(\'¿Confirma que desea '
              'eliminar al usuario?\')) { document.form1.ELIMINAR.value = \'S\'; document.form1.submit(); }">')
    return html.replace('<INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Guardar Cambios">',
                        f'<INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Guardar Cambios"> {button}')


def _confirm_on_tick(html: str) -> str:
    html = html.replace('return confirm("¿Está seguro que desea eliminar este usuario de la empresa?");',
                        "return true;")
    return html.replace('<INPUT TYPE="checkbox" NAME="ELIMINAR" VALUE="S">',
                        '<INPUT TYPE="checkbox" NAME="ELIMINAR" VALUE="S" onClick="if (this.checked &amp;&amp; '
                        "!confirm('¿Desea eliminar al usuario?')) this.checked = false;\">")


def rewrite_pages(monkeypatch: pytest.MonkeyPatch, url_glob: str, transform: Any) -> list[str]:
    """Rewrite the HTML of the sandbox pages matching ``url_glob`` in every job context; returns the
    list of rewritten URLs."""
    from sii_bot.driver import session as driver

    real = driver.new_job_context
    rewritten: list[str] = []

    async def with_rewritten_pages(*args: Any, **kwargs: Any) -> Any:
        context = await real(*args, **kwargs)

        async def rewrite(route: Any) -> None:
            response = await route.fetch()
            page_html = transform((await response.body()).decode("latin-1"))
            rewritten.append(route.request.url)
            await route.fulfill(response=response, body=page_html.encode("latin-1"))

        await context.route(url_glob, rewrite)
        return context

    monkeypatch.setattr(driver, "new_job_context", with_rewritten_pages)
    return rewritten


@pytest.mark.parametrize(("transform", "confirm_text"), [
    pytest.param(_delete_button, "¿Confirma que desea eliminar al usuario?", id="delete-button"),
    pytest.param(_confirm_on_tick, "¿Desea eliminar al usuario?", id="confirm-on-tick"),
])
def test_revoke_on_other_edit_screens(engine: BrowserEngine, sandbox: Any, certificate: CertificateMaterial,
                                      monkeypatch: pytest.MonkeyPatch, transform: Any, confirm_text: str) -> None:
    rewritten = rewrite_pages(monkeypatch, "**/eu_modifica_usuario*", transform)
    sandbox.add_user(DEMO_COMPANY, OLD, admin=True, registry=True)
    before = users(sandbox)
    outcome = revoke(engine, sandbox, certificate)
    assert outcome.failure is None, repr(outcome.failure)
    assert rewritten, "the edit screen was rewritten"
    assert outcome.result.outcome == "revoked" and outcome.result.confirm_text == confirm_text
    assert_only(before, users(sandbox), gone=(OLD,))
    assert actions(sandbox) == [("delete", OLD)]
    assert_logged_out(sandbox)


def test_unrecognized_answer_to_the_deletion_is_settled_by_the_list(
        engine: BrowserEngine, sandbox: Any, certificate: CertificateMaterial,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # SII's wording after a deletion is unknown: an answer the bot cannot read is not a failure by
    # itself; the list read again decides.
    rewritten = rewrite_pages(monkeypatch, "**/eu_actualiza_usuario*", lambda html: re.sub(
        r"(?s)<BODY.*</BODY>|<body.*</body>",
        '<BODY><P><FONT SIZE="2">Operaci&oacute;n realizada.</FONT></P><A HREF="eu_enrola_usuarios">Volver</A></BODY>',
        html))
    sandbox.add_user(DEMO_COMPANY, OLD, sign=True)
    before = users(sandbox)
    outcome = revoke(engine, sandbox, certificate)
    assert outcome.failure is None, repr(outcome.failure)
    assert rewritten
    result = outcome.result
    assert result.outcome == "revoked" and result.sii_result is None and result.final_entries == {OLD: None}
    delete_done = next(e for e in outcome.events if e.step is Step.DELETE and e.status == "done")
    assert "se verificará en la lista" in delete_done.message
    assert_only(before, users(sandbox), gone=(OLD,))
    assert_logged_out(sandbox)
