"""HTML of the AUT2000 pages (zeusr- and herculesr-like): portal, login entry pages, login answers,
authentication errors, logout, and the "servicio no disponible" help page under ``/ayudas/``.

Written like :mod:`sii_sandbox.pages` (ISO-8859-1, entities, old markup); see there for the helpers.
"""

from __future__ import annotations

from .pages import FONT, JS_RUT, alert_page, ent, heading, hidden, js_str, message_page, raw, shell

# ---------------------------------------------------------------------------------------------
# zeus-like pages (login entry)
# ---------------------------------------------------------------------------------------------


def portal_page() -> str:
    """A stand-in for www.sii.cl (where a dismissed certificate dialog lands)."""
    body = heading("Servicio de Impuestos Internos")
    body += (
        f'<P ALIGN="CENTER">{FONT}Portal de pruebas (sandbox). Usted no ha ingresado con su certificado '
        "digital.</FONT></P>\n"
        f'<P ALIGN="CENTER">{FONT}Para realizar tr&aacute;mites debe identificarse.</FONT></P>\n'
    )
    return shell(body, title="SII | Servicio de Impuestos Internos")


def password_login_page(target: str, cert_entry_url: str, action: str) -> str:
    """IDENTIFICACIÓN DE CONTRIBUYENTES: RUT + Clave form (INGRESAR) and the certificate link."""
    script = JS_RUT + """
function enviaClave() {
  var f = document.form1;
  if (!validaRut(f.rut.value, f.dv.value, false)) return false;
  if (f.clave.value == "") { alert("Ingrese su clave"); return false; }
  return true;
}
"""
    body = heading("IDENTIFICACI&Oacute;N DE CONTRIBUYENTES")
    body += (
        f'<FORM NAME="form1" METHOD="POST" ACTION="{raw(action)}" onSubmit="return enviaClave()">\n'
        + hidden({"referencia": target})
        + '<TABLE WIDTH="60%" BORDER="0" ALIGN="CENTER" CELLPADDING="4">\n'
        f'<TR><TD>{FONT}RUT</FONT></TD><TD><INPUT TYPE="text" NAME="rut" SIZE="9" MAXLENGTH="8">'
        f' - <INPUT TYPE="text" NAME="dv" SIZE="1" MAXLENGTH="1"></TD></TR>\n'
        f'<TR><TD>{FONT}Clave</FONT></TD><TD><INPUT TYPE="password" NAME="clave" SIZE="12" MAXLENGTH="30"></TD></TR>\n'
        '<TR><TD COLSPAN="2" ALIGN="CENTER"><INPUT TYPE="submit" NAME="ACEPTAR" VALUE="INGRESAR"></TD></TR>\n'
        f'<TR><TD COLSPAN="2" ALIGN="CENTER">{FONT}<A HREF="{raw(cert_entry_url)}">'
        "Identificarse con Certificado Digital</A></FONT></TD></TR>\n"
        "</TABLE>\n</FORM>\n"
    )
    return shell(body, title="SII - Identificaci&oacute;n de Contribuyentes", script=script)


def cert_entry_page(target: str, hercules_action: str, portal_url: str) -> str:
    """IngresoCertificado.html: confirm() then auto-submit ``referencia`` to the certificate host."""
    script = f"""
function ingresar() {{
  if (confirm("Para ingresar con su Certificado Digital, éste debe estar instalado en su navegador. ¿Desea continuar?")) {{
    document.form1.submit();
  }} else {{
    location.href = {js_str(portal_url)};
  }}
}}
"""
    body = heading("Autenticaci&oacute;n con Certificado Digital")
    body += (
        f'<FORM NAME="form1" METHOD="POST" ACTION="{raw(hercules_action)}">\n'
        + hidden({"referencia": target})
        + f'<P ALIGN="CENTER">{FONT}Espere un momento mientras se verifica su certificado digital...</FONT></P>\n'
        "</FORM>\n"
    )
    return shell(body, title="SII - Ingreso con Certificado Digital", script=script, onload="ingresar()")


def logout_page(portal_url: str) -> str:
    """autTermino.cgi answer: session closed, with a link back to the portal."""
    body = heading("T&eacute;rmino de Sesi&oacute;n")
    body += (
        f'<P ALIGN="CENTER">{FONT}Su sesi&oacute;n ha finalizado correctamente.</FONT></P>\n'
        f'<P ALIGN="CENTER">{FONT}<A HREF="{raw(portal_url)}">Volver al sitio del SII</A></FONT></P>\n'
    )
    return shell(body, title="SII - T&eacute;rmino de Sesi&oacute;n")


def errorp_page() -> str:
    """errorp.html: where a login without a usable certificate ends."""
    body = heading("Error de Autenticaci&oacute;n")
    body += (
        f'<P ALIGN="CENTER">{FONT}No ha sido posible obtener la identificaci&oacute;n desde su certificado '
        "digital. Verifique que su certificado est&eacute; vigente e instalado correctamente.</FONT></P>\n"
    )
    return shell(body, title="SII - Error")


# ---------------------------------------------------------------------------------------------
# herculesr-like pages (certificate login answers)
# ---------------------------------------------------------------------------------------------


def login_js_page(js_cookies: list[str], target: str) -> str:
    """The 200 success page: cookies set from JavaScript, then ``location.replace(target)``."""
    lines = "\n".join(f"document.cookie = {js_str(c)};" for c in js_cookies)
    return (
        "<HTML>\n<HEAD>\n<TITLE>SII - Autenticaci&oacute;n</TITLE>\n"
        '<SCRIPT LANGUAGE="JavaScript">\n'
        f"{lines}\n"
        f"location.replace({js_str(target)});\n"
        "</SCRIPT>\n</HEAD>\n<BODY>\n"
        f"{FONT}Autenticaci&oacute;n exitosa. Si su navegador no avanza, "
        f'<A HREF="{raw(target)}">presione aqu&iacute;</A>.</FONT>\n'
        "</BODY>\n</HTML>\n"
    )


# ---------------------------------------------------------------------------------------------
# Authentication errors and the outage help page
# ---------------------------------------------------------------------------------------------


def auth_error_page(lines: tuple[str, ...] | list[str], code: str, *, style: str = "page",
                    then_url: str = "") -> str:
    """A 200 answer of the login CGI (or of an enrolment page whose session is gone) for an SII
    message code: ``style="page"``: the message paragraphs + "El código de este mensaje es <code>";
    ``style="alert"``: ``alert('<message> El código de este mensaje es <code>')`` then ``then_url``.

    ``lines`` are plain text (accents are written as entities on the page, raw in the alert).
    """
    if style == "alert":
        text = " ".join(lines) + f" El código de este mensaje es {code}"
        then = f"location.href = {js_str(then_url)};" if then_url else "history.back();"
        return alert_page(text, then=then)
    return message_page("Autenticaci&oacute;n", [ent(line) for line in lines], code=code)


def outage_page(portal_url: str) -> str:
    """``/ayudas/900.html``: SII's "servicio no disponible" help page (sandbox wording; SII's exact
    text is not public)."""
    body = heading("Servicio no disponible")
    body += (
        f'<P ALIGN="CENTER">{FONT}Estimado Contribuyente: en estos momentos el servicio que usted solicit&oacute; '
        "no se encuentra disponible.</FONT></P>\n"
        f'<P ALIGN="CENTER">{FONT}Por favor, int&eacute;ntelo m&aacute;s tarde. Disculpe las molestias.</FONT></P>\n'
        f'<P ALIGN="CENTER">{FONT}<A HREF="{raw(portal_url)}">Volver al sitio del SII</A></FONT></P>\n'
    )
    return shell(body, title="SII | Servicio no disponible")
