"""An authorized user's attributes (SII's checkboxes) and the two page layouts that show them.

SII shows MIPYME companies three checkboxes and companies on market software six (see
sii-reference.md "The enrolment pages"). Each attribute has an SII form field name and a key in the
sandbox state:

==========  ==========  =====================  ==========================================
field       state key   label (checkbox)       list column / result row
==========  ==========  =====================  ==========================================
SUP_USU     admin       Usuario Administrador  Administrador / Usuario-Administrador
OBTENER     folios      Solicitar Folios       Solicitar Folios
ANULAR      annul       Anular Documentos      Anular Documentos
FIRMAR      sign        Firmar Documentos      Firmar Documentos
ENVIAR      send        Enviar Documentos      Enviar Documentos
CONSULTAR   registry    Registro (MIPYME) / Consulta (market software)
==========  ==========  =====================  ==========================================

CONSULTAR is labelled "Registro" on the MIPYME page (SII's guide) and "Consulta" on the market
page: the third-party guides for market-software companies list "Consulta", and sii-reference.md
has no source for "Consulta/Registro".

A company's layout only decides which attributes its pages show and change; every user record keeps
all six, so an edit through the three-checkbox page leaves OBTENER/ANULAR/ENVIAR as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LAYOUTS = ("mipyme", "market")
DEFAULT_LAYOUT = "mipyme"

# SII field name -> state key, in the market page's order.
FIELD_KEYS: dict[str, str] = {
    "SUP_USU": "admin", "OBTENER": "folios", "ANULAR": "annul",
    "FIRMAR": "sign", "ENVIAR": "send", "CONSULTAR": "registry",
}
KEYS: tuple[str, ...] = tuple(FIELD_KEYS.values())
LAYOUT_FIELDS: dict[str, tuple[str, ...]] = {
    "mipyme": ("SUP_USU", "FIRMAR", "CONSULTAR"),
    "market": ("SUP_USU", "OBTENER", "ANULAR", "FIRMAR", "ENVIAR", "CONSULTAR"),
}
_LABELS = {
    "SUP_USU": "Usuario Administrador", "OBTENER": "Solicitar Folios", "ANULAR": "Anular Documentos",
    "FIRMAR": "Firmar Documentos", "ENVIAR": "Enviar Documentos",
}
_ROWS = {"SUP_USU": "Usuario-Administrador"}
_COLUMNS = {"SUP_USU": "Administrador"}


def layout_of(company: Mapping[str, Any]) -> str:
    """The company's layout ("mipyme" when the record has none)."""
    layout = company.get("layout") or DEFAULT_LAYOUT
    return layout if layout in LAYOUTS else DEFAULT_LAYOUT


def fields(layout: str) -> tuple[str, ...]:
    """The SII field names a layout shows, in page order."""
    return LAYOUT_FIELDS[layout]


def label(field: str, layout: str) -> str:
    """The checkbox label of ``field`` on ``layout``'s pages."""
    if field == "CONSULTAR":
        return "Consulta" if layout == "market" else "Registro"
    return _LABELS[field]


def row_label(field: str, layout: str) -> str:
    """The row label in the antecedentes table (confirmation and result pages)."""
    return _ROWS.get(field) or label(field, layout)


def column_label(field: str, layout: str) -> str:
    """The column heading in the user list."""
    return _COLUMNS.get(field) or label(field, layout)


def check_layout(value: Any) -> str:
    """``value`` if it is a known layout; ValueError otherwise."""
    if value not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {value!r}")
    return str(value)


def flags_from(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, bool]:
    """State-key flags from a mapping with state keys (``admin``…) and/or an ``attributes`` mapping
    with SII field names (``{"SUP_USU": true, "ENVIAR": false}``) or state keys.

    ``partial=False``: all six keys, missing ones False. ``partial=True``: only the keys given.
    ValueError names an unknown attribute.
    """
    out: dict[str, bool] = {} if partial else dict.fromkeys(KEYS, False)
    for k in KEYS:
        if k in data:
            out[k] = bool(data[k])
    attrs = data.get("attributes") or {}
    if not isinstance(attrs, Mapping):
        raise TypeError("attributes must be an object of SII field names to true/false")
    for name, value in attrs.items():
        key = FIELD_KEYS.get(str(name).upper()) or (name if name in KEYS else None)
        if key is None:
            raise ValueError(f"unknown attribute {name!r}; known: {list(FIELD_KEYS)}")
        out[key] = bool(value)
    return out
