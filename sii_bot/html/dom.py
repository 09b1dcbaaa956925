"""A small tolerant DOM over the standard library's ``html.parser``, its visible text and its tables.

Old markup is the norm: upper-case tags, unclosed ``<TD>``/``<TR>``, layout tables nested in layout
tables, ``<FONT>`` around every text, entities and raw Latin-1 bytes for accents. Walks are iterative
(explicit stacks): a hostile page nested thousands of levels deep must not raise RecursionError.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

from .decode import as_text
from .text import clean

__all__ = ["Document", "Node", "block_texts", "leaf_rows", "parse", "visible_text"]

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
class Node:
    """One element: lower-case ``tag``, lower-case attribute names, children (elements and texts)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = field(default=None, repr=False)

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        """Depth-first over descendant elements (self included), optionally only ``tag``."""
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            if tag is None or node.tag == tag:
                yield node
            stack.extend(child for child in reversed(node.children) if isinstance(child, Node))

    def text(self) -> str:
        """Visible text of this subtree, whitespace-normalized."""
        parts: list[str] = []
        _collect_text(self, parts)
        return clean("".join(parts))

    def has_descendant(self, tag: str) -> bool:
        """True when an element ``tag`` is somewhere below this one."""
        return any(True for node in self.iter(tag) if node is not self)


def _collect_text(node: Node, parts: list[str]) -> None:
    """Append the visible text of ``node``'s subtree to ``parts``."""
    stack: list[Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        if item.tag in _INVISIBLE:
            continue
        if item.tag == "input":
            # Submit buttons show their value: a label is visible text whether it is an input or a button.
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
        self.root = Node("#document")
        self.stack: list[Node] = [self.root]
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
        node = Node(tag, attributes, parent=self.stack[-1])
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
class Document:
    """A parsed page: the element tree, the texts of its ``<script>`` elements and its ``onload`` handlers."""

    root: Node
    scripts: list[str]
    event_handlers: list[str]


def parse(html: str | bytes) -> Document:
    """Parse ``html`` (text, or bytes decoded with ``decode_page``); never raises."""
    builder = _TreeBuilder()
    try:
        builder.feed(as_text(html))
        builder.close()
    except Exception:  # noqa: BLE001, S110 - html.parser can choke on pathological markup; keep what was built
        pass
    return Document(builder.root, builder.scripts, builder.event_handlers)


def visible_text(html: str | bytes) -> str:
    """Return the text a person sees on the page: entities decoded, accents kept, single-spaced.

    Scripts, styles, the title and form option lists are left out; submit-button labels and image
    ``alt`` texts are included (old pages use both for actions).
    """
    return parse(html).root.text()


def leaf_rows(root: Node) -> list[list[Node]]:
    """Rows (lists of td/th cells) that have no nested rows: the rows that carry data.

    Layout tables wrap whole sections in one big cell; only the innermost rows have label/value pairs.
    """
    rows: list[list[Node]] = []
    for tr in root.iter("tr"):
        if tr.has_descendant("tr"):
            # Mixed rows (some cells with nested tables, some with text): keep the text-only cells.
            cells = [c for c in tr.children if isinstance(c, Node) and c.tag in ("td", "th")]
            plain = [c for c in cells if not c.has_descendant("tr")]
            if plain and len(plain) == len(cells):
                rows.append(plain)
            continue
        cells = [c for c in tr.iter() if c.tag in ("td", "th")]
        if cells:
            rows.append(cells)
    return rows


_BLOCK_LEAVES = {"td", "th", "div", "p", "li", "center", "h1", "h2", "h3", "h4", "h5", "h6", "caption", "span"}


def block_texts(root: Node) -> list[str]:
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
