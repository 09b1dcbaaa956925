"""Comparing page texts: every comparison ignores accents, case and spacing."""

from __future__ import annotations

import re
import unicodedata
from html import unescape

__all__ = ["clean", "fold", "same_text", "text_contains"]

_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """Collapse whitespace (NBSP included) to single spaces and strip."""
    return _SPACES.sub(" ", text.replace("\xa0", " ")).strip()


def fold(text: str) -> str:
    """Return ``text`` without accents, case-folded, with hyphens/underscores as spaces, single-spaced.

    Used for every comparison: "Usuario-Administrador", "USUARIO ADMINISTRADOR" and
    "usuario  administrador" fold to the same string; "Mantención" matches "MANTENCION".
    """
    decomposed = unicodedata.normalize("NFKD", unescape(text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    stripped = re.sub(r"[-_\u2010-\u2015]", " ", stripped)
    return clean(stripped.casefold())


def text_contains(haystack: str, needle: str) -> bool:
    """True when ``needle`` occurs in ``haystack`` ignoring accents, case and spacing."""
    return fold(needle) in fold(haystack)


def same_text(a: str, b: str) -> bool:
    """True when both texts are equal ignoring accents, case and spacing."""
    return fold(a) == fold(b)
