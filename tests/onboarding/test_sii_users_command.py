"""`manage.py sii_users`, run in-process with call_command against the sandbox (settings from its
environment, the password in SII_PFX_PASSWORD, exactly as the README says)."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command

from sii_bot.settings import default_chromium_path

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.browser,
    pytest.mark.skipif(default_chromium_path() is None, reason="no system Chromium (apt-get install -y chromium)"),
]

REPRESENTED = "76777777-9"
DEMO_COMPANY = "76086428-5"
MARKET = "76543210-3"


@pytest.fixture(scope="module", autouse=True)
def _close_engine() -> Iterator[None]:
    """The command uses the process-wide engine: close its Chromium once this module is done."""
    yield
    from sii_bot import close_default_engine

    close_default_engine()


@pytest.fixture
def env(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in sandbox.env.items():
        if name.startswith("SII_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SII_PFX_PASSWORD", sandbox.env["SANDBOX_DEMO_PFX_PASSWORD"])
    monkeypatch.setenv("SII_SCREENSHOTS", "false")
    monkeypatch.setenv("SII_STEP_TIMEOUT", "10")
    return sandbox


def sii_users(*args: str) -> tuple[int, str]:
    """Run the command; (exit code, stdout)."""
    out = io.StringIO()
    try:
        call_command("sii_users", *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_prints_each_company_as_a_table_or_its_failure(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"], "--company-rut", "76.777.777-9",
                          "--company-rut", DEMO_COMPANY)
    assert code == 3, out
    assert "Ingresar el RUT de la empresa: started Ingresando el RUT de la empresa 76.777.777-9." in out
    report = out[out.index("\nEmpresa 76.777.777-9"):]
    assert report == (
        "\nEmpresa 76.777.777-9 ASESORIAS DELEGADAS SPA\n"
        "  2 usuario(s) autorizado(s):\n"
        "  Rut           Nombre                      Usuario Administrador  Firmar Documentos  Consulta/Registro\n"
        "  13.322.924-8  ALEX BRITO MARDONES         SI                     NO                 NO\n"
        "  14.567.890-0  MARCELA IGNACIA ROJAS DÍAZ  NO                     SI                 SI\n"
        "\n"
        "Empresa 76.086.428-5\n"
        "  Error (holder_not_administrator): El titular del certificado digital no está autorizado para "
        "administrar los usuarios de esta empresa en el SII. Use el certificado de un representante legal o de "
        "un usuario administrador de la empresa y vuelva a intentarlo.\n"
        "\n"
        "Empresas leídas: 1 de 2 (sesiones abiertas en el SII: 1).\n"
    )
    state = env.state()["sessions"]["13322924-8"]
    assert (state["logins"], state["active"]) == (1, 0)


def test_market_company_table_has_six_attributes(env: Any) -> None:
    code, out = sii_users("--pfx", env.env["SANDBOX_DEMO_PFX"], "--company-rut", MARKET)
    assert code == 0, out
    report = out[out.index("\nEmpresa 76.543.210-3"):]
    assert report == (
        "\nEmpresa 76.543.210-3 DISTRIBUIDORA FACTURA MERCADO SPA\n"
        "  2 usuario(s) autorizado(s):\n"
        "  Rut           Nombre                   Usuario Administrador  Solicitar Folios  Anular Documentos"
        "  Firmar Documentos  Enviar Documentos  Consulta/Registro\n"
        "  10.345.678-9  MARIA JOSE SOTO PEREZ    SI                     SI                SI"
        "                 SI                 SI                 SI\n"
        "  7.880.442-4   ROSA ELENA ARAYA CASTRO  NO                     NO                NO"
        "                 SI                 SI                 NO\n"
        "\n"
        "Empresas leídas: 1 de 1 (sesiones abiertas en el SII: 1).\n"
    )


def test_json_shape(env: Any) -> None:
    code, out = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"], "--company-rut", REPRESENTED,
                          "--company-rut", "96874030-K", "--json")
    assert code == 3
    data = json.loads(out)
    assert set(data) == {"companies", "logins", "duration_seconds", "exit_code"}
    assert (data["logins"], data["exit_code"]) == (1, 3)
    read, refused = data["companies"]
    assert read == {
        "company_rut": REPRESENTED, "company_name": "ASESORIAS DELEGADAS SPA", "failure": None,
        "users": [
            {"rut": "13322924-8", "name": "ALEX BRITO MARDONES", "admin": True, "sign": False, "registry": False,
             "folios": None, "annul": None, "send": None},
            {"rut": "14567890-0", "name": "MARCELA IGNACIA ROJAS DÍAZ", "admin": False, "sign": True,
             "registry": True, "folios": None, "annul": None, "send": None},
        ],
    }
    assert (refused["company_rut"], refused["company_name"], refused["users"]) == ("96874030-K", "", [])
    assert refused["failure"]["code"] == "company_not_authorized" and refused["failure"]["retryable"] is False
    assert set(refused["failure"]) == {"code", "retryable", "retry_after_seconds", "user_message", "detail", "step",
                                       "sii_text", "needs_person"}


def test_all_read_exits_zero_with_json(env: Any) -> None:
    code, out = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"], "--company-rut", REPRESENTED, "--json")
    assert code == 0 and json.loads(out)["exit_code"] == 0


def test_exit_code_is_the_worst_company_failure(env: Any) -> None:
    # First company: not an administrator (3); then the session dies (…28 style redirect to the login):
    # the remaining companies carry session_expired (5), the worse class.
    env.set_faults(session_expiry_pages=3, session_expiry_count=1)
    code, out = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"], "--company-rut", DEMO_COMPANY,
                          "--company-rut", MARKET, "--company-rut", REPRESENTED, "--json")
    assert code == 5
    assert [(c["company_rut"], c["failure"]["code"]) for c in json.loads(out)["companies"]] == [
        (DEMO_COMPANY, "holder_not_administrator"), (MARKET, "session_expired"), (REPRESENTED, "session_expired")]


def test_login_refused_exit_4_and_usage_errors(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    env.set_faults(too_many_sessions=True)
    code, out = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"], "--company-rut", REPRESENTED,
                          "--company-rut", DEMO_COMPANY)
    assert code == 4
    assert out.count("Error (too_many_sessions): ") == 2 and "(sesiones abiertas en el SII: 0)" in out
    assert env.state()["sessions"].get("13322924-8", {}).get("active", 0) == 0

    code, out = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"], "--company-rut", "76777777-1", "--json")
    assert code == 1 and json.loads(out)["error"] == "usage"
    assert "dígito verificador" in capsys.readouterr().err
    code, out = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"] + ".missing", "--company-rut", REPRESENTED)
    assert code == 1 and "No existe el archivo" in capsys.readouterr().err


def test_wrong_password_exit_2(env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SII_PFX_PASSWORD", "incorrecta")
    code, _ = sii_users("--pfx", env.env["SANDBOX_REPRESENTATIVE_PFX"], "--company-rut", REPRESENTED)
    assert code == 2 and "contraseña" in capsys.readouterr().err.lower()
