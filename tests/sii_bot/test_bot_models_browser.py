"""Tests for sii_bot.models, the browser helpers and the engine's non-browser behaviour."""

from __future__ import annotations

import os
from datetime import timezone
from pathlib import Path

import pytest

from sii_bot import errors
from sii_bot.browser import CHROMIUM_ARGS, driver_environment, origin_of, verified_origins
from sii_bot.certificates import CertificateMaterial
from sii_bot.engine import BrowserEngine
from sii_bot.models import EnrollmentRequest, EnrollmentResult, Permission, ProgressEvent, Step
from sii_bot.pages import SiiUserRecord
from sii_bot.rut import InvalidRut
from sii_bot.settings import SiiSettings


def test_permission_fields_and_labels() -> None:
    assert [p.value for p in Permission] == ["admin", "sign", "registry"]
    assert [p.field_name for p in Permission] == ["SUP_USU", "FIRMAR", "CONSULTAR"]
    assert [p.label for p in Permission] == ["Usuario Administrador", "Firmar Documentos", "Registro"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("admin,sign,registry", {Permission.ADMIN, Permission.SIGN, Permission.REGISTRY}),
        (" Sign , REGISTRY ", {Permission.SIGN, Permission.REGISTRY}),
        ("SUP_USU,firmar", {Permission.ADMIN, Permission.SIGN}),
        ("Registro,,", {Permission.REGISTRY}),
        (["admin", "admin"], {Permission.ADMIN}),
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
    assert request.flags() == {"admin": False, "sign": True, "registry": True}
    assert request.to_dict() == {"company_rut": "76086428-5", "user_rut": "11111111-1",
                                 "permissions": ["registry", "sign"]}
    assert EnrollmentRequest("76086428-5", "11111111-1", "admin").admin  # type: ignore[arg-type]


def test_enrollment_request_rejects() -> None:
    with pytest.raises(InvalidRut):
        EnrollmentRequest("76086428-4", "11111111-1", frozenset({Permission.SIGN}))
    with pytest.raises(InvalidRut, match="persona natural"):
        EnrollmentRequest("76086428-5", "77879240-0", frozenset({Permission.SIGN}))
    with pytest.raises(ValueError):
        EnrollmentRequest("76086428-5", "11111111-1", frozenset())


def test_steps_in_guide_order_with_spanish_labels() -> None:
    assert [s.value for s in Step] == ["open_page", "login", "company", "user_list", "new_user", "fill_form",
                                       "confirm", "save", "result", "logout"]
    assert Step.NEW_USER.label == "Ingresar Nuevo Usuario"
    assert Step.SAVE.label == "Grabar Usuario"
    assert Step.OPEN_PAGE.number == 1 and Step.LOGOUT.number == 10


def test_progress_event_and_result_reprs_hide_binary() -> None:
    event = ProgressEvent(Step.LOGIN, "done", "ok", screenshot=b"\x89PNG" + b"x" * 100)
    assert event.at.tzinfo is timezone.utc
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
    with pytest.raises(errors.BrowserUnavailable):
        with driver_environment(SiiSettings(ca_bundle=str(tmp_path / "missing.pem"))):
            pass


def test_closed_engine_refuses_jobs() -> None:
    engine = BrowserEngine()
    engine.close()
    request = EnrollmentRequest("76086428-5", "11111111-1", frozenset({Permission.SIGN}))
    with pytest.raises(errors.BrowserUnavailable):
        engine.enroll(request, CertificateMaterial(b"c", b"k"), SiiSettings())
