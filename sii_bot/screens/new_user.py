"""What SII answers to the new-user form when the user is already registered."""

from __future__ import annotations

from ..html import fold, visible_text

__all__ = ["mentions_existing_user"]

_EXISTING_MARKERS = ("ya existe", "ya se encuentra registrado", "ya se encuentra autorizado",
                     "ya esta registrado", "ya esta autorizado", "usuario existente", "ya se encuentra ingresado")


def mentions_existing_user(html: str | bytes) -> bool:
    """True when the page says the user is already registered (SII's exact text is unknown)."""
    folded = fold(visible_text(html))
    return any(marker in folded for marker in _EXISTING_MARKERS)
