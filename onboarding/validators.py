"""Validators shared by the client and firm forms."""
from __future__ import annotations

import unicodedata

from django.contrib.auth.password_validation import UserAttributeSimilarityValidator
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


class PasswordSimilarityValidator(UserAttributeSimilarityValidator):
    """Django's similarity check, worded for our forms: they ask for an e-mail and a name, never for a
    "nombre de usuario", so Django's "demasiado similar a la de nombre de usuario" named a field the
    person never saw."""

    def get_error_message(self) -> str:
        return "La contraseña se parece demasiado a su correo o nombre."

    def get_help_text(self) -> str:
        return "Su contraseña no puede parecerse a su correo o a su nombre."
