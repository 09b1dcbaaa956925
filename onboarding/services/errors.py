"""The one error every service raises when it refuses a write, and the checks of typed input that
raise it."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from sii_bot.rut import InvalidRut, normalize_rut

__all__ = ["ServiceError", "email_or_error", "rut_or_error"]


class ServiceError(Exception):
    """A refused write; `message` is Spanish and safe to show to the user who asked for it."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def rut_or_error(rut: str) -> str:
    """The canonical form of `rut`; raises ServiceError("invalid_rut") saying what is wrong with it."""
    try:
        return normalize_rut(rut)
    except InvalidRut as exc:
        raise ServiceError(exc.message, code="invalid_rut") from None


def email_or_error(email: str) -> str:
    """`email` without surrounding spaces; raises ServiceError("invalid_email") when it is not valid."""
    try:
        validate_email(email.strip())
    except ValidationError:
        raise ServiceError(f"El correo «{email}» no es válido.", code="invalid_email") from None
    return email.strip()
