"""Every fault, switched at run time, answers what SII answers."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from sii_sandbox.probe import PlainClient, enroll, open_company
from sii_sandbox.server import Sandbox

DEMO_CO = "76086428-5"
USER = "11111111-1"

Client = Callable[..., PlainClient]


def login(c: PlainClient, sb: Sandbox) -> str:
    """Log in through the redirects; returns the visible text of where it ended."""
    return c.get(sb.env["SII_ENROLL_URL"]).visible_text


def test_company_not_authorized(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    seeded = open_company(c, sandbox.env["SII_ENROLL_URL"], "96874030-K")
    assert "la empresa no está autorizada para operar en esta modalidad" in seeded.visible_text
    sandbox.set_faults(company_not_authorized=[DEMO_CO])
    page = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert "la empresa no está autorizada para operar en esta modalidad" in page.visible_text
    assert b"no est&aacute; autorizada" in page.content
    assert "Ingresar Nuevo Usuario" not in page.text
    # Other companies still work.
    assert open_company(c, sandbox.env["SII_ENROLL_URL"], "76111111-6").has_control("Ingresar Nuevo Usuario")


def test_holder_not_admin(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(holder_not_admin=True)
    page = open_company(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert "no está autorizado para operar en la empresa" in page.visible_text


def test_user_already_in_the_list(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    # Seeded: 11111111-1 is already a user of INVERSIONES ÑUÑOA SPA.
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], "76369187-K")
    assert "11.111.111-1 JUAN PEREZ GONZALEZ" in listing.visible_text
    page = enroll(c, sandbox.env["SII_ENROLL_URL"], "76369187-K", USER, sign=True)
    assert "ya se encuentra registrado como usuario autorizado" in page.visible_text


def test_user_exists_fault_is_a_race_at_save(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(user_exists=[DEMO_CO])
    c = sandbox_client("demo")
    page = enroll(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO, USER, sign=True)
    assert "ya se encuentra registrado como usuario autorizado" in page.visible_text
    assert any(u["rut"] == USER for u in sandbox.users(DEMO_CO))
    assert not [e for e in sandbox.state()["log"] if e["user"] == USER]


def test_too_many_sessions(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(too_many_sessions=True)
    text = login(sandbox_client("demo"), sandbox)
    assert "Usted ha superado el máximo de sesiones autenticadas" in text
    assert "01.01.190.500.720.27" in text


def test_max_sessions_counts_live_sessions(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(max_sessions=1)
    first = sandbox_client("demo")
    assert "Ingrese el rut de la empresa" in login(first, sandbox)
    assert "máximo de sesiones" in login(sandbox_client("demo"), sandbox)
    first.get(sandbox.env["SII_LOGOUT_URL"])
    assert "Ingrese el rut de la empresa" in login(sandbox_client("demo"), sandbox)


def test_login_throttled(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(login_throttled=True)
    assert "demasiados intentos de autenticación" in login(sandbox_client("lowercase_k"), sandbox)
    # Every attempt counts, refused ones included: more than N in the window are refused.
    sandbox.set_faults(login_throttled=None, throttle_logins=2)
    for _ in range(2):
        c = sandbox_client("demo")
        assert "Ingrese el rut de la empresa" in login(c, sandbox)
        c.get(sandbox.env["SII_LOGOUT_URL"])
    assert "demasiados intentos" in login(sandbox_client("demo"), sandbox)
    # Another holder is not affected.
    assert "Ingrese el rut de la empresa" in login(sandbox_client("admin2"), sandbox)


def test_session_expiring_mid_flow(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(session_expiry_pages=2)
    c = sandbox_client("demo")
    form = c.get(sandbox.env["SII_ENROLL_URL"])  # page 1
    listing = c.submit(form, "form1", button="Ingresar", values={"RUT_EMP": "76086428", "DV_EMP": "5"})  # 2
    nxt = c.submit(listing, "form1", button="Ingresar Nuevo Usuario", follow=False)  # 3: session gone
    assert nxt.status == 302
    assert "/AUT2000/InicioAutenticacion/IngresoCertificado.html?" in nxt.headers["location"]
    assert nxt.headers["location"].endswith("/cvc_cgi/dte/eu_ingresa_usuario")


def test_expire_sessions_api(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    login(c, sandbox)
    assert sandbox.expire_sessions("10345678-9") == 1
    assert c.get(sandbox.env["SII_ENROLL_URL"], follow=False).status == 302


@pytest.mark.parametrize("style,texts", [
    ("transaccion", ["Transaccion Rechazada", "ID: "]),
    ("f5", ["The requested URL was rejected", "support ID"]),
])
def test_waf(sandbox: Sandbox, sandbox_client: Client, style: str, texts: list[str]) -> None:
    sandbox.set_faults(waf=True, waf_style=style)
    page = sandbox_client("demo").get(sandbox.env["SII_ENROLL_URL"])
    assert page.status == 200
    for t in texts:
        assert t in page.visible_text


def test_waf_on_one_step(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(waf=["eu_graba_usuario"])
    page = enroll(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], DEMO_CO, USER, sign=True)
    assert "Transaccion Rechazada" in page.visible_text
    assert not any(u["rut"] == USER for u in sandbox.users(DEMO_CO))


def test_http500_rate_is_deterministic(sandbox: Sandbox, sandbox_client: Client) -> None:
    def run() -> list[int]:
        sandbox.set_faults(http500_rate=0.5, seed=7)
        c = sandbox_client("demo")
        login_page = c.get(sandbox.env["SII_ENROLL_URL"])
        statuses = [login_page.status]
        for _ in range(20):
            statuses.append(c.get(sandbox.env["SII_ENROLL_URL"]).status)
        return statuses

    first, second = run(), run()
    assert first == second
    assert 500 in first and 200 in first
    sandbox.set_faults(http500_rate=1.0, http500_steps=["eu_graba_usuario"])
    page = enroll(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], DEMO_CO, USER, sign=True)
    assert page.status == 500 and "Internal Server Error" in page.text


def test_generic_error(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(generic_error=["eu_valida_empresa"])
    page = open_company(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert "No ha sido posible completar su solicitud. Inténtelo más tarde" in page.visible_text
    assert "El código de este mensaje es 01.01.209.500.709.21" in page.visible_text


def test_login_alert(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(login_alert="Certificado revocado")
    c = sandbox_client("demo")
    c.get(sandbox.env["SII_ENROLL_URL"])
    rejection = c.history[-1]
    assert rejection.status == 200 and rejection.alert == "Certificado revocado"
    assert rejection.url.startswith(sandbox.env["SII_CERT_ORIGINS"])


def test_no_certificate_fault_redirects_to_errorp(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(no_certificate=True)
    c = sandbox_client("demo")
    assert c.get(sandbox.env["SII_ENROLL_URL"]).url.endswith("/errorp.html")


def test_latency_and_jitter(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    login(c, sandbox)
    sandbox.set_faults(latency_ms=80, jitter_ms=20)
    start = time.perf_counter()
    c.get(sandbox.env["SII_ENROLL_URL"])
    assert 0.08 <= time.perf_counter() - start < 1.0
    sandbox.configure(latency_ms=0, jitter_ms=0)
    start = time.perf_counter()
    c.get(sandbox.env["SII_ENROLL_URL"])
    assert time.perf_counter() - start < 0.08


def test_unknown_fault_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.set_faults(no_such_fault=True)
    with pytest.raises(ValueError):
        sandbox.set_faults(waf=["no_such_step"])
    r = httpx.post(sandbox.env["SANDBOX_CONTROL_URL"] + "/faults", json={"bogus": 1})
    assert r.status_code == 400


def test_reset_and_clear(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(waf=True)
    sandbox.clear_faults()
    assert sandbox.faults() == {}
    sandbox.set_faults(waf=True, alt_layout=True)
    sandbox.configure(actions="links")
    sandbox.reset()
    assert sandbox.faults() == {} and sandbox.config()["actions"] == "buttons"
