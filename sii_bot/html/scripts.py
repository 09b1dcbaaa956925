"""The ``alert('…')`` messages a page shows by itself when it loads (read from its scripts)."""

from __future__ import annotations

import re
from html import unescape

from .dom import parse
from .text import clean

__all__ = ["page_alerts"]

_JS_STRING = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_ALERT_CALL = re.compile(r"\b(?:window\.)?alert\s*\(\s*(" + _JS_STRING + r"(?:\s*\+\s*" + _JS_STRING + r")*)\s*\)", re.DOTALL)
_JS_PIECE = re.compile(_JS_STRING, re.DOTALL)


def _js_unquote(literal: str) -> str:
    body = literal[1:-1]

    def replace(match: re.Match[str]) -> str:
        escape = match.group(0)
        # A backslash-u or backslash-x without its hex digits escapes just the letter, as in JS.
        if escape.startswith(("\\u", "\\x")) and len(escape) > 2:
            return chr(int(escape[2:], 16))  # noqa: FURB166 - the prefix is a JS escape, not Python's 0x
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
        elif char == "}" and depth_stack:
            was_function = depth_stack.pop()
            if was_function and not any(depth_stack):
                start = index + 1
        index += 1
    if not any(depth_stack):
        spans.append((start, length))
    return spans


def page_alerts(html: str | bytes) -> list[str]:
    """Return the texts of ``alert('…')`` calls that run when the page loads.

    Alerts inside function bodies (a form's validation script contains every validation message) are
    left out; top-level script code and ``on…`` attributes such as ``onload`` count.
    """
    doc = parse(html)
    texts: list[str] = []
    for raw_script in doc.scripts:
        script = _strip_js_comments(raw_script)
        for start, end in _top_level_spans(script):
            for match in _ALERT_CALL.finditer(script[start:end]):
                texts.append("".join(_js_unquote(p) for p in _JS_PIECE.findall(match.group(1))))
    for handler in doc.event_handlers:
        for match in _ALERT_CALL.finditer(handler):
            texts.append("".join(_js_unquote(p) for p in _JS_PIECE.findall(match.group(1))))
    return [clean(unescape(t)) for t in texts if t.strip()]
