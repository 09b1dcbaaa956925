"""How SII writes a record on its pages: labels next to values, SI/NO flags, RUTs in text and fields.

Shared by the screen parsers of this package. Labels are matched folded (no accents, lower-case,
hyphens as spaces) against whole cell texts.
"""

from __future__ import annotations

import re

from ..html import Node, block_texts, clean, fold, leaf_rows, parse
from ..models import SiiUserRecord
from ..rut import InvalidRut, normalize_rut

__all__ = [
    "ParseError",
    "company_header",
    "find_ruts",
    "flag_from_cell",
    "label_match",
    "labelled_values",
    "only_rut",
    "read_record",
    "rut_from_fields",
    "yes_no",
]


class ParseError(ValueError):
    """The page does not have the structure a parser needs; ``str(exc)`` says what is missing."""


_RUT_TEXT = re.compile(r"(?<![0-9.])([0-9]{1,2}(?:\.[0-9]{3}){2}|[0-9]{6,8})\s*-\s*([0-9kK])(?![0-9A-Za-z])")


def find_ruts(text: str) -> list[str]:
    """Return the valid RUTs written in ``text`` (canonical form, in order, duplicates removed)."""
    found: list[str] = []
    for match in _RUT_TEXT.finditer(text):
        try:
            rut = normalize_rut(f"{match.group(1)}-{match.group(2)}")
        except InvalidRut:
            continue
        if rut not in found:
            found.append(rut)
    return found


def only_rut(text: str) -> str | None:
    """The canonical RUT when the whole text is one RUT (dots/dash/spaces allowed), else None."""
    cleaned = clean(text)
    if not cleaned or len(cleaned) > 16 or not re.fullmatch(r"[0-9.\s]+-?\s*[0-9kK]", cleaned):
        return None
    if "-" not in cleaned and "." not in cleaned:
        return None  # a bare number is more likely a count or a code than a RUT
    try:
        return normalize_rut(cleaned)
    except InvalidRut:
        return None


_YES = {"si", "s", "yes", "x", "true", "1", "habilitado", "activo", "v"}
_NO = {"no", "n", "false", "0", "-", "", "deshabilitado", "inactivo"}


def yes_no(text: str) -> bool | None:
    """Read SI/NO (with accents, entities, spacing, a trailing colon) as a bool; None if neither."""
    # "S I" / "N O" / "&nbsp;SI&nbsp;": spacing inside the word is layout, not meaning.
    folded = fold(text).strip(" :.").replace(" ", "")
    if folded in _YES:
        return True
    if folded in _NO:
        return False
    return None


def flag_from_cell(cell: Node) -> bool | None:
    """A permission flag from a list cell: SI/NO text, a checkbox, or a check image; None if unclear."""
    for node in cell.iter("input"):
        if node.attrs.get("type", "").lower() in ("checkbox", "radio"):
            return "checked" in node.attrs
    text = cell.text()
    if text:
        return yes_no(text)
    for node in cell.iter("img"):
        hint = fold(node.attrs.get("alt", "") + " " + node.attrs.get("src", ""))
        if any(word in hint for word in ("check", "ok", "tick", "yes", "si")):
            return True
        if any(word in hint for word in ("no", "cross", "blank")):
            return False
    return None


# Labels SII uses for the record rows. Folded (no accents, lower-case, hyphens as spaces).
_RECORD_LABELS: dict[str, tuple[str, ...]] = {
    "user_rut": ("rut usuario", "rut del usuario", "rut", "run usuario", "run"),
    "user_name": ("nombre usuario", "nombre del usuario", "nombre", "nombre o razon social"),
    "admin": ("usuario administrador", "administrador"),
    "sign": ("firmar documentos", "firmar doctos", "firmar", "firma documentos", "firma"),
    "registry": ("registro", "consultar", "consulta", "consultar documentos", "consulta/registro",
                 "consulta / registro", "registro/consulta"),
    "folios": ("solicitar folios", "obtener folios", "solicitud de folios", "folios"),
    "annul": ("anular documentos", "anular folios", "anular doctos", "anular"),
    "send": ("enviar documentos", "enviar doctos", "envio de documentos", "enviar"),
    "authorized_by": ("autorizado por", "autorizada por", "ingresado por"),
    "company_rut": ("rut empresa", "rut de la empresa", "rut contribuyente"),
    "company_name": ("empresa", "razon social", "nombre empresa", "razon social empresa"),
}


def label_match(text: str) -> tuple[str, int] | None:
    """Which record field a cell text labels and how specific the label is (0 = most), else None.

    The label must be the whole cell text (an optional trailing colon is allowed).
    """
    folded = fold(text).rstrip(" :")
    for key, labels in _RECORD_LABELS.items():
        if folded in labels:
            return key, labels.index(folded)
    return None


def labelled_values(root: Node) -> dict[str, list[str]]:
    """Collect ``field -> [values]`` from label/value cells in any of SII's layouts.

    Handles: label cell then value cell; value cell then label cell; "Label: value" in one cell; and a
    header row of labels above a row of values.
    """
    ranked: dict[str, list[tuple[int, int, str]]] = {}
    counter = 0

    def add(match: tuple[str, int], value: str) -> None:
        nonlocal counter
        counter += 1
        ranked.setdefault(match[0], []).append((match[1], counter, clean(value)))

    rows = leaf_rows(root)
    for row_index, row in enumerate(rows):
        texts = [c.text() for c in row]
        matches = [label_match(t) for t in texts]
        label_count = sum(1 for m in matches if m)
        if label_count >= 2 and label_count == len([t for t in texts if t]):
            # Header row: values are in the next row with the same number of cells.
            if row_index + 1 < len(rows):
                below = [c.text() for c in rows[row_index + 1]]
                if len(below) == len(texts) and not any(label_match(t) for t in below):
                    for match, value in zip(matches, below):
                        if match:
                            add(match, value)
            continue
        for index, match in enumerate(matches):
            if not match:
                # "Label: value" inside one cell.
                text = texts[index]
                if ":" in text:
                    label, _, rest = text.partition(":")
                    inline = label_match(label)
                    if inline and rest.strip():
                        add(inline, rest)
                continue
            after = texts[index + 1] if index + 1 < len(texts) else None
            before = texts[index - 1] if index > 0 else None
            if after is not None and after.strip(" :") and not label_match(after):
                add(match, after)
            elif before is not None and before.strip(" :") and not label_match(before):
                # Value cell first, label second ("SI | Firmar Documentos").
                add(match, before)
    # Most specific label first ("Rut Usuario" before a bare "Rut"), then document order.
    return {key: [value for _, _, value in sorted(items)] for key, items in ranked.items()}


def rut_from_fields(values: dict[str, list[str]], body_name: str, dv_name: str) -> list[str]:
    """RUTs from paired body/check-digit fields (or one field with the whole RUT); invalid ones kept raw."""
    found: list[str] = []
    bodies, dvs = values.get(body_name, []), values.get(dv_name, [])
    for index, body in enumerate(bodies):
        if not body:
            continue
        dv = dvs[index] if index < len(dvs) else ""
        text = f"{body}-{dv}" if dv and "-" not in body else body
        try:
            rut = normalize_rut(text)
        except InvalidRut:
            rut = text  # shown as is: never equal to a requested RUT
        if rut not in found:
            found.append(rut)
    return found


_COMPANY_SENTENCE = re.compile(
    r"en\s+la\s+empresa\s*:?\s*(?P<name>.+?)\s*,?\s*\b(?:rut|r\.u\.t\.?)\s*:?\s*(?P<rut>[0-9][0-9.]*\s*-\s*[0-9kK])",
    re.IGNORECASE,
)


def _company_from_text(text: str) -> tuple[str, str] | None:
    match = _COMPANY_SENTENCE.search(text)
    if not match:
        return None
    try:
        rut = normalize_rut(match.group("rut"))
    except InvalidRut:
        return None
    name = clean(match.group("name")).strip(" ,;:")
    return name, rut


def _first_flag(values: dict[str, list[str]], key: str) -> bool:
    for value in values.get(key, []):
        parsed = yes_no(value)
        if parsed is not None:
            return parsed
    raise ParseError(f"no SI/NO value for {key}")


def _shown_flag(values: dict[str, list[str]], key: str) -> bool | None:
    """The row's SI/NO when the page has a row for ``key``; None when it has none."""
    return _first_flag(values, key) if key in values else None


def _first_rut(values: dict[str, list[str]], key: str) -> str:
    for value in values.get(key, []):
        ruts = find_ruts(value) or ([r] if (r := only_rut(value)) else [])
        if ruts:
            return ruts[0]
    raise ParseError(f"no RUT for {key}")


def read_record(html: str | bytes) -> SiiUserRecord:
    """The user record a confirmation or result page shows, with every attribute row it has.

    ``ParseError`` when the company, the user or one of the rows every known page has (Usuario
    Administrador, Firmar Documentos, Registro/Consulta) is missing, or a row's value is not SI/NO.
    Solicitar Folios, Anular Documentos and Enviar Documentos are None when the page has no such row.
    """
    doc = parse(html)
    text = doc.root.text()
    values = labelled_values(doc.root)
    company = _company_from_text(text)
    if company:
        company_name, company_rut = company
    else:
        company_rut = _first_rut(values, "company_rut")
        company_name = next(iter(values.get("company_name", [])), "")
    user_rut = _first_rut(values, "user_rut")
    return SiiUserRecord(
        company_name=company_name,
        company_rut=company_rut,
        user_rut=user_rut,
        user_name=next(iter(values.get("user_name", [])), ""),
        admin=_first_flag(values, "admin"),
        sign=_first_flag(values, "sign"),
        registry=_first_flag(values, "registry"),
        authorized_by=next(iter(values.get("authorized_by", [])), ""),
        folios=_shown_flag(values, "folios"),
        annul=_shown_flag(values, "annul"),
        send=_shown_flag(values, "send"),
    )


_INLINE_COMPANY = re.compile(r"empresa\s*:\s*(?P<name>.+?)\s*(?:\brut\s*:.*)?$", re.IGNORECASE)
_INLINE_RUT = re.compile(r"\brut(?:\s+(?:de\s+la\s+)?empresa)?\s*:\s*(?P<rut>[0-9][0-9.]*\s*-\s*[0-9kK])", re.IGNORECASE)


def company_header(html: str | bytes) -> tuple[str, str] | None:
    """``(company name, company RUT)`` from a page header such as "Empresa: X | Rut: 76.086.428-5".

    Either part may be "" when not shown; None when neither is. Used on the user list, where SII's
    exact header is unknown: callers must treat it as a hint, not as proof.
    """
    doc = parse(html)
    values = labelled_values(doc.root)
    name = next(iter(values.get("company_name", [])), "")
    rut = ""
    for value in values.get("company_rut", []):
        found = find_ruts(value)
        if found:
            rut = found[0]
            break
    for text in block_texts(doc.root):
        if not name:
            match = _INLINE_COMPANY.search(text)
            if match and not find_ruts(match.group("name")):
                name = clean(match.group("name")).strip(" ,;:")
        if not rut:
            match_rut = _INLINE_RUT.search(text)
            if match_rut:
                try:
                    rut = normalize_rut(match_rut.group("rut"))
                except InvalidRut:
                    pass
    if not name and not rut:
        return None
    return name, rut
