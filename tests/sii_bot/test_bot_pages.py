"""Tests for sii_bot.pages on hand-written SII-like pages (ISO-8859-1, entities, old markup)."""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sii_bot import errors
from sii_bot.html import decode_page, fold, page_alerts, same_text, text_contains, visible_text
from sii_bot.models import SiiUser, SiiUserRecord
from sii_bot.screens import (
    ParseError,
    classify_message,
    company_header,
    detect_error,
    find_ruts,
    is_login_page,
    mentions_existing_user,
    parse_confirmation,
    parse_result,
    parse_user_list,
)

PAGES = Path(__file__).parent / "pages"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def with_raw_accents(body: bytes) -> bytes:
    """The same page with every entity replaced by its raw ISO-8859-1 byte (markup untouched)."""
    text = body.decode("latin-1")
    import re

    return re.sub(r"&[A-Za-z]+;", lambda m: html_lib.unescape(m.group(0)), text).encode("latin-1")


def as_lower_tags(body: bytes) -> bytes:
    import re

    text = body.decode("latin-1")
    return re.sub(r"</?[A-Z]+", lambda m: m.group(0).lower(), text).encode("latin-1")


def as_browser_dom(body: bytes) -> str:
    """Roughly what ``page.content()`` gives: a decoded string (entities may stay)."""
    return decode_page(body, "text/html")


# ---------------------------------------------------------------------------------------------------
# decoding and text


def test_fixture_pages_are_iso_8859_1_without_declared_charset() -> None:
    for path in PAGES.glob("*.html"):
        body = path.read_bytes()
        assert b"charset" not in body.lower()
        with pytest.raises(UnicodeDecodeError):
            if any(b >= 0x80 for b in body):
                body.decode("utf-8")
            else:
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "ascii-only page")


def test_decode_default_is_latin1() -> None:
    body = "<p>Mantención  Ñuñoa</p>".encode("latin-1")
    assert decode_page(body, None) == "<p>Mantención  Ñuñoa</p>"
    assert decode_page(body, "text/html") == "<p>Mantención  Ñuñoa</p>"


def test_decode_declared_charsets() -> None:
    text = "<p>Mantención</p>"
    assert decode_page(text.encode("utf-8"), "text/html; charset=UTF-8") == text
    assert decode_page(text.encode("latin-1"), "text/html; charset=ISO-8859-1") == text
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=utf-8"><p>Mantención</p>'
    assert decode_page(meta.encode("utf-8"), None).endswith(text)
    # Mislabeled UTF-8 without a declaration is still read right.
    assert decode_page(text.encode("utf-8"), None) == text
    # cp1252-only bytes (curly quotes) and bytes undefined in cp1252 never fail.
    assert decode_page(b"\x93SI\x94", None) == "\u201cSI\u201d"
    assert decode_page(b"a\x81b", None) == "a\x81b"


def test_visible_text_entities_and_raw_bytes_agree() -> None:
    for name in ("confirmation.html", "result.html", "user_list.html", "error_generic.html"):
        body = page(name)
        raw = with_raw_accents(body)
        assert raw != body
        assert visible_text(raw) == visible_text(body)
        assert visible_text(as_lower_tags(body)) == visible_text(body)


def test_visible_text_keeps_accents_and_skips_scripts() -> None:
    text = visible_text(page("confirmation.html"))
    assert "Se está creando el siguiente usuario en la empresa COMERCIAL LA PEÑA LIMITADA" in text
    assert "  " not in text
    assert "valida" not in visible_text(page("company_form.html"))
    assert "Grabar Usuario" in text
    assert "Grabar Usuario" in visible_text(page("confirmation_latin1.html"))  # submit button value


def test_fold_and_comparisons() -> None:
    assert fold("  MANTENCIÓN de  Usuarios&nbsp;Autorizados ") == "mantencion de usuarios autorizados"
    assert fold("Usuario-Administrador") == fold("usuario administrador")
    assert same_text("Identificarse con Certificado Digital", "IDENTIFICARSE CON CERTIFICADO DIGITAL")
    assert text_contains("Se ha grabado SATISFACTORIAMENTE el nuevo usuario", "grabado satisfactoriamente")
    assert not text_contains("Grabar Usuario", "Guardar Cambios")


def test_find_ruts() -> None:
    assert find_ruts("Empresa 76.086.428-5 y usuario 13322924-8, mal 13322924-9") == ["76086428-5", "13322924-8"]
    assert find_ruts("R.U.T.: 96874030-k") == ["96874030-K"]
    assert find_ruts("código 01.01.190.500.720.27") == []


# ---------------------------------------------------------------------------------------------------
# confirmation and result

EXPECTED_CONFIRMATION = SiiUserRecord(
    company_name="COMERCIAL LA PEÑA LIMITADA",
    company_rut="76086428-5",
    user_rut="13322924-8",
    user_name="JOSÉ MUÑOZ GONZÁLEZ",
    admin=True,
    sign=False,
    registry=True,
    authorized_by="PEDRO PÉREZ SOTO",
)


@pytest.mark.parametrize("variant", [page, lambda n: with_raw_accents(page(n)), lambda n: as_lower_tags(page(n)),
                                     lambda n: as_browser_dom(page(n))])
def test_parse_confirmation(variant) -> None:  # type: ignore[no-untyped-def]
    assert parse_confirmation(variant("confirmation.html")) == EXPECTED_CONFIRMATION


def test_parse_confirmation_alternative_layout() -> None:
    # Values before labels, header-row layout, "R.U.T.:" and a lower-case k.
    record = parse_confirmation(page("confirmation_latin1.html"))
    assert record == SiiUserRecord(
        company_name="SERVICIOS ÑUBLE S.A.",
        company_rut="96874030-K",
        user_rut="7880442-4",
        user_name="María José Iturra",
        admin=True,
        sign=True,
        registry=False,
        authorized_by="Ana Pérez",
    )
    assert record.to_dict()["company_rut"] == "96874030-K"


@pytest.mark.parametrize("variant", [page, lambda n: with_raw_accents(page(n)), lambda n: as_lower_tags(page(n))])
def test_parse_result(variant) -> None:  # type: ignore[no-untyped-def]
    assert parse_result(variant("result.html")) == EXPECTED_CONFIRMATION


def test_parse_result_horizontal_layout() -> None:
    record = parse_result(page("result_latin1.html"))
    assert record.company_name == "FRUTAS DEL MAULE SpA"  # "RUT" inside the name must not cut it
    assert record.company_rut == "77879240-0"
    assert record.user_rut == "12531909-2"
    assert (record.admin, record.sign, record.registry) == (False, True, True)
    assert record.user_name == "Iñaki Ñúñez" and record.authorized_by == "José Ábalos"


def test_confirmation_and_result_are_not_confused() -> None:
    with pytest.raises(ParseError):
        parse_result(page("confirmation.html"))
    with pytest.raises(ParseError):
        parse_confirmation(page("result.html"))
    for name in ("company_form.html", "user_list.html", "new_user_form.html", "error_generic.html"):
        with pytest.raises(ParseError):
            parse_confirmation(page(name))
        with pytest.raises(ParseError):
            parse_result(page(name))


def test_confirmation_with_unreadable_flag_is_a_parse_error() -> None:
    body = page("confirmation.html").replace(b"<FONT SIZE=2>NO</FONT>", b"<FONT SIZE=2>QUIZAS</FONT>")
    with pytest.raises(ParseError):
        parse_confirmation(body)


def test_company_rut_row_instead_of_sentence() -> None:
    body = b"""<HTML><BODY><B>CONFIRMACION USUARIO AUTORIZADO</B><TABLE>
    <TR><TD>Empresa<TD>ACME SPA<TR><TD>Rut Empresa<TD>76.086.428-5
    <TR><TD>Rut<TD>99.999.999-9<TR><TD>Rut Usuario<TD>13322924-8
    <TR><TD>Usuario Administrador<TD>NO<TR><TD>Firmar Documentos<TD>SI<TR><TD>Registro<TD>NO
    </TABLE></BODY></HTML>"""
    record = parse_confirmation(body)
    assert (record.company_name, record.company_rut, record.user_rut) == ("ACME SPA", "76086428-5", "13322924-8")
    assert (record.admin, record.sign, record.registry) == (False, True, False)


# ---------------------------------------------------------------------------------------------------
# user list


def test_parse_user_list() -> None:
    users = parse_user_list(page("user_list.html"))
    assert users == [
        SiiUser(rut="13322924-8", name="JOSÉ MUÑOZ GONZÁLEZ", admin=True, sign=True, registry=True),
        SiiUser(rut="7880442-4", name="MARÍA ITURRA", admin=False, sign=True, registry=False),
    ]
    assert parse_user_list(with_raw_accents(page("user_list.html"))) == users
    assert parse_user_list(as_lower_tags(page("user_list.html"))) == users


def test_parse_user_list_alternative_layout() -> None:
    # RUT body and DV in separate columns, flags as disabled checkboxes, raw Latin-1 names.
    assert parse_user_list(page("user_list_latin1.html")) == [
        SiiUser(rut="10000013-K", name="Sofía Núñez Ñancupil", admin=True, sign=False, registry=True),
        SiiUser(rut="12531909-2", name="Andrés Öhler", admin=False, sign=True, registry=False),
    ]


def test_parse_user_list_without_permission_columns() -> None:
    body = b"<TABLE><TR><TD>13.322.924-8<TD>JUAN PEREZ<TD><A HREF=x>Modificar</A></TABLE>"
    assert parse_user_list(body) == [SiiUser(rut="13322924-8", name="JUAN PEREZ")]


def test_parse_user_list_empty_and_company_rut_ignored() -> None:
    assert parse_user_list(page("user_list_empty.html")) == []
    assert parse_user_list(page("company_form.html")) == []


# ---------------------------------------------------------------------------------------------------
# errors

ERROR_TEXTS: list[tuple[str, type[errors.EnrollmentFailure]]] = [
    ("La empresa no está autorizada para operar en esta modalidad", errors.CompanyNotAuthorized),
    ("Ud. no está autorizado para operar en la empresa", errors.HolderNotAdministrator),
    ("El usuario no tiene permiso en la empresa", errors.HolderNotAdministrator),
    ("Usuario no autorizado para la empresa", errors.HolderNotAdministrator),
    ("Usted no está autorizado para ingresar a esta opción", errors.OptionNotAllowed),
    ("Usted ha superado el máximo de sesiones autenticadas", errors.TooManySessions),
    ("No ha sido posible completar su solicitud. Inténtelo más tarde", errors.SiiUnavailable),
    ("El código de este mensaje es 01.01.190.500.720.12", errors.SiiUnavailable),
    ("Transaccion Rechazada. ID: 8812739912", errors.WafRejected),
    ("The requested URL was rejected. Please consult with your administrator. Your support ID is: 123",
     errors.WafRejected),
    ("Ingrese un RUT y un DV", errors.UserRutInvalid),
    ("El Rut debe contener solo números (sin puntos).", errors.UserRutInvalid),
    ("RUT incorrecto según Módulo 11", errors.UserRutInvalid),
    ("No ha ingresado el dígito verificador", errors.UserRutInvalid),
    ("El rut debe ser de una persona natural.", errors.UserRutInvalid),
    ("Debe seleccionar al menos un privilegio para el usuario.", errors.UserRutInvalid),
    ("Playwright client-certificate error: self-signed certificate in certificate chain",
     errors.ServerCertificateUntrusted),
    ("Playwright client-certificate error: unable to get local issuer certificate", errors.ServerCertificateUntrusted),
    ("Playwright client-certificate error: ... tlsv1 alert unknown ca ...", errors.CertificateRejected),
    ("Playwright client-certificate error: ...:ssl/tls alert certificate expired:...", errors.CertificateRejected),
    ("Playwright client-certificate error: connect ECONNREFUSED 127.0.0.1:443", errors.SiiUnavailable),
    ("Su certificado digital no ha podido ser validado. Intente nuevamente.", errors.CertificateRejected),
    ("No ha sido posible obtener la identificación desde su certificado digital.", errors.CertificateRejected),
    ("Usted ha realizado demasiados intentos de autenticación en poco tiempo.", errors.LoginThrottled),
    ("Internal Server Error", errors.SiiUnavailable),
]


@pytest.mark.parametrize(("text", "cls"), ERROR_TEXTS)
def test_classify_message(text: str, cls: type[errors.EnrollmentFailure]) -> None:
    failure = classify_message(text)
    assert type(failure) is cls
    assert failure is not None and failure.sii_text


@pytest.mark.parametrize(("text", "cls"), ERROR_TEXTS)
def test_detect_error_in_page_text_entities_raw_and_alert(text: str, cls: type[errors.EnrollmentFailure]) -> None:
    entity_text = html_lib.escape(text).encode("ascii", "xmlcharrefreplace")
    entity_text = entity_text.replace(b"&#225;", b"&aacute;").replace(b"&#243;", b"&oacute;")
    as_entities = b"<HTML><BODY><TABLE><TR><TD><FONT COLOR=RED>" + entity_text + b"</FONT></TABLE></BODY></HTML>"
    as_raw = b"<html><body><p><font>" + text.encode("latin-1") + b"</font></p></body></html>"
    as_upper = b"<HTML><BODY><CENTER><B>" + text.upper().encode("latin-1") + b"</B></CENTER></BODY></HTML>"
    as_alert = (b"<HTML><HEAD><SCRIPT>alert('" + text.replace("'", "\\'").encode("latin-1")
                + b"'); history.back();</SCRIPT></HEAD><BODY></BODY></HTML>")
    for body in (as_entities, as_raw, as_upper, as_alert):
        failure = detect_error(body)
        assert type(failure) is cls, body
        assert failure is not None and failure.page_html


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("error_alert_back.html", errors.UserRutInvalid),
        ("error_generic.html", errors.SiiUnavailable),
        ("error_sessions_latin1.html", errors.TooManySessions),
        ("error_waf.html", errors.WafRejected),
        ("error_waf_es.html", errors.WafRejected),
        ("error_holder_latin1.html", errors.HolderNotAdministrator),
        ("error_company.html", errors.CompanyNotAuthorized),
    ],
)
def test_detect_error_pages(name: str, cls: type[errors.EnrollmentFailure]) -> None:
    failure = detect_error(page(name))
    assert type(failure) is cls
    assert failure is not None and failure.sii_text and len(failure.sii_text) <= 400


def test_sii_text_is_the_message_block_and_its_code() -> None:
    failure = detect_error(page("error_generic.html"))
    assert failure is not None
    assert failure.sii_text == ("No ha sido posible completar su solicitud. Inténtelo más tarde. "
                                "El código de este mensaje es 01.01.190.500.720.12")
    assert "SII" not in failure.sii_text.split(" ")[0]


def test_error_priority_follows_the_table_not_the_page_order() -> None:
    body = (b"<TABLE><TR><TD>No ha sido posible completar su solicitud.</TD></TR>"
            b"<TR><TD>Usted ha superado el m&aacute;ximo de sesiones autenticadas</TD></TR></TABLE>")
    assert type(detect_error(body)) is errors.TooManySessions


def test_company_header() -> None:
    assert company_header(page("user_list.html")) == ("COMERCIAL LA PEÑA LIMITADA", "76086428-5")
    assert company_header(b"<DIV><FONT>Rut: 76086428-5 &nbsp; Empresa: COMERCIAL DEMO SPA</FONT></DIV>") == (
        "COMERCIAL DEMO SPA", "76086428-5")
    assert company_header(b"<TABLE><TR><TD><B>Empresa:</B> ACME SPA</TD><TD>Rut: 76.086.428-5</TD></TABLE>") == (
        "ACME SPA", "76086428-5")
    assert company_header(page("new_user_form.html")) is None


@pytest.mark.parametrize(
    "name",
    ["company_form.html", "user_list.html", "user_list_latin1.html", "user_list_empty.html", "new_user_form.html",
     "confirmation.html", "confirmation_latin1.html", "result.html", "result_latin1.html",
     "login_identificacion.html"],
)
def test_normal_pages_have_no_error(name: str) -> None:
    # The new-user form's validation script holds every alert text, inside functions: not an error.
    assert detect_error(page(name)) is None


def test_page_alerts_only_load_time() -> None:
    assert page_alerts(page("new_user_form.html")) == []
    assert page_alerts(page("error_alert_back.html")) == ["El rut debe ser de una persona natural."]
    body = b'<BODY onLoad="alert(\'Ingrese un RUT y un DV\')"></BODY>'
    assert page_alerts(body) == ["Ingrese un RUT y un DV"]
    body = b"<SCRIPT>var x = function() { alert('no'); }; if (1) { alert('N\\u00famero ' + \"dos\"); }</SCRIPT>"
    assert page_alerts(body) == ["Número dos"]
    body = b"<SCRIPT>const f = () => { alert('no'); }; // alert('comment')\n</SCRIPT>"
    assert page_alerts(body) == []


def test_is_login_page() -> None:
    assert is_login_page(page("login_identificacion.html"))
    assert is_login_page(b"<html></html>", "https://zeusr.sii.cl/AUT2000/InicioAutenticacion/IngresoCertificado.html?x")
    assert not is_login_page(page("user_list.html"), "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios")


def test_mentions_existing_user() -> None:
    assert mentions_existing_user(b"<P>El usuario ya existe para esta empresa</P>")
    assert not mentions_existing_user(page("user_list.html"))


# ---------------------------------------------------------------------------------------------------
# robustness


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_parsers_never_crash_on_random_bytes(body: bytes) -> None:
    visible_text(body)
    parse_user_list(body)
    detect_error(body)
    page_alerts(body)
    for parser in (parse_confirmation, parse_result):
        try:
            parser(body)
        except ParseError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_parsers_never_crash_on_mangled_pages(data: st.DataObject) -> None:
    body = bytearray(page(data.draw(st.sampled_from(sorted(p.name for p in PAGES.glob("*.html"))))))
    cut = data.draw(st.integers(0, len(body)))
    mangled = bytes(body[:cut]) + data.draw(st.binary(max_size=50)) + bytes(body[cut:])
    visible_text(mangled)
    parse_user_list(mangled)
    detect_error(mangled)
    for parser in (parse_confirmation, parse_result):
        try:
            parser(mangled)
        except ParseError:
            pass


def test_an_alert_with_a_bare_backslash_u_or_x_reads_as_the_letter() -> None:
    """JS reads "\\u" or "\\x" without hex digits as the letter; the parser never crashes on it."""
    body = "<html><body><script>alert('C\\u00f3digo \\u \\x: sin d\\xedgitos');</script></body></html>"
    assert page_alerts(body) == ["Código u x: sin dígitos"]
