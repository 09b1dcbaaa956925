"""Turning a response body into HTML text, the way browsers pick its encoding."""

from __future__ import annotations

import codecs
import re

__all__ = ["as_text", "decode_page"]

_CHARSET_IN_HEADER = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_CHARSET_IN_META = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)


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
    ISO-8859-1 (the default of pages that declare nothing, SII's among them), read as windows-1252 like
    browsers do. A body without a declared charset that is valid UTF-8 with multi-byte sequences is
    read as UTF-8: Latin-1 text practically never forms valid UTF-8, so this only rescues mislabeled
    pages.
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
        except (UnicodeError, LookupError):  # codecs that cannot even replace: the default
            return _decode_cp1252(body)
    if any(b >= 0x80 for b in body):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return _decode_cp1252(body)


def as_text(html: str | bytes) -> str:
    """``html`` as text: bytes are decoded with ``decode_page``, text is returned as is."""
    return decode_page(html) if isinstance(html, (bytes, bytearray)) else html
