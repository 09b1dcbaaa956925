"""Tests for sii_bot.models, the browser helpers and the engine's non-browser behaviour."""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path

import pytest

from sii_bot import errors
from sii_bot.browser import CHROMIUM_ARGS, driver_environment, origin_of, verified_origins
from sii_bot.certificates import CertificateMaterial
from sii_bot.engine import BrowserEngine
from sii_bot.models import (
    EnrollmentRequest,
    EnrollmentResult,
    Permission,
    ProgressEvent,
    ReplacementRequest,
    SiiUserRecord,
    Step,
)
from sii_bot.rut import InvalidRut
from sii_bot.settings import SiiSettings


def test_permission_fields_and_labels() -> None:
    assert [p.value for p in Permission] == ["admin", "sign", "registry", "folios", "annul", "send"]
    assert [p.field_name for p in Permission] == ["SUP_USU", "FIRMAR", "CONSULTAR", "OBTENER", "ANULAR", "ENVIAR"]
    assert [p.label for p in Permission] == ["Usuario Administrador", "Firmar Documentos", "Registro",
                                             "Solicitar Folios", "Anular Documentos", "Enviar Documentos"]
    assert "Consulta" in Permission.REGISTRY.labels and "Consulta/Registro" in Permission.REGISTRY.labels
    assert "Anular Folios" in Permission.ANNUL.labels and "Anular" in Permission.ANNUL.labels
    assert [Permission.from_field(name) for name in ("obtener", "ENVIAR", "XX")] == [Permission.FOLIOS, Permission.SEND,
                                                                                     None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("admin,sign,registry", {Permission.ADMIN, Permission.SIGN, Permission.REGISTRY}),
        (" Sign , REGISTRY ", {Permission.SIGN, Permission.REGISTRY}),
        ("SUP_USU,firmar", {Permission.ADMIN, Permission.SIGN}),
        ("Registro,,", {Permission.REGISTRY}),
        (["admin", "admin"], {Permission.ADMIN}),
        ("OBTENER,anular folios,Enviar Documentos", {Permission.FOLIOS, Permission.ANNUL, Permission.SEND}),
        ("Consulta,annul,send,folios", {Permission.REGISTRY, Permission.ANNUL, Permission.SEND, Permission.FOLIOS}),
    ],
)
def test_parse_list(text: str, expected: set[Permission]) -> None:
    assert Permission.parse_list(text) == frozenset(expected)


@pytest.mark.parametrize("text", ["", " , ", "root", "admin,superuser"])
def test_parse_list_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="(?i)permiso"):
        Permission.parse_list(text)


def test_enrollment_request_normalizes() -> None:
    request = EnrollmentRequest("76.086.428-5", "11.111.111-1", Permission.parse_list("sign,registry"))
    assert (request.company_rut, request.user_rut) == ("76086428-5", "11111111-1")
    assert request.flags() == {"admin": False, "sign": True, "registry": True, "folios": False, "annul": False,
                               "send": False}
    assert request.managed == frozenset(Permission)
    assert request.wanted() == {p: p in (Permission.SIGN, Permission.REGISTRY) for p in Permission}
    assert request.to_dict() == {"company_rut": "76086428-5", "user_rut": "11111111-1",
                                 "permissions": ["registry", "sign"],
                                 "managed": ["admin", "annul", "folios", "registry", "send", "sign"]}
    assert EnrollmentRequest("76086428-5", "11111111-1", "admin").admin  # type: ignore[arg-type]


def test_enrollment_request_rejects() -> None:
    with pytest.raises(InvalidRut):
        EnrollmentRequest("76086428-4", "11111111-1", frozenset({Permission.SIGN}))
    with pytest.raises(InvalidRut, match="persona natural"):
        EnrollmentRequest("76086428-5", "77879240-0", frozenset({Permission.SIGN}))
    with pytest.raises(ValueError):
        EnrollmentRequest("76086428-5", "11111111-1", frozenset())
    # A requested attribute the firm does not manage is a contradiction, said in Spanish.
    with pytest.raises(ValueError, match="no administra: Enviar Documentos"):
        EnrollmentRequest("76086428-5", "11111111-1", frozenset({Permission.SEND, Permission.SIGN}),
                          managed=frozenset({Permission.SIGN, Permission.REGISTRY}))


def test_enrollment_result_reports_offered_and_unavailable_attributes() -> None:
    record = SiiUserRecord("X SPA", "76086428-5", "11111111-1", "JUAN", True, True, True, "ANA")
    assert (record.folios, record.annul, record.send) == (None, None, None)
    assert record.granted() == {Permission.ADMIN, Permission.SIGN, Permission.REGISTRY}
    result = EnrollmentResult("created", record, offered_permissions=frozenset({Permission.ADMIN, Permission.SIGN,
                                                                                Permission.REGISTRY}),
                              unavailable_permissions=frozenset({Permission.SEND}))
    data = result.to_dict()
    assert data["offered_permissions"] == ["admin", "registry", "sign"]
    assert data["unavailable_permissions"] == ["send"]
    assert (data["previous"], data["final_entry"]) == (None, None)
    assert data["record"]["send"] is None
    assert "unavailable_permissions=['send']" in repr(result)


def test_enrollment_request_managed_subset() -> None:
    request = EnrollmentRequest("76086428-5", "11111111-1", "send", managed="sign,send")  # type: ignore[arg-type]
    assert request.permissions == {Permission.SEND} and request.managed == {Permission.SIGN, Permission.SEND}
    assert request.wanted() == {Permission.SIGN: False, Permission.SEND: True}
    replacement = ReplacementRequest("76086428-5", "11111111-1", "13322924-8", frozenset({Permission.SEND}),
                                     managed=frozenset({Permission.SEND}))
    assert replacement.addition.managed == {Permission.SEND}
    assert replacement.to_dict()["managed"] == ["send"]


def test_steps_in_guide_order_with_spanish_labels() -> None:
    assert [s.value for s in Step] == ["open_page", "login", "company", "user_list", "new_user", "fill_form",
                                       "confirm", "save", "result", "logout"]
    assert Step.NEW_USER.label == "Ingresar Nuevo Usuario"
    assert Step.SAVE.label == "Grabar Usuario"
    assert Step.OPEN_PAGE.number == 1 and Step.LOGOUT.number == 10


def test_progress_event_and_result_reprs_hide_binary() -> None:
    event = ProgressEvent(Step.LOGIN, "done", "ok", screenshot=b"\x89PNG" + b"x" * 100)
    assert event.at.tzinfo is UTC
    assert "xxxx" not in repr(event) and "104 bytes" in repr(event)
    assert event.to_dict()["has_screenshot"] is True
    record = SiiUserRecord("ACME", "76086428-5", "11111111-1", "JUAN", False, True, True, "PEDRO")
    result = EnrollmentResult("created", record, [("login", b"png")], 2.5)
    assert "png'" not in repr(result)
    assert result.to_dict()["record"]["user_rut"] == "11111111-1"


def test_origin_of() -> None:
    assert origin_of("https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios?x=1") == "https://palena.sii.cl"
    assert origin_of("https://palena.sii.cl:443/x") == "https://palena.sii.cl"
    assert origin_of("https://127.0.0.1:8443/x") == "https://127.0.0.1:8443"


def test_verified_origins() -> None:
    prod = verified_origins(SiiSettings.for_environment("production", chromium_path=None))
    assert prod == ("https://herculesr.sii.cl", "https://palena.sii.cl", "https://zeusr.sii.cl", "https://www.sii.cl")
    local = SiiSettings(enroll_url="https://127.0.0.1:2/cvc_cgi/dte/eu_enrola_usuarios",
                        cert_origins=("https://127.0.0.1:3",), logout_url="https://127.0.0.1:1/cgi_AUT2000/x")
    assert verified_origins(local) == ("https://127.0.0.1:3", "https://127.0.0.1:2", "https://127.0.0.1:1")


def test_chromium_args() -> None:
    for flag in ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage"):
        assert flag in CHROMIUM_ARGS
    assert not any("ignore-certificate" in flag for flag in CHROMIUM_ARGS)


def test_driver_environment_sets_and_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
    monkeypatch.delenv("NODE_EXTRA_CA_CERTS", raising=False)
    settings = SiiSettings(ca_bundle=str(bundle))
    with driver_environment(settings):
        assert os.environ["NODE_EXTRA_CA_CERTS"] == str(bundle)
    assert "NODE_EXTRA_CA_CERTS" not in os.environ
    # An operator's own bundle is kept: both are combined.
    own = tmp_path / "own.pem"
    own.write_text("OWN\n")
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(own))
    with driver_environment(settings):
        combined = Path(os.environ["NODE_EXTRA_CA_CERTS"]).read_text()
        assert combined.startswith("OWN\n") and "BEGIN CERTIFICATE" in combined
    assert os.environ["NODE_EXTRA_CA_CERTS"] == str(own)
    with driver_environment(SiiSettings(ca_bundle=None)):
        assert os.environ["NODE_EXTRA_CA_CERTS"] == str(own)
    with pytest.raises(errors.BrowserUnavailable), driver_environment(SiiSettings(ca_bundle=str(tmp_path / "missing.pem"))):
        pass


def test_closed_engine_refuses_jobs() -> None:
    engine = BrowserEngine()
    engine.close()
    request = EnrollmentRequest("76086428-5", "11111111-1", frozenset({Permission.SIGN}))
    with pytest.raises(errors.BrowserUnavailable):
        engine.enroll(request, CertificateMaterial(b"c", b"k"), SiiSettings())


# ---------------------------------------------------------------------------------------------------
# Revocations and replacements: requests, steps, results, failures, engine entry points


def test_revocation_request_normalizes_and_rejects() -> None:
    from sii_bot.models import RevocationRequest

    request = RevocationRequest("76.086.428-5", "11.111.111-1")
    assert (request.company_rut, request.user_rut) == ("76086428-5", "11111111-1")
    assert request.to_dict() == {"company_rut": "76086428-5", "user_rut": "11111111-1"}
    with pytest.raises(InvalidRut, match="persona natural"):
        RevocationRequest("76086428-5", "77879240-0")
    with pytest.raises(InvalidRut):
        RevocationRequest("76086428-4", "11111111-1")


def test_replacement_request() -> None:
    from sii_bot.models import ReplacementRequest, RevocationRequest

    request = ReplacementRequest("76.086.428-5", "13.322.924-8", "11.111.111-1", "admin,sign")  # type: ignore[arg-type]
    assert (request.new_user_rut, request.old_user_rut) == ("13322924-8", "11111111-1")
    assert request.permissions == {Permission.ADMIN, Permission.SIGN}
    assert request.addition == EnrollmentRequest("76086428-5", "13322924-8", frozenset({Permission.ADMIN,
                                                                                        Permission.SIGN}))
    assert request.removal == RevocationRequest("76086428-5", "11111111-1")
    assert request.flags() == {"admin": True, "sign": True, "registry": False, "folios": False, "annul": False,
                               "send": False}
    assert request.to_dict()["permissions"] == ["admin", "sign"]
    with pytest.raises(ValueError, match="misma persona"):
        ReplacementRequest("76086428-5", "11.111.111-1", "11111111-1", frozenset({Permission.SIGN}))
    with pytest.raises(ValueError):
        ReplacementRequest("76086428-5", "13322924-8", "11111111-1", frozenset())
    with pytest.raises(InvalidRut):
        ReplacementRequest("76086428-5", "13322924-8", "76086428-5", frozenset({Permission.SIGN}))


def test_removal_steps_are_members_but_not_part_of_the_enrolment_guide() -> None:
    assert len(Step) == 10 and Step.DELETE not in list(Step) and Step.DELETE in Step
    assert Step("delete") is Step.DELETE and Step["OPEN_EDIT"] is Step.OPEN_EDIT
    assert {"OPEN_EDIT", "DELETE", "VERIFY"} <= set(Step.__members__)
    assert Step.OPEN_EDIT.label == "Abrir la ficha del usuario"
    assert Step.DELETE.label == "Eliminar al usuario"
    assert Step.VERIFY.label == "Verificar la lista de usuarios"
    assert Step.flow("enroll") == tuple(Step)
    assert [s.value for s in Step.flow("revoke")] == ["open_page", "login", "company", "user_list", "open_edit",
                                                      "delete", "verify", "logout"]
    assert [s.value for s in Step.flow("replace")] == [
        "open_page", "login", "company", "user_list", "new_user", "fill_form", "confirm", "save", "result",
        "open_edit", "delete", "verify", "logout"]
    assert Step.DELETE.number == 6 and Step.DELETE.number_in("replace") == 11
    assert Step.NEW_USER.number_in("revoke") is None and Step.LOGOUT.number == 10
    assert ProgressEvent(Step.VERIFY, "done", "ok").to_dict()["step_label"] == "Verificar la lista de usuarios"
    with pytest.raises(ValueError):
        Step.flow("delete")  # type: ignore[arg-type]


def test_revocation_and_replacement_results() -> None:
    from sii_bot.models import ReplacementResult, RevocationResult, SiiRemovalRecord, SiiUser

    removed = SiiUser("11111111-1", "JUAN", True, False, False)
    gone = SiiRemovalRecord("ACME", "76086428-5", "11111111-1", "Se ha eliminado ...")
    revocation = RevocationResult("revoked", "76086428-5", "11111111-1", "ACME", removed, gone, "¿Eliminar?",
                                  {"11111111-1": None}, [("delete", b"\x89PNGxxxx")], 1.5)
    data = revocation.to_dict()
    assert data["removed"]["admin"] is True and data["sii_result"]["message"] == "Se ha eliminado ..."
    assert data["final_entries"] == {"11111111-1": None} and data["screenshot_steps"] == ["delete"]
    assert "PNG" not in repr(revocation)
    record = SiiUserRecord("ACME", "76086428-5", "13322924-8", "ALEX", True, False, False, "MARIA")
    addition = EnrollmentResult("created", record)
    replaced = ReplacementResult("replaced", addition, revocation,
                                 {"13322924-8": SiiUser("13322924-8", "ALEX", True, False, False),
                                  "11111111-1": None})
    assert (replaced.add_outcome, replaced.remove_outcome) == ("created", "revoked")
    data = replaced.to_dict()
    assert data["final_entries"]["13322924-8"]["admin"] is True and data["final_entries"]["11111111-1"] is None
    assert data["addition"]["record"]["user_rut"] == "13322924-8" and data["removal"]["outcome"] == "revoked"


def test_replacement_incomplete_takes_the_cause_retry_policy() -> None:
    record = SiiUserRecord("ACME", "76086428-5", "13322924-8", "ALEX", True, False, False, "MARIA")
    addition = EnrollmentResult("created", record)
    cause = errors.SiiUnavailable("HTTP 500", page_html="<html>", step="delete", sii_text="Internal Server Error")
    failure = errors.ReplacementIncomplete.after(cause, addition, "11111111-1")
    assert failure.code == "replacement_incomplete" and failure.cause is cause
    assert failure.retryable and failure.retry_after_seconds == errors.SiiUnavailable.retry_after_seconds
    assert (failure.step, failure.page_html, failure.sii_text) == ("delete", "<html>", "Internal Server Error")
    assert failure.phase == "remove" and failure.addition is addition
    assert failure.user_message.startswith("Autorizamos al nuevo representante en el SII")
    assert "Reintentaremos" in failure.user_message and cause.user_message in failure.user_message
    assert "13322924-8" in failure.detail and "11111111-1" in failure.detail
    data = failure.to_dict()
    assert (data["code"], data["phase"], data["addition_outcome"], data["cause_code"]) == (
        "replacement_incomplete", "remove", "created", "sii_unavailable")
    # Not retryable when the cause is not; the class itself (a stored code) is not retryable.
    final = errors.ReplacementIncomplete.after(errors.EditScreenMismatch("x"), addition, "11111111-1")
    assert not final.retryable and final.retry_after_seconds is None and "Nuestro equipo" in final.user_message
    assert errors.failure_from_code("replacement_incomplete") is errors.ReplacementIncomplete
    assert not errors.ReplacementIncomplete.retryable
    # Failures of enrolments keep their old dict (no phase keys).
    assert "phase" not in errors.SiiUnavailable("x").to_dict()


def test_new_failure_codes() -> None:
    assert issubclass(errors.EditScreenMismatch, errors.ConfirmationMismatch)
    assert errors.EditScreenMismatch.code == "edit_screen_mismatch" and not errors.EditScreenMismatch.retryable
    assert errors.UserStillPresent.retryable and errors.UserStillPresent.retry_after_seconds == 300
    for code in ("edit_screen_mismatch", "delete_unavailable", "user_still_present", "verification_failed",
                 "replacement_incomplete"):
        assert errors.failure_from_code(code).code == code


def test_engine_entry_points_check_request_types() -> None:
    from sii_bot.models import ReplacementRequest, RevocationRequest

    engine = BrowserEngine()
    enrollment = EnrollmentRequest("76086428-5", "11111111-1", frozenset({Permission.SIGN}))
    revocation = RevocationRequest("76086428-5", "11111111-1")
    with pytest.raises(TypeError):
        engine.revoke(enrollment, CertificateMaterial(b"c", b"k"), SiiSettings())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine.replace(revocation, CertificateMaterial(b"c", b"k"), SiiSettings())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="revoke"):
        engine.enroll(revocation, CertificateMaterial(b"c", b"k"), SiiSettings())  # type: ignore[arg-type]
    engine.close()
    with pytest.raises(errors.BrowserUnavailable):
        engine.revoke(revocation, CertificateMaterial(b"c", b"k"), SiiSettings())
    replacement = ReplacementRequest("76086428-5", "13322924-8", "11111111-1", frozenset({Permission.SIGN}))
    with pytest.raises(errors.BrowserUnavailable):
        engine.replace(replacement, CertificateMaterial(b"c", b"k"), SiiSettings())
    import sii_bot

    assert sii_bot.revoke is not None and sii_bot.replace is not None and sii_bot.ReplacementIncomplete


class _FakePage:
    url = "https://palena.sii.cl/cvc_cgi/dte/eu_modifica_usuario"

    def on(self, event: str, handler: object) -> None:
        pass


class _FakeDialog:
    def __init__(self, kind: str, message: str) -> None:
        self.type, self.message, self.answer = kind, message, ""

    async def accept(self) -> None:
        self.answer = "accepted"

    async def dismiss(self) -> None:
        self.answer = "dismissed"


def test_delete_confirm_is_accepted_only_while_deleting() -> None:
    import asyncio
    import threading

    from sii_bot.driver.records import Job as _Job
    from sii_bot.driver.revoke import RevokeFlow as _Flow
    from sii_bot.models import RevocationRequest

    job = _Job(request=RevocationRequest("76086428-5", "11111111-1"), settings=SiiSettings(),
               emit=lambda event: None, cancelled=threading.Event())
    flow = _Flow(_FakePage(), job)  # type: ignore[arg-type]
    flow.step = Step.OPEN_EDIT
    question = "¿Está seguro que desea eliminar este usuario de la empresa?"
    dialog = _FakeDialog("confirm", question)
    asyncio.run(flow._on_dialog(dialog))  # type: ignore[arg-type]
    assert dialog.answer == "dismissed" and flow.delete_confirms == []
    flow.delete_armed = True
    flow.step = Step.DELETE
    dialog = _FakeDialog("confirm", question)
    asyncio.run(flow._on_dialog(dialog))  # type: ignore[arg-type]
    assert dialog.answer == "accepted" and flow.delete_confirms == [question]
    # Even while deleting, a login confirm() after the login means the session died: refused.
    relogin = _FakeDialog("confirm", "Para ingresar con su Certificado Digital, éste debe estar instalado. "
                                     "¿Desea continuar?")
    asyncio.run(flow._on_dialog(relogin))  # type: ignore[arg-type]
    assert relogin.answer == "dismissed" and flow.session_lost and flow.delete_confirms == [question]
