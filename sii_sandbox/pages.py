"""HTML of the sandbox pages, written the way SII writes them.

Every function returns ``str``; the server encodes it with :func:`to_bytes` (ISO-8859-1, no charset
declared anywhere). On purpose, accents appear both as entities (``autorizaci&oacute;n``) and as raw
ISO-8859-1 bytes (JavaScript alert texts, names in the user list, "Alfabético"), markup is old
(upper-case tags, layout TABLEs, FONT in cells) and forms are ``form1``/``frmN``.

Enrolment pages show the attributes of the company's layout (``company["layout"]``: "mipyme", three
checkboxes, or "market", six; see :mod:`sii_sandbox.attributes`).

``alt=True`` renders the alternative layout used by resilience tests: other table nesting, extra
wrappers and a different order of labels/rows/columns, with the same field names, button values
and texts.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from html.entities import codepoint2name
from urllib.parse import urlencode

from . import attributes as attrs
from .rut import dotted, split

TITLE = "MANTENCION DE USUARIOS AUTORIZADOS"
FONT = '<FONT FACE="Arial, Helvetica, sans-serif" SIZE="2">'
FONT_B = '<FONT FACE="Arial, Helvetica, sans-serif" SIZE="2" COLOR="#003366"><B>'

# Module 11 and field checks shared by the forms. Messages are SII's own (raw ISO-8859-1 in the
# script, as old SII pages ship them).
JS_RUT = """
function soloNumeros(s) {
  if (s.length == 0) return false;
  for (var i = 0; i < s.length; i++) {
    var c = s.charAt(i);
    if (c < "0" || c > "9") return false;
  }
  return true;
}
function calculaDV(rut) {
  var suma = 0;
  var mul = 2;
  for (var i = rut.length - 1; i >= 0; i--) {
    suma = suma + parseInt(rut.charAt(i), 10) * mul;
    if (mul == 7) { mul = 2; } else { mul = mul + 1; }
  }
  var r = 11 - (suma % 11);
  if (r == 11) return "0";
  if (r == 10) return "K";
  return "" + r;
}
function validaRut(rut, dv, persona) {
  if (rut == "" && dv == "") { alert("Ingrese un RUT y un DV"); return false; }
  if (!soloNumeros(rut)) { alert("El Rut debe contener solo números (sin puntos)."); return false; }
  if (dv == "") { alert("No ha ingresado el dígito verificador"); return false; }
  if (calculaDV(rut) != dv.toUpperCase()) { alert("RUT incorrecto según Módulo 11"); return false; }
  if (persona && parseInt(rut, 10) > 49999999) { alert("El rut debe ser de una persona natural."); return false; }
  return true;
}
"""


def to_bytes(page: str) -> bytes:
    """Encode a page as SII serves it: ISO-8859-1 (characters outside it become ``&#N;``)."""
    return page.encode("iso-8859-1", errors="xmlcharrefreplace")


def ent(text: str) -> str:
    """HTML-escape ``text`` and write every non-ASCII character as a named entity (``&oacute;``)."""
    out = []
    for ch in html.escape(text, quote=True):
        cp = ord(ch)
        if cp < 128:
            out.append(ch)
        elif cp in codepoint2name:
            out.append(f"&{codepoint2name[cp]};")
        else:
            out.append(f"&#{cp};")
    return "".join(out)


def raw(text: str) -> str:
    """HTML-escape ``text`` but keep accents as raw characters (ISO-8859-1 bytes once encoded)."""
    return html.escape(text, quote=True)


def js_str(text: str) -> str:
    """Return ``text`` as a double-quoted JavaScript string literal (accents kept raw)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("</", "<\\/") + '"'


def hidden(fields: Mapping[str, str]) -> str:
    """Return hidden INPUTs for ``fields``."""
    return "".join(f'<INPUT TYPE="hidden" NAME="{k}" VALUE="{raw(v)}">\n' for k, v in fields.items())


def shell(body: str, *, alt: bool = False, title: str = "SII - Mantenci&oacute;n de Usuarios Autorizados",
          script: str = "", onload: str = "") -> str:
    """Wrap ``body`` in the page frame (head, logo bar, layout tables)."""
    script_tag = f'<SCRIPT LANGUAGE="JavaScript">\n<!--\n{script}\n//-->\n</SCRIPT>\n' if script else ""
    onload_attr = f' onLoad="{onload}"' if onload else ""
    if not alt:
        return (
            "<HTML>\n<HEAD>\n"
            f"<TITLE>{title}</TITLE>\n"
            f"{script_tag}"
            "</HEAD>\n"
            f'<BODY BGCOLOR="#FFFFFF" LEFTMARGIN="0" TOPMARGIN="0" MARGINWIDTH="0" MARGINHEIGHT="0"{onload_attr}>\n'
            '<TABLE WIDTH="630" BORDER="0" CELLSPACING="0" CELLPADDING="0" ALIGN="CENTER">\n'
            '<TR><TD BGCOLOR="#003366" HEIGHT="40"><FONT FACE="Arial" SIZE="4" COLOR="#FFFFFF">'
            "<B>&nbsp;SII</B> Servicio de Impuestos Internos</FONT></TD></TR>\n"
            '<TR><TD HEIGHT="10">&nbsp;</TD></TR>\n'
            f"<TR><TD>\n{body}\n</TD></TR>\n"
            "</TABLE>\n</BODY>\n</HTML>\n"
        )
    return (
        "<html>\n<head>\n"
        f"<title>{title}</title>\n"
        f"{script_tag}"
        "</head>\n"
        f'<body bgcolor="#F4F4F4"{onload_attr}>\n'
        '<CENTER><DIV ID="contenedor">\n'
        '<TABLE WIDTH="100%" BORDER="0" CELLSPACING="0" CELLPADDING="2">\n'
        '<TR><TD WIDTH="15">&nbsp;</TD><TD>\n'
        '<TABLE WIDTH="640" BORDER="0" CELLSPACING="1" CELLPADDING="3" BGCOLOR="#CCCCCC">\n'
        '<TR><TD BGCOLOR="#FFFFFF"><DIV CLASS="barra"><FONT FACE="Verdana" SIZE="1">'
        "Servicio de Impuestos Internos &gt; Factura Electr&oacute;nica &gt; Usuarios</FONT></DIV></TD></TR>\n"
        f'<TR><TD BGCOLOR="#FFFFFF"><TABLE WIDTH="100%"><TR><TD><DIV CLASS="contenido">\n{body}\n'
        "</DIV></TD></TR></TABLE></TD></TR>\n"
        "</TABLE>\n</TD><TD WIDTH=\"15\">&nbsp;</TD></TR></TABLE>\n"
        "</DIV></CENTER>\n</body>\n</html>\n"
    )


def heading(text: str, *, alt: bool = False) -> str:
    """Return the blue page heading (``text`` is already HTML)."""
    if alt:
        return f'<TABLE WIDTH="100%"><TR><TD ALIGN="LEFT"><H3><FONT FACE="Verdana" COLOR="#003366">{text}</FONT></H3></TD></TR></TABLE>\n'
    return f'<TABLE WIDTH="100%" BORDER="0"><TR><TD ALIGN="CENTER"><FONT FACE="Arial" SIZE="3" COLOR="#003366"><B>{text}</B></FONT></TD></TR></TABLE>\n'


def message_page(title: str, lines: Iterable[str], *, alt: bool = False, back: str | None = None,
                 code: str | None = None) -> str:
    """An SII-style message page (HTTP 200). ``lines`` are already HTML. ``back`` is a URL or "history"."""
    body = heading(title, alt=alt)
    body += '<TABLE WIDTH="90%" BORDER="0" ALIGN="CENTER">\n'
    for line in lines:
        body += f"<TR><TD>{FONT}{line}</FONT></TD></TR>\n"
    if code:
        body += f"<TR><TD>{FONT}El c&oacute;digo de este mensaje es {code}</FONT></TD></TR>\n"
    if back == "history":
        body += f'<TR><TD ALIGN="CENTER"><BR>{FONT}<A HREF="javascript:history.back()">Volver</A></FONT></TD></TR>\n'
    elif back:
        body += f'<TR><TD ALIGN="CENTER"><BR>{FONT}<A HREF="{raw(back)}">Volver</A></FONT></TD></TR>\n'
    body += "</TABLE>\n"
    return shell(body, alt=alt)


def alert_page(message: str, *, then: str = "history.back();") -> str:
    """A 200 page whose only content is ``alert(message)`` followed by ``then`` (SII's error style)."""
    return (
        "<HTML><HEAD>\n<SCRIPT LANGUAGE=\"JavaScript\">\n"
        f"alert({js_str(message)});\n{then}\n"
        "</SCRIPT>\n</HEAD><BODY></BODY></HTML>\n"
    )


# ---------------------------------------------------------------------------------------------
# palena-like pages (enrolment)
# ---------------------------------------------------------------------------------------------


def company_form(action: str, *, with_order: bool, alt: bool, screen: int) -> str:
    """Company RUT form (RUT_EMP/DV_EMP, optional ORDEN radio, ACEPTAR=Ingresar)."""
    script = JS_RUT + """
function validaEmpresa() {
  var f = document.form1;
  return validaRut(f.RUT_EMP.value, f.DV_EMP.value, false);
}
"""
    intro = (
        "Ingrese el rut de la empresa para la cual desea realizar la mantenci&oacute;n de usuarios "
        "autorizados:"
        if screen == 1
        else "Ingrese el rut de la empresa nuevamente para confirmar la selecci&oacute;n:"
    )
    rut_inputs = (
        '<INPUT TYPE="text" NAME="RUT_EMP" SIZE="9" MAXLENGTH="8"> - '
        '<INPUT TYPE="text" NAME="DV_EMP" SIZE="1" MAXLENGTH="1">'
    )
    alf = '<INPUT TYPE="radio" NAME="ORDEN" VALUE="A" CHECKED>Alfabético'
    por_rut = '<INPUT TYPE="radio" NAME="ORDEN" VALUE="R">Por Rut'
    submit = '<INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Ingresar">'
    if not alt:
        rows = (
            f'<TR><TD COLSPAN="2">{FONT}{intro}</FONT></TD></TR>\n'
            f'<TR><TD WIDTH="35%">{FONT_B}Rut Empresa</B></FONT></TD><TD>{rut_inputs}</TD></TR>\n'
        )
        if with_order:
            rows += f'<TR><TD>{FONT_B}Ordenar usuarios</B></FONT></TD><TD>{FONT}{alf}&nbsp;&nbsp;{por_rut}</FONT></TD></TR>\n'
        rows += f'<TR><TD COLSPAN="2" ALIGN="CENTER"><BR>{submit}</TD></TR>\n'
        table = f'<TABLE WIDTH="80%" BORDER="0" ALIGN="CENTER" CELLPADDING="3">\n{rows}</TABLE>\n'
    else:
        order = f'<DIV>{FONT}Orden: {por_rut} {alf}</FONT></DIV>\n' if with_order else ""
        table = (
            f'<DIV>{FONT}{intro}</FONT></DIV>\n'
            '<TABLE BORDER="0"><TR><TD><TABLE BORDER="0"><TR>'
            f'<TD>{rut_inputs}</TD><TD>{FONT}(Rut Empresa)</FONT></TD></TR></TABLE></TD></TR></TABLE>\n'
            f"{order}<DIV ALIGN=\"RIGHT\">{submit}</DIV>\n"
        )
    body = heading(TITLE, alt=alt)
    body += f'<FORM NAME="form1" METHOD="POST" ACTION="{action}" onSubmit="return validaEmpresa()">\n{table}</FORM>\n'
    body += (
        f'<P>{FONT}<I>Para m&aacute;s informaci&oacute;n sobre la autorizaci&oacute;n de usuarios consulte '
        "la ayuda de Factura Electr&oacute;nica.</I></FONT></P>\n"
    )
    return shell(body, alt=alt, script=script)


def _company_line(company: Mapping[str, object], alt: bool) -> str:
    name, rut = str(company["name"]), str(company["rut"])
    if alt:
        return f'<DIV>{FONT}Rut: {rut} &nbsp; Empresa: {ent(name)}</FONT></DIV>\n'
    return (
        '<TABLE WIDTH="90%" ALIGN="CENTER"><TR>'
        f"<TD>{FONT_B}Empresa:</B></FONT> {FONT}{ent(name)}</FONT></TD>"
        f'<TD ALIGN="RIGHT">{FONT_B}Rut:</B></FONT> {FONT}{rut}</FONT></TD></TR></TABLE>\n'
    )


def company_fields(company_rut: str, order: str = "A") -> dict[str, str]:
    """Hidden fields that carry the company context between pages."""
    body, dv = split(company_rut)
    return {"RUT_EMP": body, "DV_EMP": dv, "ORDEN": order}


def action_controls(actions: str, items: list[tuple[str, str, dict[str, str]]], *, first_form: int = 2) -> str:
    """Navigation controls as links (GET with a query string) or submit buttons (POST forms).

    ``items`` are ``(label, cgi, fields)``; buttons post ``ACEPTAR=<label>`` plus ``fields``.
    """
    parts = []
    for i, (label, cgi, fields) in enumerate(items):
        if actions == "links":
            parts.append(f'{FONT}<A HREF="{cgi}?{raw(urlencode(fields))}">{label}</A></FONT>')
        else:
            parts.append(
                f'<FORM NAME="frm{first_form + i}" METHOD="POST" ACTION="{cgi}" STYLE="display:inline">\n'
                + hidden(fields)
                + f'<INPUT TYPE="submit" NAME="ACEPTAR" VALUE="{label}"></FORM>'
            )
    return '<TABLE ALIGN="CENTER" BORDER="0"><TR>' + "".join(
        f'<TD ALIGN="CENTER" WIDTH="200">{p}</TD>' for p in parts
    ) + "</TR></TABLE>\n"


def _si_no(flag: object) -> str:
    return "SI" if flag else "NO"


def user_list_page(company: Mapping[str, object], users: list[dict[str, object]], *, order: str,
                   actions: str, alt: bool) -> str:
    """The company's authorized users (Rut, Nombre, flags) + Ingresar Nuevo Usuario + Modificar per user."""
    ctx = company_fields(str(company["rut"]), order)
    if order == "R":
        users = sorted(users, key=lambda u: int(str(u["rut"]).split("-")[0]))
    else:
        users = sorted(users, key=lambda u: (str(u["name"]) or "~", str(u["rut"])))
    body = heading(TITLE, alt=alt) + _company_line(company, alt)
    layout = attrs.layout_of(company)
    flag_fields = list(attrs.fields(layout))
    if alt:
        flag_fields.reverse()
    flag_cols = [attrs.column_label(f, layout) for f in flag_fields]
    cols = ["Rut", "Nombre", *flag_cols, "&nbsp;"]
    if alt:
        cols = ["Nombre", "Rut", *flag_cols, "Acci&oacute;n"]
    head = "".join(f'<TD BGCOLOR="#D6DFEF" ALIGN="CENTER">{FONT_B}{c}</B></FONT></TD>' for c in cols)
    rows = []
    for n, u in enumerate(users):
        urut = str(u["rut"])
        body_u, dv_u = split(urut)
        fields = {**ctx, "RUT_USU": body_u, "DV_USU": dv_u}
        if actions == "links":
            edit = f'{FONT}<A HREF="eu_modifica_usuario?{raw(urlencode(fields))}">Modificar</A></FONT>'
        else:
            edit = (
                f'<FORM NAME="frm{10 + n}" METHOD="POST" ACTION="eu_modifica_usuario">\n' + hidden(fields)
                + '<INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Modificar"></FORM>'
            )
        cells = {
            "Rut": dotted(urut) if not alt else urut,
            "Nombre": raw(str(u["name"])) or "&nbsp;",
            **{f: _si_no(u.get(attrs.FIELD_KEYS[f])) for f in flag_fields},
        }
        order_keys = ["Rut", "Nombre", *flag_fields] if not alt else ["Nombre", "Rut", *flag_fields]
        tds = "".join(f"<TD>{FONT}{cells[k]}</FONT></TD>" for k in order_keys)
        rows.append(f"<TR>{tds}<TD ALIGN=\"CENTER\">{edit}</TD></TR>")
    if not rows:
        rows.append(f'<TR><TD COLSPAN="{len(cols)}" ALIGN="CENTER">{FONT}La empresa no tiene usuarios autorizados.'
                    "</FONT></TD></TR>")
    table = (
        '<TABLE WIDTH="95%" BORDER="1" CELLSPACING="0" CELLPADDING="2" ALIGN="CENTER">\n'
        f"<TR>{head}</TR>\n" + "\n".join(rows) + "\n</TABLE>\n"
    )
    if alt:
        table = f'<TABLE WIDTH="100%"><TR><TD><DIV CLASS="tabla">{table}</DIV></TD></TR></TABLE>\n'
    new_user: str
    if actions == "links":
        new_user = f'<P ALIGN="CENTER">{FONT}<A HREF="eu_ingresa_usuario?{raw(urlencode(ctx))}">Ingresar Nuevo Usuario</A></FONT></P>\n'
    else:
        new_user = (
            '<FORM NAME="form1" METHOD="POST" ACTION="eu_ingresa_usuario">\n' + hidden(ctx)
            + '<P ALIGN="CENTER"><INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Ingresar Nuevo Usuario"></P></FORM>\n'
        )
    back = f'<P ALIGN="CENTER">{FONT}<A HREF="eu_enrola_usuarios">Volver</A></FONT></P>\n'
    body += (new_user + table if alt else table + new_user) + back
    return shell(body, alt=alt)


def _privilege_rows(checked: Mapping[str, bool], alt: bool, layout: str = attrs.DEFAULT_LAYOUT) -> str:
    boxes = [(f, attrs.label(f, layout)) for f in attrs.fields(layout)]
    if alt:
        boxes = boxes[1:] + boxes[:1]
    rows = []
    for name, label in boxes:
        box = f'<INPUT TYPE="checkbox" NAME="{name}" VALUE="S"{" CHECKED" if checked.get(name) else ""}>'
        if alt:
            rows.append(f'<TR><TD ALIGN="RIGHT">{FONT}{label}</FONT></TD><TD>{box}</TD></TR>')
        else:
            rows.append(f'<TR><TD WIDTH="35%">&nbsp;</TD><TD>{box}{FONT}{label}</FONT></TD></TR>')
    return "\n".join(rows) + "\n"


def _none_checked_js(layout: str) -> str:
    """JavaScript condition: no privilege checkbox of the layout is ticked."""
    return " && ".join(f"!f.{name}.checked" for name in attrs.fields(layout))


def new_user_form(company: Mapping[str, object], *, order: str, alt: bool,
                  prefill: Mapping[str, str] | None = None) -> str:
    """Ingreso de nuevo usuario: form1 with RUT_USU, DV_USU, the layout's checkboxes (SUP_USU, FIRMAR,
    CONSULTAR; market also OBTENER, ANULAR, ENVIAR), ACEPTAR=Aceptar."""
    prefill = prefill or {}
    layout = attrs.layout_of(company)
    script = JS_RUT + """
function valida() {
  var f = document.form1;
  if (!validaRut(f.RUT_USU.value, f.DV_USU.value, true)) return false;
  if (NONE_CHECKED) {
    alert("Debe seleccionar al menos un privilegio para el usuario.");
    return false;
  }
  return true;
}
""".replace("NONE_CHECKED", _none_checked_js(layout))
    ctx = company_fields(str(company["rut"]), order)
    rut_inputs = (
        f'<INPUT TYPE="text" NAME="RUT_USU" SIZE="9" MAXLENGTH="8" VALUE="{raw(prefill.get("RUT_USU", ""))}"> - '
        f'<INPUT TYPE="text" NAME="DV_USU" SIZE="1" MAXLENGTH="1" VALUE="{raw(prefill.get("DV_USU", ""))}">'
    )
    checked = {k: prefill.get(k) == "S" for k in attrs.fields(layout)}
    body = heading(TITLE, alt=alt) + _company_line(company, alt)
    body += heading("INGRESO DE NUEVO USUARIO AUTORIZADO", alt=alt) if not alt else f"<P>{FONT_B}Nuevo usuario</B></FONT></P>\n"
    table = '<TABLE WIDTH="80%" BORDER="0" ALIGN="CENTER" CELLPADDING="3">\n'
    rut_row = f'<TR><TD WIDTH="35%">{FONT_B}Rut Usuario</B></FONT></TD><TD>{rut_inputs}</TD></TR>\n'
    priv_title = f'<TR><TD COLSPAN="2">{FONT}Seleccione los privilegios del usuario:</FONT></TD></TR>\n'
    if alt:
        table += priv_title + _privilege_rows(checked, alt, layout) + rut_row
    else:
        table += rut_row + priv_title + _privilege_rows(checked, alt, layout)
    table += '<TR><TD COLSPAN="2" ALIGN="CENTER"><BR><INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Aceptar"></TD></TR>\n</TABLE>\n'
    if alt:
        table = f'<TABLE WIDTH="100%"><TR><TD><TABLE WIDTH="100%"><TR><TD>{table}</TD></TR></TABLE></TD></TR></TABLE>\n'
    body += (
        '<FORM NAME="form1" METHOD="POST" ACTION="eu_confirma_usuario" onSubmit="return valida()">\n'
        + hidden(ctx) + table + "</FORM>\n"
    )
    body += f'<P ALIGN="CENTER">{FONT}<A HREF="eu_lista_usuarios?{raw(urlencode(ctx))}">Volver</A></FONT></P>\n'
    return shell(body, alt=alt, script=script)


def detail_rows(record: Mapping[str, object], holder_name: str, *, alt: bool, by_label: str = "Autorizado por",
                layout: str = attrs.DEFAULT_LAYOUT) -> str:
    """The antecedentes table: Rut Usuario, Nombre Usuario, one SI/NO row per attribute of the layout
    (MIPYME: Usuario-Administrador, Firmar Documentos, Registro) and Autorizado por."""
    flag_rows = [(attrs.row_label(f, layout), _si_no(record.get(attrs.FIELD_KEYS[f]))) for f in attrs.fields(layout)]
    if alt:
        flag_rows.reverse()
    items = [
        ("Rut Usuario", str(record["rut"])),
        ("Nombre Usuario", ent(str(record.get("name") or "")) or "&nbsp;"),
        *flag_rows,
        (by_label, ent(holder_name)),
    ]
    if alt:
        inner = "".join(
            f'<TR><TD><TABLE WIDTH="100%" BORDER="0"><TR><TD WIDTH="45%" BGCOLOR="#EEEEEE">{FONT}{k}:</FONT></TD>'
            f"<TD>{FONT}<B>{v}</B></FONT></TD></TR></TABLE></TD></TR>\n"
            for k, v in items
        )
        return f'<DIV CLASS="detalle"><TABLE WIDTH="85%" BORDER="0" ALIGN="CENTER">\n{inner}</TABLE></DIV>\n'
    inner = "".join(
        f'<TR><TD WIDTH="40%" BGCOLOR="#D6DFEF">{FONT_B}{k}</B></FONT></TD><TD>{FONT}{v}</FONT></TD></TR>\n'
        for k, v in items
    )
    return f'<TABLE WIDTH="80%" BORDER="1" CELLSPACING="0" CELLPADDING="3" ALIGN="CENTER">\n{inner}</TABLE>\n'


def confirm_page(company: Mapping[str, object], record: Mapping[str, object], holder_name: str, *,
                 key: str, order: str, actions: str, alt: bool) -> str:
    """CONFIRMACION USUARIO AUTORIZADO with hidden ``key`` and Grabar Usuario / Modificar Datos."""
    ctx = company_fields(str(company["rut"]), order)
    body_u, dv_u = split(str(record["rut"]))
    layout = attrs.layout_of(company)
    fields = {
        **ctx, "RUT_USU": body_u, "DV_USU": dv_u,
        **{f: "S" if record.get(attrs.FIELD_KEYS[f]) else "N" for f in attrs.fields(layout)},
        "key": key,
    }
    body = heading("CONFIRMACION USUARIO AUTORIZADO", alt=alt)
    body += (
        f'<P>{FONT}Se est&aacute; creando el siguiente usuario en la empresa {ent(str(company["name"]))}, '
        f'Rut {company["rut"]}, con los siguientes antecedentes:</FONT></P>\n'
    )
    body += detail_rows(record, holder_name, alt=alt, layout=layout)
    script = ""
    if actions == "links":
        # As in SII's guide: plain links that submit form1 from JavaScript (the key still travels).
        script = """
function enviar(accion) {
  document.form1.ACEPTAR.value = accion;
  document.form1.submit();
}
"""
        controls = (
            '<TABLE ALIGN="CENTER"><TR>'
            f'<TD WIDTH="200" ALIGN="CENTER">{FONT}<A HREF="javascript:enviar(\'Grabar Usuario\')">Grabar Usuario</A></FONT></TD>'
            f'<TD WIDTH="200" ALIGN="CENTER">{FONT}<A HREF="javascript:enviar(\'Modificar Datos\')">Modificar Datos</A></FONT></TD>'
            "</TR></TABLE>\n"
        )
        form = (
            '<FORM NAME="form1" METHOD="POST" ACTION="eu_graba_usuario">\n' + hidden(fields)
            + '<INPUT TYPE="hidden" NAME="ACEPTAR" VALUE="">\n' + controls + "</FORM>\n"
        )
    else:
        form = (
            '<FORM NAME="form1" METHOD="POST" ACTION="eu_graba_usuario">\n' + hidden(fields)
            + '<TABLE ALIGN="CENTER"><TR>'
            '<TD WIDTH="200" ALIGN="CENTER"><INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Grabar Usuario"></TD>'
            '<TD WIDTH="200" ALIGN="CENTER"><INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Modificar Datos"></TD>'
            "</TR></TABLE>\n</FORM>\n"
        )
    body += form
    return shell(body, alt=alt, script=script)


def result_page(title: str, sentence: str, company: Mapping[str, object], record: Mapping[str, object] | None,
                holder_name: str, *, order: str, actions: str, alt: bool) -> str:
    """A result page (after save/update/delete) with Ingresar Otro Usuario / Modificar Otro Usuario.

    ``sentence`` is already HTML; ``record`` None omits the antecedentes table.
    """
    ctx = company_fields(str(company["rut"]), order)
    body = heading(title, alt=alt)
    body += f"<P>{FONT}{sentence}</FONT></P>\n"
    if record is not None:
        body += detail_rows(record, holder_name, alt=alt, layout=attrs.layout_of(company))
    body += "<BR>\n" + action_controls(actions, [
        ("Ingresar Otro Usuario", "eu_ingresa_usuario", ctx),
        ("Modificar Otro Usuario", "eu_lista_usuarios", ctx),
    ])
    return shell(body, alt=alt)


def edit_form(company: Mapping[str, object], user: Mapping[str, object], *, order: str, alt: bool) -> str:
    """Modificación de usuario: the layout's attributes as checkboxes, ELIMINAR checkbox, ACEPTAR=Guardar Cambios."""
    layout = attrs.layout_of(company)
    script = """
function validaCambios() {
  var f = document.form1;
  if (f.ELIMINAR.checked) {
    return confirm("¿Está seguro que desea eliminar este usuario de la empresa?");
  }
  if (NONE_CHECKED) {
    alert("Debe seleccionar al menos un privilegio para el usuario.");
    return false;
  }
  return true;
}
""".replace("NONE_CHECKED", _none_checked_js(layout))
    ctx = company_fields(str(company["rut"]), order)
    body_u, dv_u = split(str(user["rut"]))
    checked = {f: bool(user.get(attrs.FIELD_KEYS[f])) for f in attrs.fields(layout)}
    body = heading(TITLE, alt=alt) + _company_line(company, alt)
    body += heading("MODIFICACION DE USUARIO AUTORIZADO", alt=alt)
    table = (
        '<TABLE WIDTH="80%" BORDER="0" ALIGN="CENTER" CELLPADDING="3">\n'
        f'<TR><TD WIDTH="35%">{FONT_B}Rut Usuario</B></FONT></TD><TD>{FONT}{user["rut"]}</FONT></TD></TR>\n'
        f'<TR><TD>{FONT_B}Nombre Usuario</B></FONT></TD><TD>{FONT}{ent(str(user.get("name") or ""))}</FONT></TD></TR>\n'
        + _privilege_rows(checked, alt, layout)
        + f'<TR><TD WIDTH="35%">&nbsp;</TD><TD><INPUT TYPE="checkbox" NAME="ELIMINAR" VALUE="S">'
        f"{FONT}Eliminar usuario</FONT></TD></TR>\n"
        '<TR><TD COLSPAN="2" ALIGN="CENTER"><BR><INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Guardar Cambios"></TD></TR>\n'
        "</TABLE>\n"
    )
    if alt:
        table = f'<DIV CLASS="form"><TABLE WIDTH="100%"><TR><TD>{table}</TD></TR></TABLE></DIV>\n'
    body += (
        '<FORM NAME="form1" METHOD="POST" ACTION="eu_actualiza_usuario" onSubmit="return validaCambios()">\n'
        + hidden({**ctx, "RUT_USU": body_u, "DV_USU": dv_u}) + table + "</FORM>\n"
    )
    body += f'<P ALIGN="CENTER">{FONT}<A HREF="eu_lista_usuarios?{raw(urlencode(ctx))}">Volver</A></FONT></P>\n'
    return shell(body, alt=alt, script=script)


# ---------------------------------------------------------------------------------------------
# Error bodies
# ---------------------------------------------------------------------------------------------


def http500_body() -> str:
    """Apache-style body of an HTTP 500 (what eu_graba_usuario answers without a valid key)."""
    return (
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<HTML><HEAD>\n<TITLE>500 Internal Server Error</TITLE>\n"
        "</HEAD><BODY>\n<H1>Internal Server Error</H1>\n<P>The server encountered an internal error or\n"
        "misconfiguration and was unable to complete your request.</P>\n</BODY></HTML>\n"
    )


def waf_f5_page(support_id: str) -> str:
    """F5-style WAF block page ("The requested URL was rejected ... support ID")."""
    return (
        "<html><head><title>Request Rejected</title></head><body>"
        "The requested URL was rejected. Please consult with your administrator.<br><br>"
        f"Your support ID is: {support_id}<br><br>"
        "<a href='javascript:history.back();'>[Go Back]</a></body></html>"
    )


def waf_transaccion_page(support_id: str) -> str:
    """SII's own WAF block page ("Transaccion Rechazada ... ID: n")."""
    body = heading("Transaccion Rechazada")
    body += (
        f'<P ALIGN="CENTER">{FONT}Su transacci&oacute;n ha sido rechazada por razones de seguridad.</FONT></P>\n'
        f'<P ALIGN="CENTER">{FONT}ID: {support_id}</FONT></P>\n'
    )
    return shell(body, title="Transaccion Rechazada")
