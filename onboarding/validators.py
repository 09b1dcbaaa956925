"""Validators shared by the client and firm forms."""
from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

INVISIBLE_MESSAGE = (
    "El texto contiene caracteres invisibles o de control (por ejemplo, de dirección de escritura). "
    "Escríbalo de nuevo en vez de copiarlo de otro documento."
)


def validate_visible_text(value: str) -> None:
    """Refuse invisible format characters (RTL override, zero-width, BOM) and control characters.

    They let one name display as another on the firm's dashboard and in SII-facing records.
    """
    # NUL is left to Django's own validator, whose message is more specific.
    if any(ch != "\x00" and unicodedata.category(ch) in ("Cf", "Cc") for ch in value):
        raise ValidationError(INVISIBLE_MESSAGE, code="invisible_characters")
