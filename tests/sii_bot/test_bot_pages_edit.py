"""Tests for the edit-screen, modification and elimination parsers of sii_bot.pages.

Hand-written SII-like pages in ``pages/`` (ISO-8859-1, entities or raw bytes, old markup; see
``pages/README.md``) plus the sandbox's own pages in both layouts.
"""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import pytest

from sii_bot.html import decode_page
from sii_bot.models import Permission, PermissionBox, SiiEditScreen, SiiRemovalRecord, SiiUserRecord
from sii_bot.screens import (
    ParseError,
    is_delete_confirmation,
    mentions_user,
    parse_edit_screen,
    parse_elimination_result,
    parse_modification_result,
    parse_result,
    result_kind,
)

PAGES = Path(__file__).parent / "pages"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def with_raw_accents(body: bytes) -> bytes:
    """The same page with every named entity replaced by its raw ISO-8859-1 byte."""
    text = body.decode("latin-1")
    return re.sub(r"&[A-Za-z]+;", lambda m: html_lib.unescape(m.group(0)), text).encode("latin-1")


def as_lower_tags(body: bytes) -> bytes:
    text = body.decode("latin-1")
    return re.sub(r"</?[A-Z]+", lambda m: m.group(0).lower(), text).encode("latin-1")


def variants(body: bytes) -> list[bytes | str]:
    """The page as served, with raw accents, with lower-case tags, and as the browser's DOM string."""
    return [body, with_raw_accents(body), as_lower_tags(body), decode_page(body, "text/html")]


EDIT_SCREEN = SiiEditScreen(
    company_name="COMERCIAL LA PEÑA LIMITADA",
    company_ruts=("76086428-5",),
    user_ruts=("13322924-8",),
    user_name="JOSÉ MUÑOZ GONZÁLEZ",
    admin=True,
    sign=False,
    registry=True,
    delete_kind="checkbox",
    delete_name="ELIMINAR",
    has_save=True,
    boxes=(
        PermissionBox(Permission.ADMIN, "SUP_USU", "S", "Usuario Administrador", True, "name"),
        PermissionBox(Permission.SIGN, "FIRMAR", "S", "Firmar Documentos", False, "name"),
        PermissionBox(Permission.REGISTRY, "CONSULTAR", "S", "Registro", True, "name"),
    ),
)


# ---------------------------------------------------------------------------------------------------
# edit screen


@pytest.mark.parametrize("index", range(4), ids=["served", "raw-accents", "lower-tags", "dom"])
def test_edit_screen(index: int) -> None:
    assert parse_edit_screen(variants(page("edit_screen.html"))[index]) == EDIT_SCREEN


def test_edit_screen_with_delete_button_and_company_only_in_hidden_fields() -> None:
    screen = parse_edit_screen(page("edit_screen_latin1.html"))
    assert screen.user_ruts == ("13322924-8",)
    assert screen.company_ruts == ("76086428-5",)  # from RUT_EMP/DV_EMP: the page shows no header
    assert screen.user_name == "José Muñoz González"
    assert (screen.admin, screen.sign, screen.registry) == (False, True, False)
    assert (screen.delete_kind, screen.delete_name) == ("button", "Eliminar Usuario")
    assert screen.has_save  # "Grabar Cambios"


def test_edit_screen_exposes_every_user_and_company_it_names() -> None:
    # A label and the hidden fields that disagree: both RUTs are reported, so the bot refuses it.
    body = page("edit_screen.html").replace(b'NAME="RUT_USU" VALUE="13322924"', b'NAME="RUT_USU" VALUE="7880442"')
    body = body.replace(b'NAME="DV_USU" VALUE="8"', b'NAME="DV_USU" VALUE="4"')
    body = body.replace(b'NAME="RUT_EMP" VALUE="76086428"', b'NAME="RUT_EMP" VALUE="77879240"')
    body = body.replace(b'NAME="DV_EMP" VALUE="5"', b'NAME="DV_EMP" VALUE="0"')
    screen = parse_edit_screen(body)
    assert screen.user_ruts == ("13322924-8", "7880442-4")
    assert screen.company_ruts == ("76086428-5", "77879240-0")
    # A broken hidden RUT is kept as typed: it can never equal a requested RUT.
    broken = page("edit_screen.html").replace(b'NAME="DV_USU" VALUE="8"', b'NAME="DV_USU" VALUE="9"')
    assert parse_edit_screen(broken).user_ruts == ("13322924-8", "13322924-9")


def test_edit_screen_without_delete_option() -> None:
    body = re.sub(rb'<TR><TD>&nbsp;<TD><INPUT TYPE="checkbox" NAME="ELIMINAR"[^\n]*\n', b"", page("edit_screen.html"))
    screen = parse_edit_screen(body)
    assert screen.delete_kind is None and screen.delete_name == ""
    assert (screen.admin, screen.sign, screen.registry) == (True, False, True)


def test_delete_checkbox_found_by_its_label() -> None:
    body = page("edit_screen.html").replace(b'NAME="ELIMINAR"', b'NAME="BAJA"')
    screen = parse_edit_screen(body)
    assert (screen.delete_kind, screen.delete_name) == ("checkbox", "BAJA")


@pytest.mark.parametrize("name", ["user_list.html", "confirmation.html", "result.html", "company_form.html",
                                  "result_elimination.html", "error_generic.html"])
def test_other_pages_are_not_edit_screens(name: str) -> None:
    with pytest.raises(ParseError):
        parse_edit_screen(page(name))


# ---------------------------------------------------------------------------------------------------
# result pages


@pytest.mark.parametrize(("name", "kind"), [
    ("result.html", "created"),
    ("result_latin1.html", "created"),
    ("result_modification.html", "modified"),
    ("result_elimination.html", "eliminated"),
    ("result_elimination_latin1.html", "eliminated"),
    ("edit_screen.html", None),
    ("edit_screen_latin1.html", None),
    ("new_user_form.html", None),
    ("confirmation.html", None),
    ("user_list.html", None),
    ("user_list_latin1.html", None),
    ("error_generic.html", None),
])
def test_result_kind(name: str, kind: str | None) -> None:
    for body in variants(page(name)):
        assert result_kind(body) == kind


MODIFIED = SiiUserRecord(
    company_name="COMERCIAL LA PEÑA LIMITADA",
    company_rut="76086428-5",
    user_rut="13322924-8",
    user_name="JOSÉ MUÑOZ GONZÁLEZ",
    admin=False,
    sign=False,
    registry=True,
    authorized_by="PEDRO PÉREZ SOTO",
)


@pytest.mark.parametrize("index", range(4), ids=["served", "raw-accents", "lower-tags", "dom"])
def test_modification_result(index: int) -> None:
    body = variants(page("result_modification.html"))[index]
    assert parse_modification_result(body) == MODIFIED
    assert parse_result(body) == MODIFIED  # the enrolment path's update reads it too


@pytest.mark.parametrize("name", ["result.html", "result_elimination.html", "edit_screen.html", "user_list.html"])
def test_modification_result_refuses_other_pages(name: str) -> None:
    with pytest.raises(ParseError):
        parse_modification_result(page(name))


@pytest.mark.parametrize("index", range(4), ids=["served", "raw-accents", "lower-tags", "dom"])
def test_elimination_result(index: int) -> None:
    assert parse_elimination_result(variants(page("result_elimination.html"))[index]) == SiiRemovalRecord(
        company_name="COMERCIAL LA PEÑA LIMITADA",
        company_rut="76086428-5",
        user_rut="13322924-8",
        message=("Se ha eliminado satisfactoriamente el usuario 13.322.924-8 de la empresa "
                 "COMERCIAL LA PEÑA LIMITADA, Rut 76.086.428-5."),
    )


def test_elimination_result_in_other_words() -> None:
    record = parse_elimination_result(page("result_elimination_latin1.html"))
    assert (record.user_rut, record.company_rut, record.company_name) == ("13322924-8", "76086428-5", "")
    assert record.message.startswith("El usuario José Muñoz González, RUN 13322924-8, ha sido eliminado")
    assert record.to_dict()["user_rut"] == "13322924-8"


@pytest.mark.parametrize("name", ["result.html", "result_modification.html", "edit_screen.html",
                                  "user_list.html", "error_generic.html"])
def test_elimination_result_refuses_other_pages(name: str) -> None:
    with pytest.raises(ParseError):
        parse_elimination_result(page(name))


@pytest.mark.parametrize("name", ["result_elimination.html", "result_elimination_latin1.html"])
def test_an_elimination_is_never_read_as_a_saved_user(name: str) -> None:
    with pytest.raises(ParseError):
        parse_result(page(name))


# ---------------------------------------------------------------------------------------------------
# the sandbox's pages, both layouts


@pytest.mark.parametrize("alt", [False, True], ids=["standard", "alternate"])
def test_sandbox_edit_and_result_pages(alt: bool) -> None:
    sp = pytest.importorskip("sii_sandbox.pages")
    company = {"rut": "76086428-5", "name": "INVERSIONES ÑUÑOA SPA"}
    user = {"rut": "7880442-4", "name": "ROSA ELENA ARAYA CASTRO", "admin": False, "sign": True, "registry": True}
    screen = parse_edit_screen(sp.to_bytes(sp.edit_form(company, user, order="A", alt=alt)))
    assert (screen.company_ruts, screen.user_ruts) == (("76086428-5",), ("7880442-4",))
    assert (screen.admin, screen.sign, screen.registry) == (False, True, True)
    assert (screen.company_name, screen.delete_kind, screen.delete_name) == ("INVERSIONES ÑUÑOA SPA", "checkbox",
                                                                           "ELIMINAR")
    gone = sp.to_bytes(sp.result_page(
        "ELIMINACION DE USUARIOS AUTORIZADOS",
        "Se ha eliminado satisfactoriamente el usuario 7880442-4 de la empresa INVERSIONES &Ntilde;U&Ntilde;OA SPA, "
        "Rut 76086428-5.", company, None, "MARÍA", order="A", actions="links", alt=alt))
    record = parse_elimination_result(gone)
    assert (record.user_rut, record.company_rut, record.company_name) == ("7880442-4", "76086428-5",
                                                                         "INVERSIONES ÑUÑOA SPA")
    changed = sp.to_bytes(sp.result_page(
        "MODIFICACION DE USUARIOS AUTORIZADOS",
        "Se ha modificado satisfactoriamente el usuario en la empresa INVERSIONES &Ntilde;U&Ntilde;OA SPA, "
        "Rut 76086428-5, con los siguientes antecedentes:", company, user, "MARÍA", order="A", actions="buttons",
        alt=alt))
    assert result_kind(changed) == "modified"
    assert parse_modification_result(changed).user_rut == "7880442-4"


# ---------------------------------------------------------------------------------------------------
# delete confirm() and presence checks


@pytest.mark.parametrize(("message", "destructive"), [
    ("¿Está seguro que desea eliminar este usuario de la empresa?", True),
    ("¿ESTA SEGURO QUE DESEA ELIMINAR ESTE USUARIO?", True),
    ("&iquest;Desea borrar al usuario?", True),
    ("Se suprimirá la autorización del usuario. ¿Continuar?", True),
    ("Para ingresar con su Certificado Digital, éste debe estar instalado en su navegador. ¿Desea continuar?",
     False),
    ("¿Desea grabar los cambios?", False),
    ("", False),
])
def test_delete_confirmation(message: str, destructive: bool) -> None:
    assert is_delete_confirmation(message) is destructive


@pytest.mark.parametrize(("name", "rut", "named"), [
    ("user_list.html", "13322924-8", True),          # dotted in a cell
    ("user_list_latin1.html", "12531909-2", True),   # body and check digit in cells of their own
    ("user_list_latin1.html", "13322924-8", False),
    ("edit_screen.html", "13322924-8", True),
    ("edit_screen_latin1.html", "13322924-8", True),
    ("user_list_empty.html", "13322924-8", False),
])
def test_mentions_user(name: str, rut: str, named: bool) -> None:
    assert mentions_user(page(name), rut) is named


def test_mentions_user_respects_digit_boundaries() -> None:
    assert not mentions_user("<TD>11.111.111-1</TD>", "1111111-1")
    assert not mentions_user("<TD>111111111</TD>", "11111111-1")
    assert mentions_user('<INPUT TYPE="hidden" NAME="RUT_USU" VALUE="11111111">', "11111111-1")
