"""SII's authentication error codes, session caps, session peaks and sessions that expire mid-flow."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sii_sandbox.codes import AUTH_MESSAGES
from sii_sandbox.probe import PlainClient, open_company
from sii_sandbox.server import Sandbox

DEMO_HOLDER = "10345678-9"
REPRESENTATIVE = "13322924-8"
DEMO_CO = "76086428-5"

Client = Callable[..., PlainClient]

# Code -> a fragment of SII's published wording that identifies it.
SII_WORDING = {
    9: "Su Clave Tributaria se encuentra bloqueada por ingresos erróneos sucesivos. Debe esperar 1 hora para "
       "que se libere automáticamente antes de volver a digitarla.",
    19: "Debe esperar 1 hora para que se libere automáticamente, antes de volver a intentar ingresarla.",
    27: "Usted ha superado el máximo de sesiones autenticadas.",
    28: "Usted no se ha autenticado en el sitio Web del SII o puede que su sesión haya caducado.",
    29: "Transcurrió el tiempo máximo que puede durar la sesión. Para continuar debe identificarse nuevamente.",
    33: "Debe autenticarse con Clave Tributaria, NO con Certificado Digital.",
    34: "Intente ingresar nuevamente su Certificado Digital.",
    35: "El Certificado Digital que usted ha seleccionado para identificarse fue revocado por la entidad que lo "
        "emitió. Debe solicitar otro.",
    36: "Debe solicitar un nuevo Certificado Digital a la entidad emisora. El que ingresó se encuentra vencido.",
    37: "Certificado Digital inválido. Verifique que corresponda a uno emitido por entidades certificadoras "
        "autorizadas por el SII.",
    38: "Si el error persiste, debe solicitar un nuevo Certificado Digital emitido por una entidad certificada "
        "por el SII.",
    41: "Revise si el RUT del Representante Legal de la empresa está correctamente ingresado",
    49: "Su Código Provisorio se encuentra bloqueada por ingresos erróneos sucesivos.",
    55: "Se le recuerda que quedan 3 intentos de ingreso de su Clave Tributaria.",
}


def login(c: PlainClient, sb: Sandbox) -> PlainClient:
    c.get(sb.env["SII_ENROLL_URL"])
    return c


def test_every_code_the_brief_names_has_sii_wording() -> None:
    assert sorted(AUTH_MESSAGES) == sorted(SII_WORDING)


@pytest.mark.parametrize("code", sorted(SII_WORDING))
def test_login_error_page_per_code(sandbox: Sandbox, sandbox_client: Client, code: int) -> None:
    sandbox.set_faults(login_error=code)
    page = sandbox_client("demo").get(sandbox.env["SII_ENROLL_URL"])
    assert page.status == 200
    assert page.url.split("?")[0].endswith("/cgi_AUT2000/CAutInicio.cgi")
    assert page.headers["content-type"] == "text/html"
    assert SII_WORDING[code] in page.visible_text
    assert f"El código de este mensaje es 01.01.190.500.720.{code:02d}" in page.visible_text
    assert b"El c&oacute;digo de este mensaje es" in page.content
    assert not [ck for ck in page.headers.get_list("set-cookie") if ck.startswith("TOKEN=")]
    assert sandbox.state()["sessions"] == {}


def test_login_error_as_alert(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(login_error="01.01.190.500.720.35", login_error_style="alert")
    page = sandbox_client("demo").get(sandbox.env["SII_ENROLL_URL"])
    assert page.status == 200
    assert page.alert == (
        "El Certificado Digital que usted ha seleccionado para identificarse fue revocado por la entidad que lo "
        "emitió. Debe solicitar otro. El código de este mensaje es 01.01.190.500.720.35"
    )
    assert b"emiti\xf3" in page.content  # raw ISO-8859-1 in the script
    assert f'location.href = "{sandbox.origins["zeus"]}/portal/"' in page.scripts


def test_login_error_per_rut_and_counted(sandbox: Sandbox, sandbox_client: Client) -> None:
    faults = sandbox.set_faults(login_error={REPRESENTATIVE: {"code": 34, "times": 1}, "10.345.678-9": 36})
    assert faults["login_error"] == {REPRESENTATIVE: {"code": 34, "times": 1}, DEMO_HOLDER: {"code": 36, "times": None}}
    # Another holder is not affected.
    assert "Ingrese el rut de la empresa" in sandbox_client("admin2").get(sandbox.env["SII_ENROLL_URL"]).visible_text
    first = sandbox_client("representative").get(sandbox.env["SII_ENROLL_URL"]).visible_text
    assert "01.01.190.500.720.34" in first
    # Code 34 means "try again": the second attempt logs in.
    again = sandbox_client("representative").get(sandbox.env["SII_ENROLL_URL"]).visible_text
    assert "Ingrese el rut de la empresa" in again
    assert sandbox.faults()["login_error"] == {DEMO_HOLDER: {"code": 36, "times": None}}
    for _ in range(2):
        assert "01.01.190.500.720.36" in sandbox_client("demo").get(sandbox.env["SII_ENROLL_URL"]).visible_text


def test_login_error_validation(sandbox: Sandbox) -> None:
    base = sandbox.env["SANDBOX_CONTROL_URL"]
    with httpx.Client(base_url=base) as http:
        assert http.post("/faults", json={"login_error": 99}).status_code == 400
        assert http.post("/faults", json={"login_error": {"12345678-0": 33}}).status_code == 400  # bad RUT
        assert http.post("/faults", json={"session_expired_code": 33}).status_code == 400
        ok = http.post("/faults", json={"login_error": {"code": "33", "times": 2}})
        assert ok.json()["login_error"] == {"*": {"code": 33, "times": 2}}


def test_per_rut_session_cap_answers_27(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(max_sessions={REPRESENTATIVE: 1})
    login(sandbox_client("representative"), sandbox)
    refused = sandbox_client("representative").get(sandbox.env["SII_ENROLL_URL"]).visible_text
    assert "Usted ha superado el máximo de sesiones autenticadas" in refused
    assert "El código de este mensaje es 01.01.190.500.720.27" in refused
    # The demo holder has no cap.
    for _ in range(3):
        login(sandbox_client("demo"), sandbox)
    assert sandbox.state()["sessions"][DEMO_HOLDER]["active"] == 3


def test_max_concurrent_sessions_by_rut(sandbox: Sandbox, sandbox_client: Client) -> None:
    logout = sandbox.env["SII_LOGOUT_URL"]
    a = login(sandbox_client("representative"), sandbox)
    b = login(sandbox_client("representative"), sandbox)
    a.get(logout)
    b.get(logout)
    c = login(sandbox_client("representative"), sandbox)  # one at a time again: the peak stays 2
    c.get(logout)
    login(sandbox_client("demo"), sandbox)
    sandbox.expire_sessions(DEMO_HOLDER)
    login(sandbox_client("demo"), sandbox)  # the expired one no longer counts
    state = httpx.get(sandbox.env["SANDBOX_STATE_URL"]).json()
    assert state["max_concurrent_sessions_by_rut"] == {REPRESENTATIVE: 2, DEMO_HOLDER: 1}
    sandbox.reset()
    assert sandbox.state()["max_concurrent_sessions_by_rut"] == {}


def test_session_expires_once_then_login_works(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(session_expiry_steps=["eu_ingresa_usuario"], session_expiry_count=1)
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    gone = c.submit(listing, "form1", button="Ingresar Nuevo Usuario", follow=False)
    assert gone.status == 302
    assert "/AUT2000/InicioAutenticacion/IngresoCertificado.html?" in gone.headers["location"]
    assert "session_expiry_steps" not in sandbox.faults() and "session_expiry_count" not in sandbox.faults()
    # Only once: after a new login the same step works.
    again = c.activate(open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO), "Ingresar Nuevo Usuario")
    assert again.has_form(with_field="RUT_USU")
    assert sandbox.state()["sessions"][DEMO_HOLDER]["logins"] == 2


@pytest.mark.parametrize("code", [28, 29])
def test_expired_session_shows_the_message(sandbox: Sandbox, sandbox_client: Client, code: int) -> None:
    sandbox.set_faults(session_expiry_pages=2, session_expired_code=code)
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)  # pages 1 and 2
    page = c.activate(listing, "Ingresar Nuevo Usuario")
    assert page.status == 200
    assert page.url.endswith("/cvc_cgi/dte/eu_ingresa_usuario")
    assert SII_WORDING[code] in page.visible_text
    assert f"El código de este mensaje es 01.01.209.500.709.{code}" in page.visible_text
    # A stale TOKEN keeps getting the message; a browser without one goes to the login.
    assert SII_WORDING[code] in c.get(sandbox.env["SII_ENROLL_URL"]).visible_text
    fresh = sandbox_client("demo").get(sandbox.env["SII_ENROLL_URL"], follow=False)
    assert fresh.status == 302


def test_expire_api_with_code_28(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = login(sandbox_client("demo"), sandbox)
    sandbox.set_faults(session_expired_code=28)
    assert httpx.post(sandbox.env["SANDBOX_CONTROL_URL"] + "/sessions/expire", json={}).json() == {"expired": 1}
    assert "01.01.209.500.709.28" in c.get(sandbox.env["SII_ENROLL_URL"]).visible_text
