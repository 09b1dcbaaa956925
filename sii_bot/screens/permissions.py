"""The attribute checkboxes of SII's new-user form and edit screen: which one is which attribute.

A checkbox is an attribute by its field name (``SUP_USU``, ``FIRMAR``, ``CONSULTAR``, ``OBTENER``,
``ANULAR``, ``ENVIAR``: SII's validation script names them), else by a value that is one of those
names, else by its visible label ("Enviar Documentos", "Consulta", "Anular Folios"...). The label is
the checkbox's own ``<label>``, else the text right next to it, else its table row (one checkbox per
row), the neighbouring cell, or the column heading above it. Each attribute is one checkbox at most;
a name beats a value, which beats a label.
"""

from __future__ import annotations

from ..html import Node, clean, fold, parse
from ..models import Permission, PermissionBox

__all__ = ["checkbox_label", "checkboxes", "label_permission", "permission_boxes"]

# Elements that end a run of inline text (the label "next to" a checkbox stops there).
_BREAKS = {"br", "input", "select", "textarea", "button", "img", "hr"}
_BLOCKS = {"td", "th", "tr", "table", "tbody", "thead", "p", "div", "li", "ul", "ol", "form", "body", "html",
           "center", "label", "h1", "h2", "h3", "h4", "h5", "h6", "fieldset", "legend", "dd", "dt", "#document"}
_INVISIBLE = {"script", "style", "head", "title", "noscript", "template", "option"}
# Checkbox values that carry no meaning (the usual "ticked" values).
_PLAIN_VALUES = {"", "s", "si", "on", "1", "true", "x", "v", "y", "yes"}


def _labels() -> list[tuple[str, Permission]]:
    pairs = [(fold(label).rstrip(" :."), p) for p in Permission for label in p.labels]
    # Longest first: "anular documentos" before "anular", "consulta/registro" before "consulta".
    return sorted(pairs, key=lambda pair: -len(pair[0]))


_LABEL_PAIRS = _labels()


def label_permission(text: str) -> Permission | None:
    """The attribute a checkbox label names: the whole (folded) text, or its start followed by a
    space or bracket ("Firmar Documentos (DTE)"); None otherwise."""
    folded = fold(text).strip(" :.*")
    if not folded:
        return None
    for label, permission in _LABEL_PAIRS:
        if folded == label:
            return permission
    for label, permission in _LABEL_PAIRS:
        if folded.startswith(label) and folded[len(label)] in " ([:,;-":
            return permission
    return None


def checkboxes(root: Node) -> list[Node]:
    """Every checkbox of the page, in document order."""
    return [node for node in _in_order(root) if isinstance(node, Node) and node.tag == "input"
            and node.attrs.get("type", "").lower() == "checkbox"]


def _in_order(root: Node) -> list[Node | str]:
    """Elements and texts below ``root`` in document order (invisible elements' contents left out)."""
    out: list[Node | str] = []
    stack: list[Node | str] = [root]
    while stack:
        item = stack.pop()
        out.append(item)
        if isinstance(item, Node) and item.tag not in _INVISIBLE:
            stack.extend(reversed(item.children))
    return out


def _block_of(node: Node) -> Node | None:
    holder = node.parent
    while holder is not None and holder.tag not in _BLOCKS:
        holder = holder.parent
    return holder


def _adjacent_text(box: Node) -> str:
    """The inline text right after the checkbox (up to the next input or line break), else right before."""
    block = _block_of(box)
    if block is None:
        return ""
    tokens: list[Node | str] = []
    for item in _in_order(block)[1:]:
        if isinstance(item, str) or item is box or item.tag in _BREAKS or item.tag in _BLOCKS:
            tokens.append(item)
    try:
        at = next(i for i, t in enumerate(tokens) if t is box)
    except StopIteration:  # pragma: no cover - the box is always below its block
        return ""

    def run(items: list[Node | str]) -> str:
        parts: list[str] = []
        for item in items:
            if not isinstance(item, str):
                if clean("".join(parts)):
                    break
                if item.tag in _BREAKS or item.tag in _BLOCKS:
                    break
                continue
            parts.append(item)
        return clean("".join(parts))

    after = run(tokens[at + 1 :])
    return after or run(list(reversed(tokens[:at])))


def _cells(row: Node) -> list[Node]:
    return [c for c in row.children if isinstance(c, Node) and c.tag in ("td", "th")]


def _enclosing(node: Node, tag: str) -> Node | None:
    holder = node.parent
    while holder is not None and holder.tag != tag:
        holder = holder.parent
    return holder


def checkbox_label(box: Node, root: Node | None = None) -> str:
    """The visible label of a checkbox (see the module docstring); "" when none is found."""
    box_id = box.attrs.get("id")
    if box_id and root is not None:
        for label in root.iter("label"):
            if label.attrs.get("for") == box_id and label.text():
                return label.text()
    label_node = _enclosing(box, "label")
    if label_node is not None and label_node.text():
        return label_node.text()
    text = _adjacent_text(box)
    if text:
        return text
    cell = box.parent
    while cell is not None and cell.tag not in ("td", "th"):
        cell = cell.parent
    if cell is None or cell.parent is None or cell.parent.tag != "tr":
        block = _block_of(box)
        return block.text() if block is not None else ""
    row = cell.parent
    cells = _cells(row)
    index = next((i for i, c in enumerate(cells) if c is cell), -1)
    boxes_in_row = sum(1 for c in cells for _ in checkboxes(c))
    if boxes_in_row == 1 and row.text():
        return row.text()
    # Several checkboxes in the row: the label is the cell beside this one (left first) ...
    for other in (index - 1, index + 1):
        if 0 <= other < len(cells) and not checkboxes(cells[other]) and cells[other].text():
            return cells[other].text()
    # ... or the column heading above it.
    table = row.parent
    if table is not None:
        rows = [r for r in table.iter("tr") if _enclosing(r, "table") is _enclosing(row, "table")]
        position = next((i for i, r in enumerate(rows) if r is row), -1)
        for above in reversed(rows[:position]):
            heading = _cells(above)
            if len(heading) == len(cells) and heading[index].text() and not checkboxes(heading[index]):
                return heading[index].text()
    return ""


def permission_boxes(page: str | bytes | Node) -> tuple[PermissionBox, ...]:
    """The attribute checkboxes of a form page (new-user form or edit screen), in document order.

    Checkboxes that are not an attribute (e.g. "Eliminar usuario") are left out; so is a second
    checkbox for an attribute already found.
    """
    root = page if isinstance(page, Node) else parse(page).root
    boxes = checkboxes(root)
    claims: dict[int, tuple[Permission, str]] = {}
    taken: set[Permission] = set()
    labels: dict[int, str] = {}
    for index, node in enumerate(boxes):
        labels[index] = checkbox_label(node, root)
    for how in ("name", "value", "label"):
        for index, node in enumerate(boxes):
            if index in claims:
                continue
            if how == "name":
                permission = Permission.from_field(node.attrs.get("name", ""))
            elif how == "value":
                value = node.attrs.get("value", "")
                permission = None if fold(value) in _PLAIN_VALUES else Permission.from_field(value)
            else:
                permission = label_permission(labels[index])
            if permission is not None and permission not in taken:
                claims[index] = (permission, how)
                taken.add(permission)
    return tuple(
        PermissionBox(
            permission=claims[index][0],
            name=node.attrs.get("name", ""),
            value=node.attrs.get("value", ""),
            label=labels[index],
            checked="checked" in node.attrs,
            by=claims[index][1],
        )
        for index, node in enumerate(boxes)
        if index in claims
    )
