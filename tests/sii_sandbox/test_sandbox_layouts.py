"""Both page layouts (MIPYME: three attributes, market software: six) through every enrolment page,
and the edit screen that saves only what it shows."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from sii_sandbox.probe import Page, PlainClient, open_company
from sii_sandbox.server import Sandbox

MARKET_CO = "76543210-3"
DEMO_CO = "76086428-5"
USER = "11111111-1"
MARKET_BOXES = ["SUP_USU", "OBTENER", "ANULAR", "FIRMAR", "ENVIAR", "CONSULTAR"]
MIPYME_BOXES = ["SUP_USU", "FIRMAR", "CONSULTAR"]

Client = Callable[..., PlainClient]


def checkboxes(page: Page) -> list[str]:
    return [i.name for i in page.form("form1").inputs if i.type == "checkbox" and i.name != "ELIMINAR"]


def edit_page(c: PlainClient, sb: Sandbox, company: str, user_body: str) -> Page:
    listing = open_company(c, sb.env["SII_ENROLL_URL"], company)
    form = next(f for f in listing.forms if f.buttons() == ["Modificar"]
                and ("RUT_USU", user_body) in [(i.name, i.value) for i in f.inputs])
    return c.submit(listing, form.name, button="Modificar")


def test_seeded_market_company_and_env(sandbox: Sandbox) -> None:
    assert sandbox.env["SANDBOX_MARKET_COMPANY_RUT"] == MARKET_CO
    companies = sandbox.state()["companies"]
    assert companies[MARKET_CO]["layout"] == "market"
    assert companies[DEMO_CO]["layout"] == "mipyme"


def test_market_layout_on_every_page(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], MARKET_CO)
    text = listing.visible_text
    assert ("Rut Nombre Administrador Solicitar Folios Anular Documentos Firmar Documentos Enviar Documentos "
            "Consulta") in text
    assert "10.345.678-9 MARIA JOSE SOTO PEREZ SI SI SI SI SI SI" in text
    assert "7.880.442-4 ROSA ELENA ARAYA CASTRO NO NO NO SI SI NO" in text

    form = c.activate(listing, "Ingresar Nuevo Usuario")
    assert checkboxes(form) == MARKET_BOXES
    for label in ("Usuario Administrador", "Solicitar Folios", "Anular Documentos", "Firmar Documentos",
                  "Enviar Documentos", "Consulta"):
        assert label in form.visible_text
    assert "Registro" not in form.visible_text
    assert ("!f.SUP_USU.checked && !f.OBTENER.checked && !f.ANULAR.checked && !f.FIRMAR.checked && "
            "!f.ENVIAR.checked && !f.CONSULTAR.checked") in form.scripts

    conf = c.submit(form, "form1", button="Aceptar",
                    values={"RUT_USU": "11111111", "DV_USU": "1", "FIRMAR": True, "ENVIAR": True})
    rows = ("Rut Usuario 11111111-1 Nombre Usuario JUAN PEREZ GONZALEZ Usuario-Administrador NO Solicitar Folios NO "
            "Anular Documentos NO Firmar Documentos SI Enviar Documentos SI Consulta NO "
            "Autorizado por MARIA JOSE SOTO PEREZ")
    assert rows in conf.visible_text
    hidden = {i.name: i.value for i in conf.form("form1").inputs if i.type == "hidden"}
    assert [hidden[n] for n in MARKET_BOXES] == ["N", "N", "N", "S", "S", "N"]

    result = c.activate(conf, "Grabar Usuario")
    assert "Se ha grabado satisfactoriamente el nuevo usuario en la empresa DISTRIBUIDORA FACTURA MERCADO SPA" in (
        result.visible_text)
    assert rows in result.visible_text
    user = next(u for u in sandbox.users(MARKET_CO) if u["rut"] == USER)
    assert {k: user[k] for k in ("admin", "folios", "annul", "sign", "send", "registry")} == {
        "admin": False, "folios": False, "annul": False, "sign": True, "send": True, "registry": False}

    edit = edit_page(c, sandbox, MARKET_CO, "11111111")
    assert checkboxes(edit) == MARKET_BOXES
    checked = {i.name: i.checked for i in edit.form("form1").inputs if i.type == "checkbox"}
    assert checked == {"SUP_USU": False, "OBTENER": False, "ANULAR": False, "FIRMAR": True, "ENVIAR": True,
                       "CONSULTAR": False, "ELIMINAR": False}
    saved = c.submit(edit, "form1", button="Guardar Cambios", values={"OBTENER": True, "ENVIAR": False})
    assert "Se ha modificado satisfactoriamente el usuario en la empresa DISTRIBUIDORA FACTURA MERCADO SPA" in (
        saved.visible_text)
    assert ("Usuario-Administrador NO Solicitar Folios SI Anular Documentos NO Firmar Documentos SI "
            "Enviar Documentos NO Consulta NO") in saved.visible_text
    assert sandbox.state()["saves"][MARKET_CO] == {USER: 2}


def test_market_layout_alternate_markup_keeps_fields(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(alt_layout=True)
    c = sandbox_client("demo")
    form = c.activate(open_company(c, sandbox.env["SII_ENROLL_URL"], MARKET_CO), "Ingresar Nuevo Usuario")
    assert sorted(checkboxes(form)) == sorted(MARKET_BOXES)


def test_mipyme_layout_is_unchanged(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert "Rut Nombre Administrador Firmar Documentos Registro" in listing.visible_text
    assert "Solicitar Folios" not in listing.visible_text
    assert checkboxes(c.activate(listing, "Ingresar Nuevo Usuario")) == MIPYME_BOXES


def test_mipyme_edit_keeps_attributes_it_does_not_show(sandbox: Sandbox, sandbox_client: Client) -> None:
    # Set behind the pages' back: attributes the MIPYME page cannot show.
    sandbox.update_user(DEMO_CO, "7880442-4", attributes={"ENVIAR": True, "OBTENER": True})
    c = sandbox_client("demo")
    edit = edit_page(c, sandbox, DEMO_CO, "7880442")
    assert checkboxes(edit) == MIPYME_BOXES
    saved = c.submit(edit, "form1", button="Guardar Cambios", values={"SUP_USU": True, "CONSULTAR": False})
    assert "MODIFICACION DE USUARIOS AUTORIZADOS" in saved.visible_text
    assert ("Se ha modificado satisfactoriamente el usuario en la empresa COMERCIAL DEMO SPA, Rut 76086428-5, "
            "con los siguientes antecedentes:") in saved.visible_text
    assert "Usuario-Administrador SI Firmar Documentos SI Registro NO" in saved.visible_text
    rosa = next(u for u in sandbox.users(DEMO_CO) if u["rut"] == "7880442-4")
    assert {k: rosa[k] for k in ("admin", "folios", "annul", "sign", "send", "registry")} == {
        "admin": True, "folios": True, "annul": False, "sign": True, "send": True, "registry": False}
    assert sandbox.state()["saves"] == {DEMO_CO: {"7880442-4": 1}}


def test_switching_a_company_layout(sandbox: Sandbox, sandbox_client: Client) -> None:
    base = sandbox.env["SANDBOX_CONTROL_URL"]
    changed = httpx.post(base + "/companies/set", json={"rut": DEMO_CO, "layout": "market"})
    assert changed.json()["layout"] == "market"
    assert httpx.post(base + "/companies/set", json={"rut": DEMO_CO, "layout": "pyme"}).status_code == 400
    c = sandbox_client("demo")
    assert checkboxes(c.activate(open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO),
                                 "Ingresar Nuevo Usuario")) == MARKET_BOXES
    rut = "78000077-5"
    sandbox.add_company(rut, "NUEVA DE MERCADO SPA", ["10345678-9"], layout="market",
                        users=[{"rut": USER, "attributes": {"ENVIAR": True}}])
    assert sandbox.users(rut)[0]["send"] is True and sandbox.users(rut)[0]["sign"] is False
