"""Chilean RUT handling for the SII bot.

The check digit (Módulo 11) is validated by ``cl-sii``; this module only adds the lenient input
cleaning users need (dots, spaces, lower-case ``k``, a missing dash) and the Spanish error message.
"""

from __future__ import annotations

import re

from cl_sii.rut import Rut

__all__ = ["PERSON_RUT_LIMIT", "InvalidRut", "display_rut", "is_person_rut", "normalize_rut", "split_rut"]

# SII's own validation script rejects user RUT bodies over 49,999,999 ("El rut debe ser de una persona
# natural."): bodies from 50,000,000 up are assigned to legal entities.
PERSON_RUT_LIMIT = 50_000_000

# Characters people paste around a RUT: every kind of whitespace (incl. NBSP) and thousand separators.
_NOISE = re.compile(r"[\s.\u00a0\u2007\u202f]+")
# Dash look-alikes that come from word processors or phones.
_DASHES = re.compile(r"[\u2010\u2011\u2012\u2013\u2014\u2212]")
# ASCII only on purpose: ``\d`` in cl-sii's regex would also accept Arabic-Indic and other digits.
_CANONICAL = re.compile(r"^([0-9]{1,8})-([0-9K])$")


class InvalidRut(ValueError):
    """A RUT that cannot be normalized; ``str(exc)`` is a Spanish message for the end user."""

    def __init__(self, message: str, value: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.value = value


def normalize_rut(text: str) -> str:
    """Return the canonical form ``"13322924-8"`` (no dots, upper-case ``K``) of a RUT typed by a person.

    Accepts dots, spaces, a lower-case ``k`` and a missing dash (the last character is then the check
    digit, so at least two characters are needed). Raises ``InvalidRut`` (a ``ValueError``) with a
    Spanish message when the text is not a RUT or its check digit is wrong.
    """
    if not isinstance(text, str):
        raise InvalidRut("Ingrese el RUT como texto, por ejemplo 12.345.678-5.", text)
    cleaned = _DASHES.sub("-", _NOISE.sub("", text)).upper()
    if not cleaned:
        raise InvalidRut("Ingrese un RUT, por ejemplo 12.345.678-5.", text)
    if "-" not in cleaned:
        if len(cleaned) < 2:
            raise InvalidRut(
                "El RUT está incompleto: escríbalo con su dígito verificador, por ejemplo 12.345.678-5.", text
            )
        cleaned = f"{cleaned[:-1]}-{cleaned[-1]}"
    body, _, dv = cleaned.partition("-")
    # Leading zeros are padding some systems add ("0013322924-8"); they do not change the RUT.
    body = body.lstrip("0")
    candidate = f"{body}-{dv}"
    if not _CANONICAL.match(candidate):
        raise InvalidRut(
            "El RUT no tiene un formato válido: use solo números y el dígito verificador "
            "(0 a 9 o K), por ejemplo 12.345.678-5.",
            text,
        )
    try:
        rut = Rut(candidate, validate_dv=True)
    except ValueError:
        raise InvalidRut(
            "El dígito verificador no corresponde al RUT ingresado: revise que esté bien escrito.", text
        ) from None
    return rut.canonical


def split_rut(rut: str) -> tuple[str, str]:
    """Return ``(body digits, check digit)`` of a RUT, e.g. ``("13322924", "8")``.

    The input is normalized first, so it may carry dots or a lower-case ``k``; raises ``InvalidRut``.
    """
    body, _, dv = normalize_rut(rut).partition("-")
    return body, dv


def display_rut(rut: str) -> str:
    """The RUT as people write it, with dots: ``"76086428-5"`` → ``"76.086.428-5"`` (for messages
    people read; the text is returned as is when it is not a valid RUT)."""
    try:
        body, dv = split_rut(rut)
    except InvalidRut:
        return rut
    return f"{int(body):,}".replace(",", ".") + "-" + dv


def is_person_rut(rut: str) -> bool:
    """Return True when the RUT belongs to a natural person (body below 50,000,000).

    Raises ``InvalidRut`` when the text is not a valid RUT.
    """
    body, _ = split_rut(rut)
    return int(body) < PERSON_RUT_LIMIT
