"""One authorized user's edit screen (reached with "Modificar" on the list, saved with "Guardar Cambios")."""

from __future__ import annotations

from ..html import checkbox_row_text, clean, control_label, controls, field_values, fold, parse
from ..models import Permission, SiiEditScreen
from ..rut import is_person_rut
from .permissions import checkboxes, permission_boxes
from .records import ParseError, company_header, find_ruts, labelled_values, only_rut, rut_from_fields

__all__ = ["is_delete_confirmation", "parse_edit_screen"]

_EDIT_MARKERS = ("modificacion de usuario autorizado", "modificacion de usuarios autorizados")
_SAVE_CHANGES_LABELS = ("guardar cambios", "grabar cambios", "modificar usuario", "guardar")
_DELETE_WORDS = ("elimin", "borrar", "suprimir", "revocar")
# A checkbox whose row names a permission is a permission, even if the row also says "eliminar".
_PERMISSION_ROW_WORDS = ("usuario administrador", "firmar documentos", "registro", "consultar", "consulta",
                         "solicitar folios", "anular documentos", "anular folios", "enviar documentos")


def is_delete_confirmation(message: str) -> bool:
    """True when a JavaScript ``confirm()`` text asks to delete something ("¿Está seguro que desea
    eliminar este usuario…?"). The bot accepts such a dialog only while it is deleting on purpose."""
    folded = fold(message)
    return any(word in folded for word in _DELETE_WORDS)


def parse_edit_screen(html: str | bytes) -> SiiEditScreen:
    """Read the edit screen of one user (the "Modificar" page that ends in "Guardar Cambios").

    Raises ``ParseError`` when the page is not such a screen (no save-changes control and no heading).
    Works on the raw page (checkbox states are the page's initial ones) and on ``page.content()``.
    """
    doc = parse(html)
    root = doc.root
    text = root.text()
    folded = fold(text)
    labels = [label for _, label in controls(root)]
    has_save = any(label in _SAVE_CHANGES_LABELS for label in labels)
    if not has_save and not any(marker in folded for marker in _EDIT_MARKERS):
        raise ParseError("not an edit screen")

    fields = field_values(root)
    values = labelled_values(root)
    # The user: person RUTs under "Rut Usuario"-type labels, and the form's RUT_USU/DV_USU.
    user_ruts: list[str] = []
    for value in values.get("user_rut", []):
        for rut in find_ruts(value) or ([r] if (r := only_rut(value)) else []):
            if is_person_rut(rut) and rut not in user_ruts:
                user_ruts.append(rut)
    for rut in rut_from_fields(fields, "RUT_USU", "DV_USU"):
        if rut not in user_ruts:
            user_ruts.append(rut)
    # The company: every company RUT on the page and the form's RUT_EMP/DV_EMP.
    company_ruts = [r for r in find_ruts(text) if not is_person_rut(r)]
    for rut in rut_from_fields(fields, "RUT_EMP", "DV_EMP"):
        if rut not in company_ruts:
            company_ruts.append(rut)
    header = company_header(html)
    company_name = header[0] if header else ""

    boxes = permission_boxes(root)
    flags: dict[str, bool | None] = {p.value: None for p in Permission}
    for box in boxes:
        flags[box.permission.value] = box.checked
    attribute_boxes = {(box.name, box.value) for box in boxes}
    delete_kind: str | None = None
    delete_name = ""
    for node in checkboxes(root):
        name = node.attrs.get("name", "").upper()
        if (node.attrs.get("name", ""), node.attrs.get("value", "")) in attribute_boxes:
            continue
        row = checkbox_row_text(node)
        if delete_kind is None and (name == "ELIMINAR" or is_delete_confirmation(name) or (
                is_delete_confirmation(row) and not any(label in row for label in _PERMISSION_ROW_WORDS))):
            delete_kind, delete_name = "checkbox", node.attrs.get("name", "")
    if delete_kind is None:
        for node, label in controls(root):
            if label.startswith(("eliminar", "borrar")):
                delete_kind, delete_name = "button", clean(control_label(node))
                break
    return SiiEditScreen(
        company_name=company_name,
        company_ruts=tuple(company_ruts),
        user_ruts=tuple(user_ruts),
        user_name=next(iter(values.get("user_name", [])), ""),
        admin=flags["admin"],
        sign=flags["sign"],
        registry=flags["registry"],
        delete_kind=delete_kind,
        delete_name=delete_name,
        has_save=has_save,
        folios=flags["folios"],
        annul=flags["annul"],
        send=flags["send"],
        boxes=boxes,
    )
