"""Helpers of the security suite."""
from __future__ import annotations

import html

from django.db import connection

# Rows that change without storing anything a visitor sent (a login creates a session row).
UNCOUNTED_TABLES = {"django_session"}


def row_counts() -> dict[str, int]:
    """Rows per table, every table of the database (to prove that a refused input stored nothing)."""
    counts = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table in UNCOUNTED_TABLES:
                continue
            cursor.execute(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608 - names from introspection
            counts[table] = cursor.fetchone()[0]
    return counts


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def field_error(response, field: str) -> str | None:  # type: ignore[no-untyped-def]
    """The error shown next to a form field (client/_field.html), unescaped, or None."""
    import re

    found = re.search(rf'id="id_{field}_error">(.*?)</p>', response.content.decode(), re.DOTALL)
    if not found:
        return None
    # Several errors are one span each: "first | second".
    joined = found.group(1).replace('</span><span class="error-line">', " | ")
    return html.unescape(re.sub(r"<[^>]+>", "", joined))
