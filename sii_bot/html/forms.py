"""Forms in a parsed page: links and buttons with their labels, input values, checkbox rows."""

from __future__ import annotations

from collections.abc import Iterator

from .dom import Node
from .text import fold

__all__ = ["checkbox_row_text", "control_label", "controls", "field_values", "has_fields_to_fill"]


def control_label(node: Node) -> str:
    """The label a person sees on a link or button: its text, value, image ``alt`` or ``title``."""
    if node.tag == "input":
        return node.attrs.get("value") or node.attrs.get("alt") or node.attrs.get("title") or ""
    text = node.text()
    if not text:
        for img in node.iter("img"):
            text = img.attrs.get("alt") or img.attrs.get("title") or ""
            if text:
                break
    return text or node.attrs.get("title", "")


def controls(root: Node) -> Iterator[tuple[Node, str]]:
    """Links and buttons with their folded labels."""
    for node in root.iter():
        if node.tag in ("a", "button") or (
            node.tag == "input" and node.attrs.get("type", "").lower() in ("submit", "button", "image")
        ):
            yield node, fold(control_label(node))


def field_values(root: Node) -> dict[str, list[str]]:
    """``NAME (upper-case) -> [values]`` of every text/hidden input."""
    values: dict[str, list[str]] = {}
    for node in root.iter("input"):
        kind = node.attrs.get("type", "text").lower()
        name = node.attrs.get("name", "").upper()
        if name and kind in ("hidden", "text", ""):
            values.setdefault(name, []).append(node.attrs.get("value", "").strip())
    return values


def checkbox_row_text(node: Node) -> str:
    """The folded text around a checkbox: its label, paragraph, or whole table row."""
    holder = node.parent
    while holder is not None and holder.tag not in ("label", "tr", "td", "p", "div"):
        holder = holder.parent
    if holder is not None and holder.tag == "td" and holder.parent is not None:
        holder = holder.parent  # the label may be in the next cell of the row
    return fold(holder.text()) if holder is not None else ""


def has_fields_to_fill(root: Node) -> bool:
    """True when the page has checkboxes or text fields: a form (or a list with checkboxes)."""
    return any(node.attrs.get("type", "text").lower() in ("checkbox", "text", "")
               for node in root.iter("input"))
