"""Reading SII pages: decoding, visible text, user lists, confirmation/result records and error texts.

Pure functions over HTML (``str``) or raw bytes, built on the standard library's ``html.parser`` so
they work on anything from the saved ISO-8859-1 files of the tests to ``page.content()`` of the
browser. SII markup is old: upper-case tags, unclosed ``<TD>``/``<TR>``, layout tables nested in
layout tables, ``<FONT>`` around every text, entities and raw Latin-1 bytes for accents. Every
comparison is done on decoded visible text, ignoring accents, case and spacing.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from html import unescape
from html.parser import HTMLParser
from typing import Any

from . import errors
from .rut import InvalidRut, is_person_rut, normalize_rut

__all__ = [
    "decode_page",
    "visible_text",
    "fold",
    "text_contains",
    "same_text",
    "SiiUser",
    "SiiUserRecord",
    "parse_user_list",
    "parse_confirmation",
    "parse_result",
    "SiiEditScreen",
    "SiiRemovalRecord",
    "parse_edit_screen",
    "parse_modification_result",
    "parse_elimination_result",
    "result_kind",
    "is_delete_confirmation",
    "mentions_user",
    "detect_error",
    "classify_message",
    "page_alerts",
    "is_login_page",
    "mentions_existing_user",
    "find_ruts",
    "company_header",
    "ParseError",
]

# ---------------------------------------------------------------------------------------------------
# Decoding

_CHARSET_IN_HEADER = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_CHARSET_IN_META = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)


_UNSAFE_CODECS = frozenset({"idna", "punycode", "raw-unicode-escape", "unicode-escape", "utf-7", "undefined"})


def _codec_for(label: str | None) -> str | None:
    if not label:
        return None
    try:
        info = codecs.lookup(label.strip())
    except (LookupError, ValueError):
        return None
    name = info.name
    # A server-chosen label must name a real text encoding: binary transforms (base64, zlib, rot13) and
    # codecs that fail on arbitrary bytes (idna, punycode, the escape codecs) are ignored, as browsers do.
    if not getattr(info, "_is_text_encoding", True) or name in _UNSAFE_CODECS:
        return None
    # Browsers read "ISO-8859-1"/"latin-1"/"ascii" labels as windows-1252 (WHATWG Encoding): curly
    # quotes and the euro sign then come out right.
    if name in ("latin-1", "iso8859-1", "ascii"):
        return "cp1252"
    return name


def _decode_cp1252(body: bytes) -> str:
    try:
        return body.decode("cp1252")
    except UnicodeDecodeError:
        # Five bytes are undefined in cp1252; Latin-1 maps every byte, so nothing is lost.
        return body.decode("latin-1")


def decode_page(body: bytes, content_type: str | None = None) -> str:
    """Return the HTML text of a response body (entities are left for ``visible_text`` to decode).

    The charset comes from the Content-Type header, else from a ``<meta>`` in the first 2 KB, else
    SII's real default: ISO-8859-1 (read as windows-1252, like browsers do). A body without a declared
    charset that is valid UTF-8 with multi-byte sequences is read as UTF-8: Latin-1 text practically
    never forms valid UTF-8, so this only rescues mislabeled pages.
    """
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    declared: str | None = None
    if content_type:
        match = _CHARSET_IN_HEADER.search(content_type)
        declared = _codec_for(match.group(1)) if match else None
    if declared is None:
        match_meta = _CHARSET_IN_META.search(body[:2048])
        if match_meta:
            declared = _codec_for(match_meta.group(1).decode("ascii", "replace"))
    if declared == "cp1252":
        return _decode_cp1252(body)
    if declared:
        try:
            return body.decode(declared, errors="replace")
        except (UnicodeError, LookupError):  # codecs that cannot even replace: fall back to SII's default
            return _decode_cp1252(body)
    if any(b >= 0x80 for b in body):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return _decode_cp1252(body)


def _as_text(html: str | bytes) -> str:
    return decode_page(html) if isinstance(html, (bytes, bytearray)) else html


# ---------------------------------------------------------------------------------------------------
# Text normalization

_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
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
    return _clean(stripped.casefold())


def text_contains(haystack: str, needle: str) -> bool:
    """True when ``needle`` occurs in ``haystack`` ignoring accents, case and spacing."""
    return fold(needle) in fold(haystack)


def same_text(a: str, b: str) -> bool:
    """True when both texts are equal ignoring accents, case and spacing."""
    return fold(a) == fold(b)


# ---------------------------------------------------------------------------------------------------
# A small tolerant DOM

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
         "track", "wbr", "basefont", "frame", "isindex", "keygen"}
_INVISIBLE = {"script", "style", "head", "title", "noscript", "template", "select", "option", "textarea"}
_BLOCK = {"address", "blockquote", "body", "br", "center", "dd", "div", "dl", "dt", "form", "h1", "h2", "h3",
          "h4", "h5", "h6", "hr", "html", "li", "ol", "p", "pre", "table", "tbody", "td", "tfoot", "th",
          "thead", "tr", "ul", "caption"}
# Closing rules for the unclosed tags old pages are full of.
_CLOSES: dict[str, set[str]] = {
    "td": {"td", "th"},
    "th": {"td", "th"},
    "tr": {"td", "th", "tr"},
    "tbody": {"td", "th", "tr", "tbody", "thead", "tfoot"},
    "thead": {"td", "th", "tr", "tbody", "thead", "tfoot"},
    "tfoot": {"td", "th", "tr", "tbody", "thead", "tfoot"},
    "p": {"p"},
    "li": {"li"},
    "option": {"option"},
    "dt": {"dt", "dd"},
    "dd": {"dt", "dd"},
}
# Elements at which the search for an element to auto-close stops.
_SCOPE = {"table", "html", "body", "ul", "ol", "select", "dl"}


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Node | str] = field(default_factory=list)
    parent: _Node | None = field(default=None, repr=False)

    def iter(self, tag: str | None = None) -> Iterator[_Node]:
        """Depth-first over descendant elements (self included), optionally only ``tag``."""
        stack: list[_Node] = [self]
        while stack:
            node = stack.pop()
            if tag is None or node.tag == tag:
                yield node
            stack.extend(child for child in reversed(node.children) if isinstance(child, _Node))

    def text(self) -> str:
        """Visible text of this subtree, whitespace-normalized."""
        parts: list[str] = []
        _collect_text(self, parts)
        return _clean("".join(parts))

    def has_descendant(self, tag: str) -> bool:
        return any(True for node in self.iter(tag) if node is not self)


def _collect_text(node: _Node, parts: list[str]) -> None:
    """Append the visible text of ``node``'s subtree to ``parts``.

    Iterative (an explicit stack, not recursion): a hostile page nested thousands of levels deep must
    not raise RecursionError.
    """
    stack: list[_Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        if item.tag in _INVISIBLE:
            continue
        if item.tag == "input":
            # Submit buttons show their value; include it so "Grabar Usuario" is visible text either way.
            if item.attrs.get("type", "text").lower() in ("submit", "button", "reset"):
                parts.append(f" {item.attrs.get('value', '')} ")
            continue
        if item.tag == "img" and item.attrs.get("alt"):
            parts.append(f" {item.attrs['alt']} ")
            continue
        block = item.tag in _BLOCK
        if block:
            parts.append(" ")
            stack.append(" ")  # emitted after the children
        stack.extend(reversed(item.children))


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#document")
        self.stack: list[_Node] = [self.root]
        self.scripts: list[str] = []
        self.event_handlers: list[str] = []

    def _auto_close(self, tag: str) -> None:
        closes = _CLOSES.get(tag)
        if not closes:
            return
        for index in range(len(self.stack) - 1, 0, -1):
            current = self.stack[index].tag
            if current in closes:
                del self.stack[index:]
                return
            if current in _SCOPE:
                return

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        self._auto_close(tag)
        attributes = {name.lower(): (value or "") for name, value in attrs}
        # Only load handlers run by themselves; onclick/onsubmit run when the bot acts.
        if attributes.get("onload"):
            self.event_handlers.append(attributes["onload"])
        node = _Node(tag, attributes, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag.lower() not in _VOID and self.stack[-1].tag == tag.lower():
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return
            # A stray </td> must not close the table around it.
            if self.stack[index].tag in _SCOPE and tag not in _SCOPE:
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)
        if self.stack[-1].tag == "script":
            self.scripts.append(data)


@dataclass
class _Doc:
    root: _Node
    scripts: list[str]
    event_handlers: list[str]


def _parse(html: str | bytes) -> _Doc:
    builder = _TreeBuilder()
    try:
        builder.feed(_as_text(html))
        builder.close()
    except Exception:  # noqa: BLE001 - html.parser can choke on pathological markup; keep what was built
        pass
    return _Doc(builder.root, builder.scripts, builder.event_handlers)


def visible_text(html: str | bytes) -> str:
    """Return the text a person sees on the page: entities decoded, accents kept, single-spaced.

    Scripts, styles, the title and form option lists are left out; submit-button labels and image
    ``alt`` texts are included (SII uses both for actions).
    """
    return _parse(html).root.text()


# ---------------------------------------------------------------------------------------------------
# Tables


def _cell_text(cell: _Node) -> str:
    return cell.text()


def _leaf_rows(root: _Node) -> list[list[_Node]]:
    """Rows (lists of td/th cells) that have no nested rows: the rows that carry data.

    Layout tables wrap whole sections in one big cell; only the innermost rows have label/value pairs.
    """
    rows: list[list[_Node]] = []
    for tr in root.iter("tr"):
        if tr.has_descendant("tr"):
            # Mixed rows (some cells with nested tables, some with text): keep the text-only cells.
            cells = [c for c in tr.children if isinstance(c, _Node) and c.tag in ("td", "th")]
            plain = [c for c in cells if not c.has_descendant("tr")]
            if plain and len(plain) == len(cells):
                rows.append(plain)
            continue
        cells = [c for c in tr.iter() if c.tag in ("td", "th")]
        if cells:
            rows.append(cells)
    return rows


# ---------------------------------------------------------------------------------------------------
# Records


class ParseError(ValueError):
    """The page does not have the structure a parser needs; ``str(exc)`` says what is missing."""


@dataclass(frozen=True)
class SiiUser:
    """One row of the company's authorized-user list.

    Flags are ``None`` when the list does not show that permission.
    """

    rut: str
    name: str
    admin: bool | None = None
    sign: bool | None = None
    registry: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class SiiUserRecord:
    """What SII shows on the confirmation or result page for one authorized user."""

    company_name: str
    company_rut: str
    user_rut: str
    user_name: str
    admin: bool
    sign: bool
    registry: bool
    authorized_by: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (for the job record and the audit log)."""
        return asdict(self)


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


def _only_rut(text: str) -> str | None:
    """The canonical RUT when the whole text is one RUT (dots/dash/spaces allowed), else None."""
    cleaned = _clean(text)
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


def _yes_no(text: str) -> bool | None:
    """Read SI/NO (with accents, entities, spacing, a trailing colon) as a bool; None if neither."""
    # "S I" / "N O" / "&nbsp;SI&nbsp;": spacing inside the word is layout, not meaning.
    folded = fold(text).strip(" :.").replace(" ", "")
    if folded in _YES:
        return True
    if folded in _NO:
        return False
    return None


def _flag_from_cell(cell: _Node) -> bool | None:
    """A permission flag from a list cell: SI/NO text, a checkbox, or a check image; None if unclear."""
    for node in cell.iter("input"):
        if node.attrs.get("type", "").lower() in ("checkbox", "radio"):
            return "checked" in node.attrs
    text = cell.text()
    if text:
        return _yes_no(text)
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
    "sign": ("firmar documentos", "firmar", "firma documentos", "firma"),
    "registry": ("registro", "consultar", "consulta", "consultar documentos"),
    "authorized_by": ("autorizado por", "autorizada por", "ingresado por"),
    "company_rut": ("rut empresa", "rut de la empresa", "rut contribuyente"),
    "company_name": ("empresa", "razon social", "nombre empresa", "razon social empresa"),
}
_ALL_LABELS = {label for labels in _RECORD_LABELS.values() for label in labels}


def _label_match(text: str) -> tuple[str, int] | None:
    """Which record field a cell text labels and how specific the label is (0 = most), else None.

    The label must be the whole cell text (an optional trailing colon is allowed).
    """
    folded = fold(text).rstrip(" :")
    for key, labels in _RECORD_LABELS.items():
        if folded in labels:
            return key, labels.index(folded)
    return None


def _label_key(text: str) -> str | None:
    match = _label_match(text)
    return match[0] if match else None


def _labelled_values(root: _Node) -> dict[str, list[str]]:
    """Collect ``field -> [values]`` from label/value cells in any of SII's layouts.

    Handles: label cell then value cell; value cell then label cell; "Label: value" in one cell; and a
    header row of labels above a row of values.
    """
    ranked: dict[str, list[tuple[int, int, str]]] = {}
    counter = 0

    def add(match: tuple[str, int], value: str) -> None:
        nonlocal counter
        counter += 1
        ranked.setdefault(match[0], []).append((match[1], counter, _clean(value)))

    rows = _leaf_rows(root)
    for row_index, row in enumerate(rows):
        texts = [_cell_text(c) for c in row]
        matches = [_label_match(t) for t in texts]
        label_count = sum(1 for m in matches if m)
        if label_count >= 2 and label_count == len([t for t in texts if t]):
            # Header row: values are in the next row with the same number of cells.
            if row_index + 1 < len(rows):
                below = [_cell_text(c) for c in rows[row_index + 1]]
                if len(below) == len(texts) and not any(_label_match(t) for t in below):
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
                    inline = _label_match(label)
                    if inline and rest.strip():
                        add(inline, rest)
                continue
            after = texts[index + 1] if index + 1 < len(texts) else None
            before = texts[index - 1] if index > 0 else None
            if after is not None and after.strip(" :") and not _label_match(after):
                add(match, after)
            elif before is not None and before.strip(" :") and not _label_match(before):
                # Value cell first, label second ("SI | Firmar Documentos").
                add(match, before)
    # Most specific label first ("Rut Usuario" before a bare "Rut"), then document order.
    return {key: [value for _, _, value in sorted(items)] for key, items in ranked.items()}


_COMPANY_SENTENCE = re.compile(
    r"en\s+la\s+empresa\s*:?\s*(?P<name>.+?)\s*,?\s*\b(?:rut|r\.u\.t\.?)\s*:?\s*(?P<rut>[0-9][0-9.]*\s*-\s*[0-9kK])",
    re.I,
)


def _company_from_text(text: str) -> tuple[str, str] | None:
    match = _COMPANY_SENTENCE.search(text)
    if not match:
        return None
    try:
        rut = normalize_rut(match.group("rut"))
    except InvalidRut:
        return None
    name = _clean(match.group("name")).strip(" ,;:")
    return name, rut


def _first_flag(values: dict[str, list[str]], key: str) -> bool:
    for value in values.get(key, []):
        parsed = _yes_no(value)
        if parsed is not None:
            return parsed
    raise ParseError(f"no SI/NO value for {key}")


def _first_rut(values: dict[str, list[str]], key: str) -> str:
    for value in values.get(key, []):
        ruts = find_ruts(value) or ([r] if (r := _only_rut(value)) else [])
        if ruts:
            return ruts[0]
    raise ParseError(f"no RUT for {key}")


def _record(html: str | bytes) -> SiiUserRecord:
    doc = _parse(html)
    text = doc.root.text()
    values = _labelled_values(doc.root)
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
    )


_CONFIRMATION_MARKERS = ("se esta creando el siguiente usuario", "confirmacion usuario autorizado",
                         "se esta modificando", "confirmacion")
_RESULT_MARKERS = ("se ha grabado satisfactoriamente", "grabado satisfactoriamente", "satisfactoriamente",
                   "ingreso de usuarios autorizados", "se ha modificado", "se ha actualizado",
                   "modificado satisfactoriamente", "actualizado satisfactoriamente")


def parse_confirmation(html: str | bytes) -> SiiUserRecord:
    """Return the record on the "CONFIRMACION USUARIO AUTORIZADO" page (before "Grabar Usuario").

    Raises ``ParseError`` when the page is not a confirmation or a field (company RUT, user RUT, one of
    the three SI/NO permissions) cannot be read.
    """
    folded = fold(visible_text(html))
    if not any(marker in folded for marker in _CONFIRMATION_MARKERS):
        raise ParseError("not a confirmation page")
    return _record(html)


def parse_result(html: str | bytes) -> SiiUserRecord:
    """Return the record on the page after saving ("Se ha grabado satisfactoriamente ...").

    Raises ``ParseError`` when the page does not say the user was saved or a field cannot be read,
    and for an elimination result (which says "satisfactoriamente" too, but nothing was saved).
    """
    kind = result_kind(html)
    if kind == "eliminated":
        raise ParseError("an elimination result, not a saved user")
    folded = fold(visible_text(html))
    if not any(marker in folded for marker in _RESULT_MARKERS):
        raise ParseError("not a result page")
    return _record(html)


# ---------------------------------------------------------------------------------------------------
# Edit screen ("Guardar Cambios"), modification and elimination results

_ELIMINATION_MARKERS = ("eliminacion de usuarios autorizados", "eliminacion de usuario autorizado",
                        "se ha eliminado", "eliminado satisfactoriamente", "eliminada satisfactoriamente",
                        "ha sido eliminado", "ha sido eliminada", "fue eliminado", "fue eliminada",
                        "eliminado correctamente", "eliminado exitosamente")
_MODIFICATION_MARKERS = ("modificacion de usuarios autorizados", "se ha modificado", "modificado satisfactoriamente",
                         "se ha actualizado", "actualizado satisfactoriamente", "modificado correctamente",
                         "ha sido modificado")
_CREATION_MARKERS = ("se ha grabado satisfactoriamente", "grabado satisfactoriamente",
                     "ingreso de usuarios autorizados")
_EDIT_MARKERS = ("modificacion de usuario autorizado", "modificacion de usuarios autorizados",
                 "modificar usuario", "guardar cambios", "grabar cambios")
_SAVE_CHANGES_LABELS = ("guardar cambios", "grabar cambios", "modificar usuario", "guardar")
_DELETE_WORDS = ("elimin", "borrar", "suprimir", "revocar")
# A checkbox whose row names a permission is a permission, even if the row also says "eliminar".
_PERMISSION_ROW_WORDS = ("usuario administrador", "firmar documentos", "registro", "consultar")


def is_delete_confirmation(message: str) -> bool:
    """True when a JavaScript ``confirm()`` text asks to delete something ("¿Está seguro que desea
    eliminar este usuario…?"). The bot accepts such a dialog only while it is deleting on purpose."""
    folded = fold(message)
    return any(word in folded for word in _DELETE_WORDS)


def result_kind(html: str | bytes) -> str | None:
    """What a page after a save says happened: "eliminated", "modified", "created", or None.

    Elimination wins over the others (its page may repeat generic words such as
    "satisfactoriamente"); a page with checkboxes or text fields (an edit screen, a form, a list
    with checkbox columns) is never a result.
    """
    doc = _parse(html)
    if _is_form(doc.root):
        return None
    folded = fold(doc.root.text())
    if any(marker in folded for marker in _ELIMINATION_MARKERS):
        return "eliminated"
    if any(marker in folded for marker in _MODIFICATION_MARKERS):
        return "modified"
    if any(marker in folded for marker in _CREATION_MARKERS):
        return "created"
    return None


def _is_form(root: _Node) -> bool:
    """A page with checkboxes or text fields to fill is a form (or a list), not a result page."""
    return any(node.attrs.get("type", "text").lower() in ("checkbox", "text", "")
               for node in root.iter("input"))


@dataclass(frozen=True)
class SiiRemovalRecord:
    """What SII's elimination page says: "Se ha eliminado satisfactoriamente el usuario <RUT> de la
    empresa <NAME>, Rut <RUT>." Fields SII does not show are ""."""

    company_name: str
    company_rut: str
    user_rut: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class SiiEditScreen:
    """The edit screen of one authorized user, as shown (before anything is changed).

    ``user_ruts``: the person RUTs the screen names as *the* user (labelled "Rut Usuario" or in the
    form's ``RUT_USU``/``DV_USU`` fields); ``company_ruts``: every company RUT on the page (header,
    sentence, ``RUT_EMP``/``DV_EMP`` fields). A screen that shows exactly one of each, equal to the
    request, is the right one. Flags are ``None`` when the screen has no such checkbox.
    ``delete_kind``: "checkbox" (tick it, then "Guardar Cambios"), "button" (a control of its own) or
    None (no delete option); ``delete_name`` is the checkbox name or the control's label.
    """

    company_name: str
    company_ruts: tuple[str, ...]
    user_ruts: tuple[str, ...]
    user_name: str
    admin: bool | None
    sign: bool | None
    registry: bool | None
    delete_kind: str | None
    delete_name: str
    has_save: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return asdict(self)


def _control_label(node: _Node) -> str:
    if node.tag == "input":
        return node.attrs.get("value") or node.attrs.get("alt") or node.attrs.get("title") or ""
    text = node.text()
    if not text:
        for img in node.iter("img"):
            text = img.attrs.get("alt") or img.attrs.get("title") or ""
            if text:
                break
    return text or node.attrs.get("title", "")


def _controls(root: _Node) -> Iterator[tuple[_Node, str]]:
    """Links and buttons with their folded labels."""
    for node in root.iter():
        if node.tag in ("a", "button") or (
            node.tag == "input" and node.attrs.get("type", "").lower() in ("submit", "button", "image")
        ):
            yield node, fold(_control_label(node))


def _field_values(root: _Node) -> dict[str, list[str]]:
    """``NAME (upper-case) -> [values]`` of every text/hidden input."""
    values: dict[str, list[str]] = {}
    for node in root.iter("input"):
        kind = node.attrs.get("type", "text").lower()
        name = node.attrs.get("name", "").upper()
        if name and kind in ("hidden", "text", ""):
            values.setdefault(name, []).append(node.attrs.get("value", "").strip())
    return values


def _rut_from_fields(values: dict[str, list[str]], body_name: str, dv_name: str) -> list[str]:
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


def _checkbox_row_text(node: _Node) -> str:
    holder = node.parent
    while holder is not None and holder.tag not in ("label", "tr", "td", "p", "div"):
        holder = holder.parent
    if holder is not None and holder.tag == "td" and holder.parent is not None:
        holder = holder.parent  # the label may be in the next cell of the row
    return fold(holder.text()) if holder is not None else ""


def parse_edit_screen(html: str | bytes) -> SiiEditScreen:
    """Read the edit screen of one user (the "Modificar" page that ends in "Guardar Cambios").

    Raises ``ParseError`` when the page is not such a screen (no save-changes control and no heading).
    Works on the raw page (checkbox states are the page's initial ones) and on ``page.content()``.
    """
    doc = _parse(html)
    root = doc.root
    text = root.text()
    folded = fold(text)
    labels = [label for _, label in _controls(root)]
    has_save = any(label in _SAVE_CHANGES_LABELS for label in labels)
    if not has_save and not any(marker in folded for marker in _EDIT_MARKERS[:2]):
        raise ParseError("not an edit screen")

    fields = _field_values(root)
    values = _labelled_values(root)
    # The user: person RUTs under "Rut Usuario"-type labels, and the form's RUT_USU/DV_USU.
    user_ruts: list[str] = []
    for value in values.get("user_rut", []):
        for rut in find_ruts(value) or ([r] if (r := _only_rut(value)) else []):
            if is_person_rut(rut) and rut not in user_ruts:
                user_ruts.append(rut)
    for rut in _rut_from_fields(fields, "RUT_USU", "DV_USU"):
        if rut not in user_ruts:
            user_ruts.append(rut)
    # The company: every company RUT on the page and the form's RUT_EMP/DV_EMP.
    company_ruts = [r for r in find_ruts(text) if not is_person_rut(r)]
    for rut in _rut_from_fields(fields, "RUT_EMP", "DV_EMP"):
        if rut not in company_ruts:
            company_ruts.append(rut)
    header = company_header(html)
    company_name = header[0] if header else ""

    flags: dict[str, bool | None] = {"admin": None, "sign": None, "registry": None}
    names = {"SUP_USU": "admin", "FIRMAR": "sign", "CONSULTAR": "registry"}
    delete_kind: str | None = None
    delete_name = ""
    for node in root.iter("input"):
        if node.attrs.get("type", "").lower() != "checkbox":
            continue
        name = node.attrs.get("name", "").upper()
        if name in names:
            flags[names[name]] = "checked" in node.attrs
            continue
        row = _checkbox_row_text(node)
        if delete_kind is None and (name == "ELIMINAR" or is_delete_confirmation(name) or (
                is_delete_confirmation(row) and not any(label in row for label in _PERMISSION_ROW_WORDS))):
            delete_kind, delete_name = "checkbox", node.attrs.get("name", "")
    if delete_kind is None:
        for node, label in _controls(root):
            if label.startswith(("eliminar", "borrar")):
                delete_kind, delete_name = "button", _clean(_control_label(node))
                break
    return SiiEditScreen(
        company_name=company_name,
        company_ruts=tuple(company_ruts),
        user_ruts=tuple(user_ruts),
        user_name=next(iter(values.get("user_name", [])), ""),
        admin=flags["admin"],
        sign=flags["sign"],
        registry=flags["registry"],
        delete_kind=delete_kind,
        delete_name=delete_name,
        has_save=has_save,
    )


def parse_modification_result(html: str | bytes) -> SiiUserRecord:
    """Return the record on the page after "Guardar Cambios" changed a user's permissions
    ("MODIFICACION DE USUARIOS AUTORIZADOS" / "Se ha modificado satisfactoriamente el usuario …").

    Raises ``ParseError`` for any other page (an elimination result included) or a missing field.
    """
    if result_kind(html) != "modified":
        raise ParseError("not a modification result")
    return _record(html)


_REMOVED_SENTENCE = re.compile(
    r"(?:de|en)\s+la\s+empresa\s*:?\s*(?P<name>.+?)\s*,?\s*\b(?:rut|r\.u\.t\.?)\s*:?\s*"
    r"(?P<rut>[0-9][0-9.]*\s*-\s*[0-9kK])",
    re.IGNORECASE,
)


def parse_elimination_result(html: str | bytes) -> SiiRemovalRecord:
    """Return what the page after a deletion says ("ELIMINACION DE USUARIOS AUTORIZADOS", "Se ha
    eliminado satisfactoriamente el usuario <RUT> de la empresa <NAME>, Rut <RUT>.").

    SII's exact wording is unknown, so only the fact is required: ``ParseError`` unless the page says
    a user was eliminated. RUTs and the company name are read when shown ("" otherwise).
    """
    if result_kind(html) != "eliminated":
        raise ParseError("not an elimination result")
    doc = _parse(html)
    blocks = _block_texts(doc.root)
    message = next((b for b in blocks if any(m in fold(b) for m in _ELIMINATION_MARKERS[2:])), "")
    if not message:
        message = next((b for b in blocks if any(m in fold(b) for m in _ELIMINATION_MARKERS)), "")
    text = doc.root.text()
    values = _labelled_values(doc.root)
    user_rut = ""
    for rut in find_ruts(message) + [r for v in values.get("user_rut", []) for r in find_ruts(v)]:
        if is_person_rut(rut):
            user_rut = rut
            break
    company_name, company_rut = "", ""
    match = _REMOVED_SENTENCE.search(message) or _REMOVED_SENTENCE.search(text)
    if match:
        try:
            company_rut = normalize_rut(match.group("rut"))
            company_name = _clean(match.group("name")).strip(" ,;:")
        except InvalidRut:
            pass
    if not company_rut:
        header = company_header(html)
        if header:
            company_name, company_rut = header
    if not company_rut:
        company_rut = next((r for r in find_ruts(text) if not is_person_rut(r)), "")
    return SiiRemovalRecord(company_name=company_name, company_rut=company_rut, user_rut=user_rut,
                            message=_clean(message))


def mentions_user(html: str | bytes, user_rut: str) -> bool:
    """True when the page names ``user_rut`` anywhere: visible text (any RUT format) or a form field
    (``RUT_USU``/``DV_USU``). Used as a second check that a user is really absent from a list."""
    doc = _parse(html)
    text = doc.root.text()
    if user_rut in find_ruts(text):
        return True
    # Body and check digit in cells of their own ("13322924 | 8"), dots or not.
    body, _, dv = user_rut.partition("-")
    undotted = re.sub(r"(?<=[0-9])\.(?=[0-9]{3})", "", text)
    if re.search(rf"(?<![0-9]){body}(?:\s*-\s*|\s+){dv}(?![0-9A-Za-z])", undotted, re.IGNORECASE):
        return True
    fields = _field_values(doc.root)
    return user_rut in _rut_from_fields(fields, "RUT_USU", "DV_USU") or body in fields.get("RUT_USU", [])


_BLOCK_LEAVES = {"td", "th", "div", "p", "li", "center", "h1", "h2", "h3", "h4", "h5", "h6", "caption", "span"}
_INLINE_COMPANY = re.compile(r"empresa\s*:\s*(?P<name>.+?)\s*(?:\brut\s*:.*)?$", re.I)
_INLINE_RUT = re.compile(r"\brut(?:\s+(?:de\s+la\s+)?empresa)?\s*:\s*(?P<rut>[0-9][0-9.]*\s*-\s*[0-9kK])", re.I)


def _block_texts(root: _Node) -> list[str]:
    """Texts of the innermost block-ish elements (a cell, a DIV, a paragraph), in document order."""
    texts: list[str] = []
    for node in root.iter():
        if node.tag in _BLOCK_LEAVES and not any(
            child.tag in _BLOCK_LEAVES for child in node.iter() if child is not node
        ):
            text = node.text()
            if text:
                texts.append(text)
    return texts


def company_header(html: str | bytes) -> tuple[str, str] | None:
    """``(company name, company RUT)`` from a page header such as "Empresa: X | Rut: 76.086.428-5".

    Either part may be "" when not shown; None when neither is. Used on the user list, where SII's
    exact header is unknown: callers must treat it as a hint, not as proof.
    """
    doc = _parse(html)
    values = _labelled_values(doc.root)
    name = next(iter(values.get("company_name", [])), "")
    rut = ""
    for value in values.get("company_rut", []):
        found = find_ruts(value)
        if found:
            rut = found[0]
            break
    for text in _block_texts(doc.root):
        if not name:
            match = _INLINE_COMPANY.search(text)
            if match and not find_ruts(match.group("name")):
                name = _clean(match.group("name")).strip(" ,;:")
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


# ---------------------------------------------------------------------------------------------------
# User list

_HEADER_WORDS: dict[str, tuple[str, ...]] = {
    "rut": ("rut", "run"),
    "dv": ("dv", "d.v", "digito"),
    "name": ("nombre", "razon social", "usuario"),
    "admin": ("administrador", "admin"),
    "sign": ("firmar", "firma"),
    "registry": ("registro", "consultar", "consulta"),
}


def _header_columns(cells: list[str]) -> dict[str, int]:
    """Map field -> column index from a header row's texts."""
    columns: dict[str, int] = {}
    for index, text in enumerate(cells):
        folded = fold(text).strip(" :")
        if not folded:
            continue
        # Most specific first: "Usuario Administrador" is the admin column, not the name column.
        for key in ("admin", "sign", "registry", "dv", "rut", "name"):
            words = _HEADER_WORDS[key]
            if any(folded == w or folded.startswith(w + " ") or f" {w}" in f" {folded}" for w in words):
                if key not in columns:
                    columns[key] = index
                break
    return columns


def _row_rut(cells: list[_Node], texts: list[str], columns: dict[str, int]) -> tuple[str, int] | None:
    """The user RUT of a list row and the cell it is in."""
    if "rut" in columns and columns["rut"] < len(texts):
        index = columns["rut"]
        text = texts[index]
        if "dv" in columns and columns["dv"] < len(texts) and re.fullmatch(r"[0-9.]+", text.strip()):
            text = f"{text.strip()}-{texts[columns['dv']].strip()}"
        rut = _only_rut(text) or (find_ruts(text)[0] if find_ruts(text) else None)
        if rut:
            return rut, index
    for index, text in enumerate(texts):
        rut = _only_rut(text)
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


def parse_user_list(html: str | bytes) -> list[SiiUser]:
    """Return the authorized users listed on the page (empty list when there are none).

    Finds data rows by a person RUT in a cell (company RUTs on the page are ignored); name and
    permission columns are located by the nearest header row above ("Nombre", "Administrador",
    "Firmar", "Registro"/"Consultar"). Permissions the page does not show are ``None``.
    """
    doc = _parse(html)
    users: list[SiiUser] = []
    seen: set[str] = set()
    columns: dict[str, int] = {}
    for cells in _leaf_rows(doc.root):
        texts = [_cell_text(c) for c in cells]
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
                if i != rut_index and t and _yes_no(t) is None and not _only_rut(t)
                and not re.fullmatch(r"[0-9kK.\-\s]+", t) and not _label_match(t)
                and fold(t) not in ("modificar", "eliminar", "editar", "ver", "seleccionar")
            ]
            name = max(candidates, key=len, default="")

        def flag(key: str) -> bool | None:
            index = columns.get(key)
            if index is None or index >= len(cells):
                return None
            return _flag_from_cell(cells[index])

        users.append(SiiUser(rut=rut, name=name, admin=flag("admin"), sign=flag("sign"), registry=flag("registry")))
        seen.add(rut)
    return users


# ---------------------------------------------------------------------------------------------------
# Errors

_JS_STRING = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_ALERT_CALL = re.compile(r"\b(?:window\.)?alert\s*\(\s*(" + _JS_STRING + r"(?:\s*\+\s*" + _JS_STRING + r")*)\s*\)", re.S)
_JS_PIECE = re.compile(_JS_STRING, re.S)


def _js_unquote(literal: str) -> str:
    body = literal[1:-1]

    def replace(match: re.Match[str]) -> str:
        escape = match.group(0)
        if escape.startswith("\\u"):
            return chr(int(escape[2:], 16))
        if escape.startswith("\\x"):
            return chr(int(escape[2:], 16))
        return {"\\n": "\n", "\\t": "\t", "\\r": "\r"}.get(escape, escape[1:])

    return re.sub(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\.", replace, body)


def _strip_js_comments(script: str) -> str:
    """``script`` with comments blanked out (string literals kept), so commented alerts never count."""
    out: list[str] = []
    index = 0
    length = len(script)
    while index < length:
        char = script[index]
        if char in "'\"":
            end = index + 1
            while end < length and script[end] != char and script[end] != "\n":
                end += 2 if script[end] == "\\" else 1
            out.append(script[index : end + 1])
            index = end + 1
            continue
        if script.startswith("//", index) or script.startswith("<!--", index):
            newline = script.find("\n", index)
            index = length if newline < 0 else newline
            continue
        if script.startswith("/*", index):
            close = script.find("*/", index + 2)
            index = length if close < 0 else close + 2
            out.append(" ")
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _top_level_spans(script: str) -> list[tuple[int, int]]:
    """Character spans of ``script`` that are outside any function body (code that runs at load)."""
    spans: list[tuple[int, int]] = []
    depth_stack: list[bool] = []  # True for a function body
    start = 0
    index = 0
    length = len(script)
    while index < length:
        char = script[index]
        if char in "'\"":
            end = index + 1
            while end < length and script[end] != char:
                end += 2 if script[end] == "\\" else 1
            index = end + 1
            continue
        if script.startswith("//", index):
            newline = script.find("\n", index)
            index = length if newline < 0 else newline
            continue
        if script.startswith("/*", index):
            close = script.find("*/", index + 2)
            index = length if close < 0 else close + 2
            continue
        if char == "{":
            preceding = script[max(0, index - 200) : index]
            is_function = bool(re.search(r"(\bfunction\b[^{;]*\)|=>)\s*$", preceding))
            if is_function and not any(depth_stack):
                spans.append((start, index))
            depth_stack.append(is_function)
        elif char == "}":
            if depth_stack:
                was_function = depth_stack.pop()
                if was_function and not any(depth_stack):
                    start = index + 1
        index += 1
    if not any(depth_stack):
        spans.append((start, length))
    return spans


def page_alerts(html: str | bytes) -> list[str]:
    """Return the texts of ``alert('…')`` calls that run when the page loads.

    Alerts inside function bodies (the new-user form's validation script contains every validation
    message) are left out; top-level script code and ``on…`` attributes such as ``onload`` count.
    """
    doc = _parse(html)
    texts: list[str] = []
    for raw_script in doc.scripts:
        script = _strip_js_comments(raw_script)
        for start, end in _top_level_spans(script):
            for match in _ALERT_CALL.finditer(script[start:end]):
                texts.append("".join(_js_unquote(p) for p in _JS_PIECE.findall(match.group(1))))
    for handler in doc.event_handlers:
        for match in _ALERT_CALL.finditer(handler):
            texts.append("".join(_js_unquote(p) for p in _JS_PIECE.findall(match.group(1))))
    return [_clean(unescape(t)) for t in texts if t.strip()]


# (failure class, folded fragments). Order matters: more specific first.
_ERROR_PATTERNS: list[tuple[type[errors.EnrollmentFailure], tuple[str, ...]]] = [
    (errors.WafRejected, ("transaccion rechazada", "the requested url was rejected", "support id",
                          "request rejected", "solicitud rechazada por")),
    (errors.TooManySessions, ("superado el maximo de sesiones", "maximo de sesiones autenticadas",
                              "01.01.190.500.720.27")),
    (errors.LoginThrottled, ("demasiados intentos", "excedido el numero de intentos", "excedido el maximo de intentos",
                             "superado el numero maximo de intentos", "numero maximo de ingresos",
                             "intentos de autenticacion", "bloqueado temporalmente", "bloqueada temporalmente")),
    (errors.CompanyNotAuthorized, ("no esta autorizada para operar en esta modalidad",
                                   "empresa no autorizada para operar")),
    (errors.OptionNotAllowed, ("no esta autorizado para ingresar a esta opcion",
                               "no esta autorizada para ingresar a esta opcion")),
    (errors.HolderNotAdministrator, ("no esta autorizado para operar en la empresa",
                                     "no tiene permiso en la empresa", "usuario no autorizado para la empresa")),
    (errors.UserRutInvalid, ("ingrese un rut y un dv", "el rut debe contener solo numeros",
                             "rut incorrecto segun modulo 11", "no ha ingresado el digito verificador",
                             "el rut debe ser de una persona natural",
                             "debe seleccionar al menos un privilegio")),
    # Playwright's client-certificate proxy could not verify the *server*: never the user's fault.
    (errors.ServerCertificateUntrusted, ("unable to verify the first certificate", "self signed certificate",
                                         "unable to get local issuer certificate",
                                         "unable to get issuer certificate", "hostname/ip does not match",
                                         "does not match certificate's altnames", "err cert ")),
    (errors.CertificateRejected, ("no ha podido ser validado", "identificacion desde su certificado",
                                  "certificado digital no valido", "certificado no valido", "certificado revocado",
                                  "certificado vencido", "certificado invalido", "certificado no vigente",
                                  "no se ha presentado un certificado", "no presento certificado",
                                  "certificado digital revocado", "certificado digital vencido",
                                  "certificado no corresponde", "alert unknown ca", "alert bad certificate",
                                  "alert certificate revoked", "alert certificate expired",
                                  "alert handshake failure", "certificate required")),
    (errors.SiiUnavailable, ("no ha sido posible completar su solicitud", "el codigo de este mensaje es",
                             "internal server error", "service unavailable", "service temporarily unavailable",
                             "bad gateway", "gateway time out", "gateway timeout", "servicio no disponible",
                             "playwright client certificate error", "err connection", "err timed out",
                             "this site can t be reached", "no se puede acceder a este sitio")),
]


def classify_message(text: str) -> errors.EnrollmentFailure | None:
    """Return the typed failure for one SII message (page text or alert text), or None if unknown.

    The failure's ``sii_text`` is the message itself; ``detail`` names the matched fragment.
    """
    return _classify(text, [])


def _classify(text: str, blocks: list[str]) -> errors.EnrollmentFailure | None:
    """Classify ``text``; ``sii_text`` is the block (or sentence) of the page that holds the message."""
    folded = fold(text)
    if not folded:
        return None
    for cls, fragments in _ERROR_PATTERNS:
        for fragment in fragments:
            if fragment in folded:
                # The block with the message plus the next one (SII puts "El código de este mensaje
                # es …" or the WAF's ID there).
                index = next((i for i, b in enumerate(blocks) if fragment in fold(b)), None)
                sii_text = (
                    " ".join(blocks[index : index + 2])[:400] if index is not None else _sentence_with(text, fragment)
                )
                return cls(f"SII said: {sii_text!r} (matched {fragment!r})", sii_text=sii_text)
    return None


def _sentence_with(text: str, fragment: str) -> str:
    """The sentence of ``text`` that contains the folded ``fragment`` (for messages shown to staff)."""
    cleaned = _clean(text)
    sentences = re.split(r"(?<=[.!?])\s+", cleaned)
    for index, sentence in enumerate(sentences):
        if fragment in fold(sentence):
            # Keep the next sentence too: SII puts the message code there ("El código ... es ...").
            return " ".join(sentences[index : index + 2])[:400]
    return cleaned[:400]


def detect_error(html: str | bytes) -> errors.EnrollmentFailure | None:
    """Return the typed failure an SII page reports, or None when the page shows no known error.

    Looks at the page's visible text, its load-time ``alert('…')`` calls and WAF block pages. The
    returned failure carries the page HTML in ``page_html``.
    """
    text_html = _as_text(html)
    found: errors.EnrollmentFailure | None = None
    for alert in page_alerts(text_html):
        found = classify_message(alert)
        if found:
            break
    if found is None:
        doc = _parse(text_html)
        found = _classify(doc.root.text(), _block_texts(doc.root))
    if found is not None:
        found.page_html = text_html
    return found


_LOGIN_MARKERS = ("identificacion de contribuyentes", "identificarse con certificado digital",
                  "ingreso con certificado digital", "autenticacion con certificado")


def is_login_page(html: str | bytes, url: str = "") -> bool:
    """True when the page is SII's login (AUT2000 entry, certificate entry or RUT + Clave form)."""
    folded_url = url.lower()
    if "ingresocertificado" in folded_url or "/aut2000/" in folded_url or "cautinicio" in folded_url:
        return True
    folded = fold(visible_text(html))
    return any(marker in folded for marker in _LOGIN_MARKERS)


_EXISTING_MARKERS = ("ya existe", "ya se encuentra registrado", "ya se encuentra autorizado",
                     "ya esta registrado", "ya esta autorizado", "usuario existente", "ya se encuentra ingresado")


def mentions_existing_user(html: str | bytes) -> bool:
    """True when the page says the user is already registered (SII's exact text is unknown)."""
    folded = fold(visible_text(html))
    return any(marker in folded for marker in _EXISTING_MARKERS)


def iter_label_values(html: str | bytes) -> Iterable[tuple[str, str]]:
    """Yield ``(field, value)`` pairs found in label/value layouts (for diagnostics and tests)."""
    for key, values in _labelled_values(_parse(html).root).items():
        for value in values:
            yield key, value
