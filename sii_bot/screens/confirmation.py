"""The "CONFIRMACION USUARIO AUTORIZADO" page shown before "Grabar Usuario"."""

from __future__ import annotations

from ..html import fold, visible_text
from ..models import SiiUserRecord
from .records import ParseError, read_record

__all__ = ["parse_confirmation"]

_CONFIRMATION_MARKERS = ("se esta creando el siguiente usuario", "confirmacion usuario autorizado",
                         "se esta modificando", "confirmacion")


def parse_confirmation(html: str | bytes) -> SiiUserRecord:
    """Return the record on the "CONFIRMACION USUARIO AUTORIZADO" page (before "Grabar Usuario").

    Raises ``ParseError`` when the page is not a confirmation or a field (company RUT, user RUT, one of
    the three SI/NO permissions) cannot be read.
    """
    folded = fold(visible_text(html))
    if not any(marker in folded for marker in _CONFIRMATION_MARKERS):
        raise ParseError("not a confirmation page")
    return read_record(html)
