"""End-to-end: the six SII attributes and the edit of an existing user, against the SII sandbox.

A market-software company (76543210-3) offers six checkboxes, a MIPYME one (76086428-5) three. The
bot ticks exactly the requested attributes the page offers, reports the others, checks the
confirmation row by row, and changes an existing user through "Modificar" / "Guardar Cambios"
touching only the attributes the firm manages; the user list, read again, is the proof. What SII
saved is read from the sandbox's ``saves`` (writes made through the pages).
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

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.browser,
    pytest.mark.skipif(default_chromium_path() is None, reason="no system Chromium (apt-get install -y chromium)"),
]

MARKET = "76543210-3"  # DISTRIBUIDORA FACTURA MERCADO SPA: six checkboxes
MIPYME = "76086428-5"  # COMERCIAL DEMO SPA: three checkboxes
USER = "11111111-1"  # JUAN PEREZ GONZALEZ: a user of neither
EXISTING = "7880442-4"  # market: Firmar + Enviar; MIPYME: Firmar + Registro
P = Permission
SIX = frozenset(Permission)
KEYS = ("admin", "folios", "annul", "sign", "send", "registry")


@pytest.fixture(scope="module")
def engine() -> Iterator[BrowserEngine]:
    with BrowserEngine(name="sii-bot-attributes-browser") as shared:
        yield shared


def settings_for(sb: Any) -> SiiSettings:
    return SiiSettings.from_env(sb.env).replace(step_timeout_seconds=10, job_timeout_seconds=90, screenshots=False,
                                                transient_backoff_seconds=(0.05, 0.1, 0.2))


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


def run(engine: BrowserEngine, sb: Any, company: str, user: str, permissions: frozenset[Permission], *,
        managed: frozenset[Permission] = SIX) -> Run:
    outcome = Run()
    request = EnrollmentRequest(company, user, permissions, managed)
    try:
        outcome.result = engine.enroll(request, material(sb), settings_for(sb), on_progress=outcome.events.append)
    except EnrollmentFailure as failure:
        outcome.failure = failure
    return outcome


def attributes(sb: Any, company: str, user: str) -> dict[str, bool]:
    entry = next(u for u in sb.users(company) if u["rut"] == user)
    return {key: entry[key] for key in KEYS}


def only(*on: str) -> dict[str, bool]:
    return {key: key in on for key in KEYS}


def saves(sb: Any) -> dict[str, dict[str, int]]:
    return sb.state()["saves"]


def assert_logged_out(sb: Any) -> None:
    assert all(entry["active"] == 0 for entry in sb.state()["sessions"].values())


def unavailable_message(label: str) -> str:
    return f"El SII no ofrece «{label}» para esta empresa (sistema MIPYME)."


# ---------------------------------------------------------------------------------------------------
# New users


@pytest.mark.parametrize("config", [{}, {"actions": "links", "layout": "alternate"}], ids=["buttons", "links-alt"])
def test_market_company_gets_all_six_with_one_save(engine: BrowserEngine, sandbox: Any,
                                                    config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    outcome = run(engine, sandbox, MARKET, USER, SIX)
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert result is not None and result.outcome == "created"
    assert result.offered_permissions == SIX and result.unavailable_permissions == frozenset()
    assert {p: result.record.flag(p) for p in Permission} == dict.fromkeys(Permission, True)
    assert attributes(sandbox, MARKET, USER) == only(*KEYS)
    assert saves(sandbox) == {MARKET: {USER: 1}}
    assert not [m for m in outcome.messages() if m.startswith("El SII no ofrece")]
    assert_logged_out(sandbox)


def test_mipyme_company_gets_the_three_it_offers_and_reports_the_others(engine: BrowserEngine,
                                                                         sandbox: Any) -> None:
    outcome = run(engine, sandbox, MIPYME, USER, SIX)
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert result is not None and result.outcome == "created"
    assert result.offered_permissions == {P.ADMIN, P.SIGN, P.REGISTRY}
    assert result.unavailable_permissions == {P.FOLIOS, P.ANNUL, P.SEND}
    assert result.to_dict()["unavailable_permissions"] == ["annul", "folios", "send"]
    record = result.record
    assert (record.admin, record.sign, record.registry, record.folios, record.annul, record.send) == (
        True, True, True, None, None, None)
    reported = [(e.step, e.status, e.message) for e in outcome.events if e.message.startswith("El SII no ofrece")]
    assert reported == [(Step.FILL_FORM, "started", unavailable_message(label))
                        for label in ("Solicitar Folios", "Anular Documentos", "Enviar Documentos")]
    assert attributes(sandbox, MIPYME, USER) == only("admin", "sign", "registry")
    assert saves(sandbox) == {MIPYME: {USER: 1}}
    assert_logged_out(sandbox)


def test_nothing_requested_offered_is_a_typed_failure_and_saves_nothing(engine: BrowserEngine,
                                                                         sandbox: Any) -> None:
    outcome = run(engine, sandbox, MIPYME, USER, frozenset({P.SEND, P.FOLIOS}))
    failure = outcome.failure
    assert type(failure) is errors.PermissionsUnavailable and failure.step == Step.FILL_FORM.value, repr(failure)
    assert failure.needs_person and not failure.retryable
    assert outcome.count(Step.FILL_FORM, "failed") == 1 and outcome.count(Step.SAVE, "started") == 0
    assert saves(sandbox) == {} and USER not in {u["rut"] for u in sandbox.users(MIPYME)}
    assert_logged_out(sandbox)


@pytest.mark.parametrize(
    ("requested", "tamper", "difference"),
    [
        (SIX, {"send": False}, "ENVIAR shown NO, expected SI"),  # a requested attribute shown NO
        (frozenset({P.SIGN}), {"annul": True}, "ANULAR shown SI, expected NO"),  # an extra one shown SI
    ],
    ids=["requested-shown-no", "unrequested-shown-si"],
)
def test_confirmation_that_differs_row_by_row_saves_nothing(engine: BrowserEngine, sandbox: Any,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             requested: frozenset[Permission],
                                                             tamper: dict[str, bool], difference: str) -> None:
    # The sandbox's confirmation page shows one row unlike what was submitted.
    real = sandbox_pages.confirm_page

    def tampered(company: Any, record: Any, *args: Any, **kwargs: Any) -> str:
        return real(company, {**record, **tamper}, *args, **kwargs)

    monkeypatch.setattr(sandbox_pages, "confirm_page", tampered)
    outcome = run(engine, sandbox, MARKET, USER, requested)
    failure = outcome.failure
    assert type(failure) is errors.ConfirmationMismatch and failure.step == Step.CONFIRM.value, repr(failure)
    assert difference in failure.detail and "nothing saved" in failure.detail
    assert outcome.count(Step.SAVE, "started") == 0
    assert saves(sandbox) == {} and USER not in {u["rut"] for u in sandbox.users(MARKET)}
    assert_logged_out(sandbox)


# ---------------------------------------------------------------------------------------------------
# Existing users: "Modificar" / "Guardar Cambios"


@pytest.mark.parametrize("config", [{}, {"actions": "links", "layout": "alternate"}], ids=["buttons", "links-alt"])
def test_existing_user_is_updated_and_unmanaged_attributes_are_untouched(engine: BrowserEngine, sandbox: Any,
                                                                          config: dict[str, Any]) -> None:
    sandbox.configure(**config)
    # Before: admin, annul, sign, send, registry; the firm manages admin, folios, sign and send and asks
    # for folios, sign and send. Admin goes off, folios on; annul and registry are not the firm's.
    sandbox.update_user(MARKET, EXISTING, admin=True, annul=True, registry=True)
    managed = frozenset({P.ADMIN, P.FOLIOS, P.SIGN, P.SEND})
    outcome = run(engine, sandbox, MARKET, EXISTING, frozenset({P.FOLIOS, P.SIGN, P.SEND}), managed=managed)
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert result is not None and result.outcome == "updated"
    assert attributes(sandbox, MARKET, EXISTING) == only("folios", "annul", "sign", "send", "registry")
    assert saves(sandbox) == {MARKET: {EXISTING: 1}}
    assert [e["action"] for e in sandbox.state()["log"]] == ["update"]
    # Verified on the list read again after the save.
    assert result.previous is not None and (result.previous.admin, result.previous.folios) == (True, False)
    final = result.final_entry
    assert final is not None and {key: getattr(final, key) for key in KEYS} == only(
        "folios", "annul", "sign", "send", "registry")
    assert outcome.count(Step.USER_LIST, "done") == 1 and outcome.count(Step.COMPANY, "done") == 1
    assert ("La lista de usuarios autorizados muestra al usuario con exactamente los permisos solicitados."
            in outcome.messages())
    statuses = [(e.step, e.status) for e in outcome.events if e.status != "started"]
    assert (Step.CONFIRM, "skipped") in statuses and (Step.SAVE, "done") in statuses
    record = result.record
    assert {key: getattr(record, key) for key in KEYS} == only("folios", "annul", "sign", "send", "registry")
    assert_logged_out(sandbox)


def test_list_that_disagrees_after_guardar_cambios_is_a_verification_failure(
        engine: BrowserEngine, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # SII answers the change as saved, but the list read again shows Enviar Documentos off.
    real = sandbox_enrolment.Enrolment.eu_actualiza_usuario

    def saved_then_drift(self: Any) -> None:
        real(self)
        sandbox.update_user(MARKET, EXISTING, send=False)

    monkeypatch.setattr(sandbox_enrolment.Enrolment, "eu_actualiza_usuario", saved_then_drift)
    outcome = run(engine, sandbox, MARKET, EXISTING, frozenset({P.SIGN, P.SEND, P.FOLIOS}))
    failure = outcome.failure
    assert type(failure) is errors.VerificationFailed and failure.step == Step.RESULT.value, repr(failure)
    assert "ENVIAR listed NO, expected SI" in failure.detail
    assert saves(sandbox) == {MARKET: {EXISTING: 1}}
    assert outcome.count(Step.SAVE, "started") == 1
    assert_logged_out(sandbox)


def test_existing_user_with_exactly_the_managed_attributes_saves_nothing(engine: BrowserEngine,
                                                                          sandbox: Any) -> None:
    before = attributes(sandbox, MARKET, EXISTING)
    assert before == only("sign", "send")
    outcome = run(engine, sandbox, MARKET, EXISTING, frozenset({P.SIGN, P.SEND}))
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "already_authorized"
    assert outcome.result.unavailable_permissions == frozenset()
    assert attributes(sandbox, MARKET, EXISTING) == before
    assert saves(sandbox) == {}
    assert outcome.count(Step.SAVE, "skipped") == 1 and outcome.count(Step.SAVE, "started") == 0
    assert_logged_out(sandbox)


def test_mipyme_exact_match_with_an_unavailable_request_saves_nothing(engine: BrowserEngine, sandbox: Any) -> None:
    # The list shows three attributes of six managed: the edit screen decides, and nothing is saved.
    outcome = run(engine, sandbox, MIPYME, EXISTING, frozenset({P.SIGN, P.REGISTRY, P.SEND}))
    assert outcome.failure is None, repr(outcome.failure)
    result = outcome.result
    assert result is not None and result.outcome == "already_authorized"
    assert result.unavailable_permissions == {P.SEND}
    assert unavailable_message("Enviar Documentos") in outcome.messages()
    assert saves(sandbox) == {}
    assert_logged_out(sandbox)


@pytest.mark.parametrize("answer", ["generic", "http500"])
def test_error_after_guardar_cambios_reads_the_list_and_never_saves_twice(engine: BrowserEngine, sandbox: Any,
                                                                          answer: str) -> None:
    sandbox.set_faults(error_after_save=[MARKET], error_after_save_answer=answer)
    outcome = run(engine, sandbox, MARKET, EXISTING, SIX)
    assert outcome.failure is None, repr(outcome.failure)
    assert outcome.result is not None and outcome.result.outcome == "updated"
    assert attributes(sandbox, MARKET, EXISTING) == only(*KEYS)
    assert saves(sandbox) == {MARKET: {EXISTING: 1}}
    assert outcome.count(Step.SAVE, "started") == 1
    resume = ("Reintentando: el SII respondió con un error al grabar; revisaremos la lista de usuarios "
              "antes de volver a grabar (1/3).")
    assert resume in outcome.messages()
    final = [e for e in outcome.events if e.step is Step.RESULT and e.status == "done"]
    assert final[-1].message.startswith("El SII no mostró el resultado de la grabación, pero la lista")
    assert not [e for e in outcome.events if e.status == "failed"]
    assert_logged_out(sandbox)
