"""The HTML toolkit: decoding, a tolerant DOM, visible text, forms, tables and load-time alerts.

Pure functions over HTML (``str``) or raw bytes, built on the standard library's ``html.parser``, so
they work on anything from saved ISO-8859-1 files to ``page.content()`` of the browser. Nothing here
knows SII: its screens are read in ``sii_bot.screens``.
"""

from .decode import as_text, decode_page
from .dom import Document, Node, block_texts, leaf_rows, parse, visible_text
from .forms import checkbox_row_text, control_label, controls, field_values, has_fields_to_fill
from .scripts import page_alerts
from .text import clean, fold, same_text, text_contains

__all__ = [
    "Document",
    "Node",
    "as_text",
    "block_texts",
    "checkbox_row_text",
    "clean",
    "control_label",
    "controls",
    "decode_page",
    "field_values",
    "fold",
    "has_fields_to_fill",
    "leaf_rows",
    "page_alerts",
    "parse",
    "same_text",
    "text_contains",
    "visible_text",
]
