"""SII's login (AUT2000 entry, certificate entry or RUT + Clave form): where an expired session lands."""

from __future__ import annotations

from ..html import fold, visible_text

__all__ = ["is_login_page"]

_LOGIN_MARKERS = ("identificacion de contribuyentes", "identificarse con certificado digital",
                  "ingreso con certificado digital", "autenticacion con certificado")


def is_login_page(html: str | bytes, url: str = "") -> bool:
    """True when the page is SII's login (AUT2000 entry, certificate entry or RUT + Clave form)."""
    folded_url = url.lower()
    if "ingresocertificado" in folded_url or "/aut2000/" in folded_url or "cautinicio" in folded_url:
        return True
    folded = fold(visible_text(html))
    return any(marker in folded for marker in _LOGIN_MARKERS)
