"""Walk every page of the sandbox with a plain HTTP client presenting the client certificate."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import urllib.parse
from collections.abc import Callable

import pytest

from sii_sandbox.probe import Page, PlainClient, enroll, open_company
from sii_sandbox.server import Sandbox

DEMO_CO = "76086428-5"
USER = "11111111-1"

Client = Callable[..., PlainClient]


def assert_sii_bytes(page: Page) -> None:
    """ISO-8859-1 bytes, ``Content-Type: text/html`` and no charset declared anywhere."""
    assert page.headers["content-type"] == "text/html"
    assert b"charset" not in page.content.lower()
    assert int(page.headers["content-length"]) == len(page.content)


def new_user_form(c: PlainClient, sb: Sandbox, company: str = DEMO_CO) -> Page:
    return c.activate(open_company(c, sb.env["SII_ENROLL_URL"], company), "Ingresar Nuevo Usuario")


def confirm(c: PlainClient, sb: Sandbox, user: str = USER, company: str = DEMO_CO, **flags: bool) -> Page:
    page = new_user_form(c, sb, company)
    body, dv = user.split("-")
    return c.submit(page, "form1", button="Aceptar", values={
        "RUT_USU": body, "DV_USU": dv, "SUP_USU": flags.get("admin", False),
        "FIRMAR": flags.get("sign", True), "CONSULTAR": flags.get("registry", False),
    })


# -- login ---------------------------------------------------------------------------------------


def test_page_without_session_redirects_to_certificate_entry(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    target = sandbox.env["SII_ENROLL_URL"]
    page = c.get(target, follow=False)
    assert page.status == 302
    # The raw target URL is the whole query string.
    assert page.headers["location"] == f"{sandbox.origins['zeus']}/AUT2000/InicioAutenticacion/IngresoCertificado.html?{target}"


def test_certificate_entry_page(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client(None)
    target = sandbox.env["SII_ENROLL_URL"]
    page = c.get(f"{sandbox.origins['zeus']}/AUT2000/InicioAutenticacion/IngresoCertificado.html?{target}",
                 follow=False)
    assert page.status == 200
    assert_sii_bytes(page)
    assert "confirm(" in page.scripts and "document.form1.submit()" in page.scripts
    form = page.form("form1")
    assert form.method == "POST"
    assert form.action == f"{sandbox.env['SII_CERT_ORIGINS']}/cgi_AUT2000/CAutInicio.cgi?{target}"
    assert [(i.name, i.type, i.value) for i in form.inputs] == [("referencia", "hidden", target)]
    # Dismissing the dialog goes to a local stand-in for www.sii.cl, never to a real host.
    portal = re.search(r'location\.href = "([^"]+)"', page.scripts).group(1)  # type: ignore[union-attr]
    assert portal.startswith(sandbox.origins["zeus"])
    assert "Servicio de Impuestos Internos" in c.get(portal).visible_text


def test_password_entry_page(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.configure(login_entry="password")
    c = sandbox_client("demo")
    target = sandbox.env["SII_ENROLL_URL"]
    page = c.get(target)
    assert page.url.startswith(f"{sandbox.origins['zeus']}/AUT2000/InicioAutenticacion/IngresoRutClave.html?")
    assert_sii_bytes(page)
    assert "IDENTIFICACIÓN DE CONTRIBUYENTES" in page.visible_text
    assert b"IDENTIFICACI&Oacute;N" in page.content
    assert {"rut", "dv", "clave"} <= page.form("form1").field_names()
    assert "INGRESAR" in page.form("form1").buttons()
    cert_link = page.link("Identificarse con Certificado Digital")
    assert cert_link == f"{sandbox.origins['zeus']}/AUT2000/InicioAutenticacion/IngresoCertificado.html?{target}"
    # RUT + Clave is refused with an alert; the certificate link logs in.
    refused = c.submit(page, "form1", button="INGRESAR", values={"rut": "13322924", "dv": "8", "clave": "x"})
    assert refused.alert and "Certificado Digital" in refused.alert
    page = c.get(cert_link)
    assert page.has_form(with_field="RUT_EMP")


def test_login_javascript_response_sets_cookies(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    target = sandbox.env["SII_ENROLL_URL"]
    login = f"{sandbox.env['SII_CERT_ORIGINS']}/cgi_AUT2000/CAutInicio.cgi?{target}"
    page = c.post(login, {"referencia": target}, follow=False)
    assert page.status == 200
    assert_sii_bytes(page)
    set_cookies = page.headers.get_list("set-cookie")
    names = {h.split("=", 1)[0] for h in set_cookies}
    assert {"TOKEN", "CSESSIONID", "RUT_NS", "DV_NS"} <= names
    assert "RUT_NS=10345678; path=/" in set_cookies and "DV_NS=9; path=/" in set_cookies
    assert 'document.cookie = "NETSCAPE_LIVEWIRE.rut=10345678; path=/";' in page.text
    locexp = re.search(r'document\.cookie = "NETSCAPE_LIVEWIRE\.locexp=[^;]+; expires=([^;]+); path=/";', page.text)
    assert locexp is not None
    expires = email.utils.parsedate_to_datetime(locexp.group(1))
    assert abs((expires - dt.datetime.now(dt.UTC)).total_seconds() - 7200) < 120
    assert f'location.replace("{target}");' in page.text
    # Following the page (cookies from JavaScript + Set-Cookie) reaches the enrolment form.
    assert c.get(login.replace("CAutInicio", "x"), follow=False).status == 404
    final = c._follow(page)
    assert final.url == target and final.has_form(with_field="RUT_EMP")
    sessions = sandbox.state()["sessions"]["10345678-9"]
    assert sessions["logins"] == 1 and sessions["active"] == 1


def test_login_redirect_response(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.configure(login_response="redirect")
    c = sandbox_client("demo")
    target = sandbox.env["SII_ENROLL_URL"]
    page = c.post(f"{sandbox.env['SII_CERT_ORIGINS']}/cgi_AUT2000/CAutInicio.cgi?{target}",
                  {"referencia": target}, follow=False)
    assert page.status == 302 and page.headers["location"] == target
    names = {h.split("=", 1)[0] for h in page.headers.get_list("set-cookie")}
    assert {"TOKEN", "CSESSIONID", "RUT_NS", "DV_NS", "NETSCAPE_LIVEWIRE.locexp"} <= names
    assert c.get(target).has_form(with_field="RUT_EMP")


def test_logout_clears_the_session(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    assert c.get(sandbox.env["SII_ENROLL_URL"]).has_form(with_field="RUT_EMP")
    out = c.get(sandbox.env["SII_LOGOUT_URL"])
    assert out.status == 200 and "Su sesión ha finalizado" in out.visible_text
    assert any(h.startswith("TOKEN=DEL") for h in out.headers.get_list("set-cookie"))
    assert c.get(sandbox.env["SII_ENROLL_URL"], follow=False).status == 302
    s = sandbox.state()["sessions"]["10345678-9"]
    assert (s["logins"], s["logouts"], s["active"]) == (1, 1, 0)


@pytest.mark.parametrize("cert,holder", [("serial_only", "10345678-9"), ("lowercase_k", "15000005-K")])
def test_rut_read_from_serial_number_and_lowercase_k(sandbox: Sandbox, sandbox_client: Client,
                                                     cert: str, holder: str) -> None:
    c = sandbox_client(cert)
    company = DEMO_CO if holder == "10345678-9" else "76999999-K"
    page = enroll(c, sandbox.env["SII_ENROLL_URL"], company, USER, sign=True)
    assert "Se ha grabado satisfactoriamente" in page.visible_text
    assert sandbox.state()["log"][-1]["by"] == holder


def test_certificate_without_rut_goes_to_errorp(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("no_rut")
    page = c.get(sandbox.env["SII_ENROLL_URL"])
    assert page.url.endswith("/errorp.html")
    assert "No ha sido posible obtener la identificación" in page.visible_text
    assert any(h.status == 302 and h.url.startswith(sandbox.env["SII_CERT_ORIGINS"]) for h in c.history)


def test_company_holder_can_log_in_but_administers_nothing(sandbox: Sandbox, sandbox_client: Client) -> None:
    page = open_company(sandbox_client("company_holder"), sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert "no está autorizado para operar en la empresa" in page.visible_text


# -- enrolment -----------------------------------------------------------------------------------


def test_company_form(sandbox: Sandbox, sandbox_client: Client) -> None:
    page = sandbox_client("demo").get(sandbox.env["SII_ENROLL_URL"])
    assert_sii_bytes(page)
    assert "MANTENCION DE USUARIOS AUTORIZADOS" in page.visible_text
    assert "Ingrese el rut de la empresa" in page.visible_text
    form = page.form("form1")
    assert {"RUT_EMP", "DV_EMP", "ORDEN"} <= form.field_names()
    assert form.buttons() == ["Ingresar"]
    assert [i.name for i in form.inputs if i.type == "submit"] == ["ACEPTAR"]
    # Old markup, entities and raw ISO-8859-1 bytes side by side.
    assert b"<TABLE" in page.content and b"<FONT" in page.content
    assert b"autorizaci&oacute;n" in page.content
    assert b"Alfab\xe9tico" in page.content
    assert "Alfabético" in page.visible_text and "Por Rut" in page.visible_text
    with pytest.raises(UnicodeDecodeError):
        page.content.decode("utf-8")


def test_full_enrolment_with_buttons(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert_sii_bytes(listing)
    text = listing.visible_text
    assert "COMERCIAL DEMO SPA" in text and "76086428-5" in text
    assert "10.345.678-9 MARIA JOSE SOTO PEREZ SI SI SI" in text
    assert "Ingresar Nuevo Usuario" in listing.form("form1").buttons()
    assert sum(f.buttons() == ["Modificar"] for f in listing.forms) == 2

    form = c.activate(listing, "Ingresar Nuevo Usuario")
    assert_sii_bytes(form)
    f1 = form.form("form1")
    assert {"RUT_USU", "DV_USU", "SUP_USU", "FIRMAR", "CONSULTAR"} <= f1.field_names()
    assert f1.buttons() == ["Aceptar"]
    labels = form.visible_text
    for label in ("Usuario Administrador", "Firmar Documentos", "Registro"):
        assert label in labels

    conf = c.submit(form, "form1", button="Aceptar",
                    values={"RUT_USU": "11111111", "DV_USU": "1", "FIRMAR": True, "CONSULTAR": True})
    assert_sii_bytes(conf)
    t = conf.visible_text
    assert "CONFIRMACION USUARIO AUTORIZADO" in t
    assert ("Se está creando el siguiente usuario en la empresa COMERCIAL DEMO SPA, Rut 76086428-5, "
            "con los siguientes antecedentes:") in t
    assert b"Se est&aacute; creando" in conf.content
    for row in ("Rut Usuario 11111111-1", "Nombre Usuario JUAN PEREZ GONZALEZ", "Usuario-Administrador NO",
                "Firmar Documentos SI", "Registro SI", "Autorizado por MARIA JOSE SOTO PEREZ"):
        assert row in t
    assert "key" in conf.form("form1").field_names()
    assert conf.form("form1").buttons() == ["Grabar Usuario", "Modificar Datos"]
    assert conf.form("form1").action.endswith("/cvc_cgi/dte/eu_graba_usuario")

    result = c.activate(conf, "Grabar Usuario")
    assert result.status == 200
    assert_sii_bytes(result)
    t = result.visible_text
    assert "INGRESO DE USUARIOS AUTORIZADOS" in t
    assert ("Se ha grabado satisfactoriamente el nuevo usuario en la empresa COMERCIAL DEMO SPA, Rut 76086428-5, "
            "con los siguientes antecedentes:") in t
    assert "Rut Usuario 11111111-1" in t and "Autorizado por MARIA JOSE SOTO PEREZ" in t
    assert result.has_control("Ingresar Otro Usuario") and result.has_control("Modificar Otro Usuario")

    # The state file on disk has the user and the log entry.
    on_disk = json.loads(sandbox.store.path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    user = on_disk["companies"][DEMO_CO]["users"]["11111111-1"]
    assert (user["admin"], user["sign"], user["registry"], user["authorized_by"]) == (False, True, True, "10345678-9")
    assert on_disk["log"][-1] | {"at": None} == {
        "at": None, "action": "create", "company": DEMO_CO, "user": "11111111-1",
        "admin": False, "folios": False, "annul": False, "sign": True, "send": False, "registry": True,
        "by": "10345678-9",
    }
    # "Ingresar Otro Usuario" goes back to a fresh new-user form; "Modificar Otro Usuario" to the list.
    assert c.activate(result, "Ingresar Otro Usuario").has_form(with_field="RUT_USU")
    assert "JUAN PEREZ GONZALEZ" in c.activate(result, "Modificar Otro Usuario").visible_text


def test_full_enrolment_with_links_and_two_company_screens(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.configure(actions="links", company_rut_screens=2)
    c = sandbox_client("demo")
    first = c.get(sandbox.env["SII_ENROLL_URL"])
    second = c.submit(first, "form1", button="Ingresar", values={"RUT_EMP": "76086428", "DV_EMP": "5"})
    assert "Ingrese el rut de la empresa" in second.visible_text
    assert second.form("form1").action != first.form("form1").action
    listing = c.submit(second, "form1", button="Ingresar", values={"RUT_EMP": "76086428", "DV_EMP": "5"})
    assert listing.link("Ingresar Nuevo Usuario") is not None
    conf = confirm(c, sandbox, sign=True)
    assert conf.link("Grabar Usuario") == "javascript:enviar('Grabar Usuario')"
    assert conf.link("Modificar Datos") == "javascript:enviar('Modificar Datos')"
    result = c.activate(conf, "Grabar Usuario")
    assert "Se ha grabado satisfactoriamente" in result.visible_text
    assert result.link("Ingresar Otro Usuario") and result.link("Modificar Otro Usuario")
    assert any(u["rut"] == USER for u in sandbox.users(DEMO_CO))


def test_save_without_valid_key_is_http_500(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    conf = confirm(c, sandbox)
    form = conf.form("form1")
    fields = [(i.name, i.value) for i in form.inputs if i.type == "hidden"]
    no_key = [(k, v) for k, v in fields if k != "key"] + [("ACEPTAR", "Grabar Usuario")]
    r = c.post(form.action, no_key)
    assert r.status == 500
    bad_key = no_key + [("key", "0" * 40)]
    assert c.post(form.action, bad_key).status == 500
    good = fields + [("ACEPTAR", "Grabar Usuario")]
    assert c.post(form.action, good).status == 200
    assert c.post(form.action, good).status == 500  # keys are single-use
    assert sum(1 for e in sandbox.state()["log"] if e["user"] == USER) == 1


def test_modificar_datos_returns_the_filled_form(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    back = c.activate(confirm(c, sandbox, admin=True, sign=False, registry=True), "Modificar Datos")
    f = back.form("form1")
    values = {i.name: (i.value, i.checked) for i in f.inputs}
    assert values["RUT_USU"][0] == "11111111" and values["DV_USU"][0] == "1"
    assert values["SUP_USU"][1] and not values["FIRMAR"][1] and values["CONSULTAR"][1]
    assert not any(u["rut"] == USER for u in sandbox.users(DEMO_CO))


def test_new_user_form_has_sii_validation_script(sandbox: Sandbox, sandbox_client: Client) -> None:
    page = new_user_form(sandbox_client("demo"), sandbox)
    for message in ("Ingrese un RUT y un DV", "El Rut debe contener solo números (sin puntos).",
                    "RUT incorrecto según Módulo 11", "No ha ingresado el dígito verificador",
                    "El rut debe ser de una persona natural.",
                    "Debe seleccionar al menos un privilegio para el usuario."):
        assert f'alert("{message}")'.encode("iso-8859-1") in page.content
    assert 'onSubmit="return valida()"' in page.text


@pytest.mark.parametrize("body,dv,flags,message", [
    ("", "", {"FIRMAR": True}, "Ingrese un RUT y un DV"),
    ("11.111.111", "1", {"FIRMAR": True}, "El Rut debe contener solo números (sin puntos)."),
    ("11111111", "", {"FIRMAR": True}, "No ha ingresado el dígito verificador"),
    ("11111111", "2", {"FIRMAR": True}, "RUT incorrecto según Módulo 11"),
    ("76086428", "5", {"FIRMAR": True}, "El rut debe ser de una persona natural."),
    ("11111111", "1", {}, "Debe seleccionar al menos un privilegio para el usuario."),
])
def test_new_user_server_side_validation(sandbox: Sandbox, sandbox_client: Client, body: str, dv: str,
                                         flags: dict[str, bool], message: str) -> None:
    c = sandbox_client("demo")
    page = new_user_form(c, sandbox)
    answer = c.submit(page, "form1", button="Aceptar", values={"RUT_USU": body, "DV_USU": dv, **flags})
    assert answer.status == 200 and answer.alert == message
    assert "history.back()" in answer.scripts


def test_unknown_person_gets_a_blank_name(sandbox: Sandbox, sandbox_client: Client) -> None:
    conf = confirm(sandbox_client("demo"), sandbox, user="9876543-3")
    assert "Nombre Usuario Usuario-Administrador" in conf.visible_text


def test_user_list_ordering(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    sandbox.add_user(DEMO_CO, "18765432-7", sign=True)  # DIEGO ... sorts first by name, last by RUT
    by_name = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO, order="A").visible_text
    by_rut = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO, order="R").visible_text
    assert by_name.index("DIEGO") < by_name.index("ROSA")
    assert by_rut.index("7.880.442-4") < by_rut.index("10.345.678-9") < by_rut.index("18.765.432-7")


def test_edit_update_and_delete(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    rosa = next(f for f in listing.forms if f.buttons() == ["Modificar"]
                and ("RUT_USU", "7880442") in [(i.name, i.value) for i in f.inputs])
    edit = c.submit(listing, rosa.name, button="Modificar")
    assert_sii_bytes(edit)
    f = edit.form("form1")
    checked = {i.name: i.checked for i in f.inputs if i.type == "checkbox"}
    assert checked == {"SUP_USU": False, "FIRMAR": True, "CONSULTAR": True, "ELIMINAR": False}
    assert f.buttons() == ["Guardar Cambios"]
    assert "Eliminar usuario" in edit.visible_text

    saved = c.submit(edit, "form1", button="Guardar Cambios", values={"SUP_USU": True, "CONSULTAR": False})
    assert "Se ha modificado satisfactoriamente el usuario en la empresa COMERCIAL DEMO SPA" in saved.visible_text
    assert "Usuario-Administrador SI" in saved.visible_text and "Registro NO" in saved.visible_text
    on_disk = json.loads(sandbox.store.path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    rosa_state = on_disk["companies"][DEMO_CO]["users"]["7880442-4"]
    assert (rosa_state["admin"], rosa_state["sign"], rosa_state["registry"]) == (True, True, False)
    assert on_disk["log"][-1]["action"] == "update"

    none = c.submit(edit, "form1", button="Guardar Cambios",
                    values={"SUP_USU": False, "FIRMAR": False, "CONSULTAR": False})
    assert none.alert == "Debe seleccionar al menos un privilegio para el usuario."

    deleted = c.submit(edit, "form1", button="Guardar Cambios", values={"ELIMINAR": True})
    assert "ELIMINACION DE USUARIOS AUTORIZADOS" in deleted.visible_text
    assert "Se ha eliminado satisfactoriamente el usuario 7880442-4" in deleted.visible_text
    on_disk = json.loads(sandbox.store.path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    assert "7880442-4" not in on_disk["companies"][DEMO_CO]["users"]
    assert on_disk["log"][-1]["action"] == "delete"
    assert "ROSA" not in c.activate(deleted, "Modificar Otro Usuario").visible_text


def test_edit_links_mode(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.configure(actions="links")
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    hrefs = [h for t, h in listing.links if t == "Modificar"]
    assert len(hrefs) == 2
    edit = c.get(next(h for h in hrefs if "RUT_USU=7880442" in h))
    assert "ROSA ELENA ARAYA CASTRO" in edit.visible_text


def test_wrong_button_value_gets_a_generic_error(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    page = c.get(sandbox.env["SII_ENROLL_URL"])
    action = page.form("form1").action
    answer = c.post(action, {"RUT_EMP": "76086428", "DV_EMP": "5", "ACEPTAR": "Enviar"})
    assert "No ha sido posible completar su solicitud" in answer.visible_text
    assert c.post(action, {"RUT_EMP": "76086428", "DV_EMP": "5"}).visible_text.count("No ha sido posible") == 1


def test_alternate_layout_keeps_names_and_texts(sandbox: Sandbox, sandbox_client: Client) -> None:
    standard = new_user_form(sandbox_client("demo"), sandbox)
    sandbox.set_faults(alt_layout=True)
    c = sandbox_client("demo")
    alt = new_user_form(c, sandbox)
    assert alt.content != standard.content
    assert alt.form("form1").field_names() == standard.form("form1").field_names()
    assert b"<DIV" in alt.content and b"<DIV" not in standard.content
    page = enroll(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO, USER, admin=True)
    assert "Se ha grabado satisfactoriamente el nuevo usuario" in page.visible_text


def test_admin2_and_foreign_company(sandbox: Sandbox, sandbox_client: Client) -> None:
    foreign = "77879240-0"
    refused = open_company(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], foreign)
    assert f"Usted no está autorizado para operar en la empresa {foreign}" in refused.visible_text
    page = enroll(sandbox_client("admin2"), sandbox.env["SII_ENROLL_URL"], foreign, USER, sign=True)
    assert "Autorizado por CAROLINA ANDREA MUÑOZ TAPIA" in page.visible_text
    assert b"MU&Ntilde;OZ" in page.content


def test_session_cookie_is_shared_across_ports(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    c.get(sandbox.env["SII_ENROLL_URL"])
    hosts = {urllib.parse.urlsplit(o).hostname for o in (sandbox.origins["hercules"], sandbox.origins["palena"])}
    assert hosts == {"127.0.0.1"}
    token = [ck for ck in c.http.cookies.jar if ck.name == "TOKEN"]
    assert len(token) == 1 and token[0].port is None
