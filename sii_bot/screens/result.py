"""SII's answer after a save: a user created, a user's permissions modified, or a user eliminated."""

from __future__ import annotations

import re

from ..html import block_texts, clean, fold, has_fields_to_fill, parse, visible_text
from ..models import SiiRemovalRecord, SiiUserRecord
from ..rut import InvalidRut, is_person_rut, normalize_rut
from .records import ParseError, company_header, find_ruts, labelled_values, read_record

__all__ = ["parse_elimination_result", "parse_modification_result", "parse_result", "result_kind"]

_RESULT_MARKERS = ("se ha grabado satisfactoriamente", "grabado satisfactoriamente", "satisfactoriamente",
                   "ingreso de usuarios autorizados", "se ha modificado", "se ha actualizado",
                   "modificado satisfactoriamente", "actualizado satisfactoriamente")
_ELIMINATION_MARKERS = ("eliminacion de usuarios autorizados", "eliminacion de usuario autorizado",
                        "se ha eliminado", "eliminado satisfactoriamente", "eliminada satisfactoriamente",
                        "ha sido eliminado", "ha sido eliminada", "fue eliminado", "fue eliminada",
                        "eliminado correctamente", "eliminado exitosamente")
_MODIFICATION_MARKERS = ("modificacion de usuarios autorizados", "se ha modificado", "modificado satisfactoriamente",
                         "se ha actualizado", "actualizado satisfactoriamente", "modificado correctamente",
                         "ha sido modificado")
_CREATION_MARKERS = ("se ha grabado satisfactoriamente", "grabado satisfactoriamente",
                     "ingreso de usuarios autorizados")


def result_kind(html: str | bytes) -> str | None:
    """What a page after a save says happened: "eliminated", "modified", "created", or None.

    Elimination wins over the others (its page may repeat generic words such as
    "satisfactoriamente"); a page with checkboxes or text fields (an edit screen, a form, a list
    with checkbox columns) is never a result.
    """
    doc = parse(html)
    if has_fields_to_fill(doc.root):
        return None
    folded = fold(doc.root.text())
    if any(marker in folded for marker in _ELIMINATION_MARKERS):
        return "eliminated"
    if any(marker in folded for marker in _MODIFICATION_MARKERS):
        return "modified"
    if any(marker in folded for marker in _CREATION_MARKERS):
        return "created"
    return None


def parse_result(html: str | bytes) -> SiiUserRecord:
    """Return the record on the page after saving ("Se ha grabado satisfactoriamente ...").

    Raises ``ParseError`` when the page does not say the user was saved or a field cannot be read,
    and for an elimination result (which says "satisfactoriamente" too, but nothing was saved).
    """
    kind = result_kind(html)
    if kind == "eliminated":
        raise ParseError("an elimination result, not a saved user")
    folded = fold(visible_text(html))
    if not any(marker in folded for marker in _RESULT_MARKERS):
        raise ParseError("not a result page")
    return read_record(html)


def parse_modification_result(html: str | bytes) -> SiiUserRecord:
    """Return the record on the page after "Guardar Cambios" changed a user's permissions
    ("MODIFICACION DE USUARIOS AUTORIZADOS" / "Se ha modificado satisfactoriamente el usuario …").

    Raises ``ParseError`` for any other page (an elimination result included) or a missing field.
    """
    if result_kind(html) != "modified":
        raise ParseError("not a modification result")
    return read_record(html)


_REMOVED_SENTENCE = re.compile(
    r"(?:de|en)\s+la\s+empresa\s*:?\s*(?P<name>.+?)\s*,?\s*\b(?:rut|r\.u\.t\.?)\s*:?\s*"
    r"(?P<rut>[0-9][0-9.]*\s*-\s*[0-9kK])",
    re.IGNORECASE,
)


def parse_elimination_result(html: str | bytes) -> SiiRemovalRecord:
    """Return what the page after a deletion says ("ELIMINACION DE USUARIOS AUTORIZADOS", "Se ha
    eliminado satisfactoriamente el usuario <RUT> de la empresa <NAME>, Rut <RUT>.").

    SII's exact wording is unknown, so only the fact is required: ``ParseError`` unless the page says
    a user was eliminated. RUTs and the company name are read when shown ("" otherwise).
    """
    if result_kind(html) != "eliminated":
        raise ParseError("not an elimination result")
    doc = parse(html)
    blocks = block_texts(doc.root)
    message = next((b for b in blocks if any(m in fold(b) for m in _ELIMINATION_MARKERS[2:])), "")
    if not message:
        message = next((b for b in blocks if any(m in fold(b) for m in _ELIMINATION_MARKERS)), "")
    text = doc.root.text()
    values = labelled_values(doc.root)
    user_rut = ""
    for rut in find_ruts(message) + [r for v in values.get("user_rut", []) for r in find_ruts(v)]:
        if is_person_rut(rut):
            user_rut = rut
            break
    company_name, company_rut = "", ""
    match = _REMOVED_SENTENCE.search(message) or _REMOVED_SENTENCE.search(text)
    if match:
        try:
            company_rut = normalize_rut(match.group("rut"))
            company_name = clean(match.group("name")).strip(" ,;:")
        except InvalidRut:
            pass
    if not company_rut:
        header = company_header(html)
        if header:
            company_name, company_rut = header
    if not company_rut:
        company_rut = next((r for r in find_ruts(text) if not is_person_rut(r)), "")
    return SiiRemovalRecord(company_name=company_name, company_rut=company_rut, user_rut=user_rut,
                            message=clean(message))
