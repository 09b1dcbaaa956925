"""The six SII attributes on pages unlike the sandbox's: which checkbox is which attribute (by field
name, value or visible label), and every attribute row of confirmation and result pages.

Fixtures in ``pages/`` (ISO-8859-1, no declared charset): lower-case tags, labels in cells of their
own, checkboxes with names the bot does not know, a grid with the labels as column headings, several
checkboxes in one cell, ``<label for>``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sii_bot.html import decode_page
from sii_bot.models import Permission, PermissionBox
from sii_bot.screens import (
    ParseError,
    label_permission,
    parse_confirmation,
    parse_edit_screen,
    parse_result,
    permission_boxes,
)

PAGES = Path(__file__).parent / "pages"
P = Permission


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def boxes_of(name: str) -> list[tuple[Permission, str, str, bool]]:
    return [(b.permission, b.name, b.by, b.checked) for b in permission_boxes(page(name))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Usuario Administrador", P.ADMIN),
        ("USUARIO-ADMINISTRADOR:", P.ADMIN),
        ("Solicitar Folios", P.FOLIOS),
        ("Anular Documentos", P.ANNUL),
        ("Anular Folios", P.ANNUL),  # SII's 2009 manual
        ("Anular", P.ANNUL),
        ("Firmar Doctos.", P.SIGN),
        ("Firmar Documentos (DTE)", P.SIGN),
        ("Env&iacute;o de Documentos", P.SEND),
        ("Enviar Documentos", P.SEND),
        ("Registro", P.REGISTRY),  # MIPYME
        ("Consulta", P.REGISTRY),  # market software
        ("Consulta/Registro", P.REGISTRY),
        ("Eliminar usuario", None),
        ("Recibir avisos por correo", None),
        ("Registrar ventas", None),
        ("Enviarlo", None),
        ("", None),
    ],
)
def test_label_permission(text: str, expected: Permission | None) -> None:
    assert label_permission(text) is expected


def test_checkboxes_with_unknown_names_are_read_by_their_label_in_another_cell() -> None:
    assert boxes_of("new_user_form_labels_apart.html") == [
        (P.ADMIN, "at01", "label", False),
        (P.FOLIOS, "at02", "label", False),
        (P.ANNUL, "at03", "label", False),
        (P.SIGN, "at04", "label", False),
        (P.SEND, "at05", "label", False),
        (P.REGISTRY, "at06", "label", False),
    ]  # "Recibir avisos por correo" (at07) is no attribute: left out
    box = permission_boxes(page("new_user_form_labels_apart.html"))[4]
    assert box == PermissionBox(P.SEND, "at05", "1", "Envío de Documentos", False, "label")


def test_grid_by_field_name_by_value_and_by_column_heading() -> None:
    assert boxes_of("new_user_form_grid.html") == [
        (P.ADMIN, "SUP_USU", "name", False),
        (P.SIGN, "priv", "value", False),
        (P.REGISTRY, "priv3", "label", False),
    ]


def test_several_checkboxes_in_one_cell_and_label_for() -> None:
    # c3's label is a <label for> elsewhere; "Eliminar usuario" is no attribute.
    assert boxes_of("new_user_form_inline.html") == [
        (P.ADMIN, "c1", "label", False),
        (P.SIGN, "c2", "label", False),
        (P.REGISTRY, "c3", "label", False),
    ]


def test_a_field_name_beats_a_label() -> None:
    # A checkbox named FIRMAR labelled "Registro", and one unnamed-known labelled "Firmar Documentos":
    # the name decides the first; the second finds FIRMAR taken and is left out, Registro is free.
    html = ("<form><table><tr><td>Registro</td><td><input type=checkbox name=FIRMAR value=S></td></tr>"
            "<tr><td>Firmar Documentos</td><td><input type=checkbox name=x value=S></td></tr></table></form>")
    assert [(b.permission, b.name) for b in permission_boxes(html)] == [(P.SIGN, "FIRMAR")]


@pytest.mark.parametrize("as_dom", [False, True], ids=["served", "dom"])
def test_confirmation_with_six_rows(as_dom: bool) -> None:
    body = page("confirmation_market.html")
    record = parse_confirmation(decode_page(body, "text/html") if as_dom else body)
    assert (record.company_name, record.company_rut, record.user_rut) == (
        "DISTRIBUIDORA FACTURA MERCADO SPA", "76543210-3", "11111111-1")
    assert record.user_name == "JUAN PÉREZ GONZÁLEZ" and record.authorized_by == "MARÍA SOTO"
    assert {p: record.flag(p) for p in Permission} == {
        P.ADMIN: False, P.FOLIOS: True, P.ANNUL: False, P.SIGN: True, P.SEND: True, P.REGISTRY: True}
    assert record.granted() == {P.FOLIOS, P.SIGN, P.SEND, P.REGISTRY}


def test_mipyme_confirmation_has_no_market_rows() -> None:
    record = parse_confirmation(page("confirmation.html"))
    assert (record.folios, record.annul, record.send) == (None, None, None)
    assert record.flag(P.SIGN) is not None


def test_result_with_six_attributes_in_a_header_row() -> None:
    record = parse_result(page("result_market_horizontal.html"))
    assert (record.company_rut, record.user_rut, record.user_name) == ("76543210-3", "11111111-1",
                                                                       "JUAN PEREZ GONZALEZ")
    assert {p: record.flag(p) for p in Permission} == {
        P.ADMIN: False, P.FOLIOS: False, P.ANNUL: True, P.SIGN: True, P.SEND: True, P.REGISTRY: False}


def test_unreadable_market_row_is_a_parse_error() -> None:
    body = page("confirmation_market.html").replace(b"<td class=\"dato\">S&Iacute;</td>", b"<td class=\"dato\">?</td>")
    with pytest.raises(ParseError, match="send"):
        parse_confirmation(body)


def test_edit_screen_with_labels_apart_and_an_unknown_delete_checkbox() -> None:
    screen = parse_edit_screen(page("edit_screen_labels_apart.html"))
    assert (screen.company_ruts, screen.user_ruts) == (("76543210-3",), ("7880442-4",))
    assert {p: screen.flag(p) for p in Permission} == {
        P.ADMIN: False, P.FOLIOS: False, P.ANNUL: False, P.SIGN: True, P.SEND: True, P.REGISTRY: False}
    assert screen.offered == frozenset(Permission)
    assert [b.name for b in screen.boxes] == ["a", "b", "c", "d", "e", "f"]
    assert (screen.delete_kind, screen.delete_name) == ("checkbox", "g")


def test_mipyme_edit_screen_offers_three() -> None:
    screen = parse_edit_screen(page("edit_screen.html"))
    assert screen.offered == {P.ADMIN, P.SIGN, P.REGISTRY}
    assert (screen.folios, screen.annul, screen.send) == (None, None, None)
