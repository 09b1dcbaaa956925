"""The company's list of authorized users ("Ingresar Nuevo Usuario" is on it)."""

from __future__ import annotations

import re

from ..html import Node, field_values, fold, leaf_rows, parse
from ..models import SiiUser
from ..rut import InvalidRut, is_person_rut, normalize_rut
from .records import find_ruts, flag_from_cell, label_match, only_rut, rut_from_fields, yes_no

__all__ = ["mentions_user", "parse_user_list"]

_HEADER_WORDS: dict[str, tuple[str, ...]] = {
    "rut": ("rut", "run"),
    "dv": ("dv", "d.v", "digito"),
    "name": ("nombre", "razon social", "usuario"),
    "admin": ("administrador", "admin"),
    "annul": ("anular", "anula", "anulacion"),
    "folios": ("solicitar folios", "folios", "obtener"),
    "sign": ("firmar", "firma"),
    "send": ("enviar", "envio"),
    "registry": ("registro", "consultar", "consulta"),
}
# The attribute columns, as ``SiiUser`` fields. Most specific first when matching a header: "Anular
# Folios" (SII's 2009 manual) is the annul column, not the folios one.
_ATTRIBUTE_KEYS = ("admin", "annul", "folios", "sign", "send", "registry")


def _header_columns(cells: list[str]) -> dict[str, int]:
    """Map field -> column index from a header row's texts."""
    columns: dict[str, int] = {}
    for index, text in enumerate(cells):
        folded = fold(text).strip(" :")
        if not folded:
            continue
        # Most specific first: "Usuario Administrador" is the admin column, not the name column.
        for key in (*_ATTRIBUTE_KEYS, "dv", "rut", "name"):
            words = _HEADER_WORDS[key]
            if any(folded == w or folded.startswith(w + " ") or f" {w}" in f" {folded}" for w in words):
                if key not in columns:
                    columns[key] = index
                break
    return columns


def _row_rut(cells: list[Node], texts: list[str], columns: dict[str, int]) -> tuple[str, int] | None:
    """The user RUT of a list row and the cell it is in."""
    if "rut" in columns and columns["rut"] < len(texts):
        index = columns["rut"]
        text = texts[index]
        if "dv" in columns and columns["dv"] < len(texts) and re.fullmatch(r"[0-9.]+", text.strip()):
            text = f"{text.strip()}-{texts[columns['dv']].strip()}"
        rut = only_rut(text) or (find_ruts(text)[0] if find_ruts(text) else None)
        if rut:
            return rut, index
    for index, text in enumerate(texts):
        rut = only_rut(text)
        if rut:
            return rut, index
        # Body and check digit in adjacent cells ("13322924" | "8").
        if re.fullmatch(r"[0-9.]{6,10}", text.strip()) and index + 1 < len(texts):
            dv = texts[index + 1].strip()
            if re.fullmatch(r"[0-9kK]", dv):
                try:
                    return normalize_rut(f"{text.strip()}-{dv}"), index
                except InvalidRut:
                    pass
    return None


def _column_flag(cells: list[Node], columns: dict[str, int], key: str) -> bool | None:
    index = columns.get(key)
    if index is None or index >= len(cells):
        return None
    return flag_from_cell(cells[index])


def parse_user_list(html: str | bytes) -> list[SiiUser]:
    """Return the authorized users listed on the page (empty list when there are none).

    Finds data rows by a person RUT in a cell (company RUTs on the page are ignored); name and
    attribute columns are located, in any order, by the header texts of the nearest header row above
    ("Nombre", "Administrador", "Solicitar Folios", "Anular Documentos", "Firmar Documentos", "Enviar
    Documentos", "Registro"/"Consulta"). MIPYME pages show three attributes, market-software pages
    six: attributes the page does not show are ``None`` (not shown is not "NO").
    """
    doc = parse(html)
    users: list[SiiUser] = []
    seen: set[str] = set()
    columns: dict[str, int] = {}
    for cells in leaf_rows(doc.root):
        texts = [c.text() for c in cells]
        header = _header_columns(texts)
        found = _row_rut(cells, texts, columns)
        if found is None:
            if len(header) >= 2:
                columns = header
            continue
        rut, rut_index = found
        if not is_person_rut(rut) or rut in seen:
            continue
        name = ""
        if "name" in columns and columns["name"] < len(texts) and columns["name"] != rut_index:
            name = texts[columns["name"]]
        if not name:
            candidates = [
                t for i, t in enumerate(texts)
                if i != rut_index and t and yes_no(t) is None and not only_rut(t)
                and not re.fullmatch(r"[0-9kK.\-\s]+", t) and not label_match(t)
                and fold(t) not in ("modificar", "eliminar", "editar", "ver", "seleccionar")
            ]
            name = max(candidates, key=len, default="")
        flags = {key: _column_flag(cells, columns, key) for key in _ATTRIBUTE_KEYS}
        users.append(SiiUser(rut=rut, name=name, **flags))
        seen.add(rut)
    return users


def mentions_user(html: str | bytes, user_rut: str) -> bool:
    """True when the page names ``user_rut`` anywhere: visible text (any RUT format) or a form field
    (``RUT_USU``/``DV_USU``). Used as a second check that a user is really absent from a list."""
    doc = parse(html)
    text = doc.root.text()
    if user_rut in find_ruts(text):
        return True
    # Body and check digit in cells of their own ("13322924 | 8"), dots or not.
    body, _, dv = user_rut.partition("-")
    undotted = re.sub(r"(?<=[0-9])\.(?=[0-9]{3})", "", text)
    if re.search(rf"(?<![0-9]){body}(?:\s*-\s*|\s+){dv}(?![0-9A-Za-z])", undotted, re.IGNORECASE):
        return True
    fields = field_values(doc.root)
    return user_rut in rut_from_fields(fields, "RUT_USU", "DV_USU") or body in fields.get("RUT_USU", [])
