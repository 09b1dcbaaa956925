"""Strict reading of BER, the encoding OpenSSL accepts for PKCS#12 files (DER is a subset of it).

Only what the certificate checks need: tags (low and high numbers), short, long-form (also with
leading zero bytes) and indefinite lengths, constructed strings, INTEGERs and OBJECT IDENTIFIERs.
Anything malformed raises ``Asn1Error``; the reader never guesses. Every parse shares an element
budget and a depth limit (``Budget``) so hostile nesting costs bounded time and memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Asn1Error", "Budget", "Element", "parse_all", "parse_one"]

UNIVERSAL, CONTEXT = 0, 2
TAG_INTEGER, TAG_OCTET_STRING, TAG_NULL, TAG_OID, TAG_SEQUENCE, TAG_SET = 2, 4, 5, 6, 16, 17

_MAX_LENGTH_BYTES = 8  # significant length bytes (OpenSSL reads at most a C long)
_MAX_TAG_BYTES = 4  # bytes of a high tag number
# Constructed strings inside constructed strings: OpenSSL (via cryptography) refuses a 7th level.
_MAX_STRING_NESTING = 6


class Asn1Error(Exception):
    """The bytes are not well-formed BER (or exceed the reading budget)."""


@dataclass
class Budget:
    """Limits shared by every parse of one file: elements read in all and nesting depth."""

    elements: int = 50_000
    depth: int = 48
    used: int = field(default=0)

    def spend(self) -> None:
        self.used += 1
        if self.used > self.elements:
            raise Asn1Error("too many ASN.1 elements")


@dataclass(frozen=True, slots=True)
class Element:
    """One BER element. ``value`` holds a primitive's content octets; ``children`` a constructed one's."""

    tag_class: int
    constructed: bool
    number: int
    value: bytes
    children: tuple[Element, ...]

    def is_universal(self, number: int) -> bool:
        return self.tag_class == UNIVERSAL and self.number == number

    def is_context(self, number: int) -> bool:
        return self.tag_class == CONTEXT and self.number == number

    def sequence(self, *, minimum: int = 0, maximum: int | None = None, what: str = "SEQUENCE") -> tuple[Element, ...]:
        """The children of a constructed universal SEQUENCE, whose count must lie in the given range."""
        if not (self.is_universal(TAG_SEQUENCE) and self.constructed):
            raise Asn1Error(f"{what} is not a SEQUENCE")
        count = len(self.children)
        if count < minimum or (maximum is not None and count > maximum):
            raise Asn1Error(f"{what} has {count} elements")
        return self.children

    def set_of(self, *, what: str = "SET") -> tuple[Element, ...]:
        if not (self.is_universal(TAG_SET) and self.constructed):
            raise Asn1Error(f"{what} is not a SET")
        return self.children

    def explicit(self, number: int, *, what: str = "[n] EXPLICIT") -> Element:
        """The single element inside a constructed context tag ``[number] EXPLICIT``."""
        if not (self.is_context(number) and self.constructed and len(self.children) == 1):
            raise Asn1Error(f"{what} is not a [{number}] EXPLICIT wrapper of one element")
        return self.children[0]

    def oid(self, *, what: str = "OBJECT IDENTIFIER") -> str:
        if not (self.is_universal(TAG_OID) and not self.constructed):
            raise Asn1Error(f"{what} is not an OBJECT IDENTIFIER")
        return decode_oid(self.value)

    def integer(self, *, what: str = "INTEGER") -> int:
        if not (self.is_universal(TAG_INTEGER) and not self.constructed) or not self.value:
            raise Asn1Error(f"{what} is not an INTEGER")
        return int.from_bytes(self.value, "big", signed=True)

    def octets(self, *, what: str = "OCTET STRING", implicit: tuple[int, int] | None = None,
               _nesting: int = 0) -> bytes:
        """The content of an OCTET STRING, joining the segments of a constructed one.

        ``implicit`` = (class, number) accepts that tag instead of the universal one (``[0] IMPLICIT``).
        """
        tag_class, number = implicit or (UNIVERSAL, TAG_OCTET_STRING)
        if not (self.tag_class == tag_class and self.number == number):
            raise Asn1Error(f"{what} is not an OCTET STRING")
        if not self.constructed:
            return self.value
        if _nesting >= _MAX_STRING_NESTING:
            raise Asn1Error(f"{what} has constructed segments nested too deep")
        # Segments of a constructed string are universal OCTET STRINGs (themselves possibly constructed).
        return b"".join(child.octets(what=what, _nesting=_nesting + 1) for child in self.children)


def decode_oid(raw: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets."""
    if not raw or raw[-1] & 0x80:
        raise Asn1Error("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for index, byte in enumerate(raw):
        if value == 0 and byte == 0x80 and (index == 0 or not raw[index - 1] & 0x80):
            raise Asn1Error("OBJECT IDENTIFIER arc with a leading 0x80")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def _header(data: bytes, pos: int, end: int) -> tuple[int, bool, int, int, int | None]:
    """(class, constructed, number, content start, content length or None if indefinite) at ``pos``."""
    if pos >= end:
        raise Asn1Error("truncated: no tag")
    first = data[pos]
    pos += 1
    tag_class, constructed, number = first >> 6, bool(first & 0x20), first & 0x1F
    if number == 0x1F:
        number = 0
        for count in range(_MAX_TAG_BYTES + 1):
            if count == _MAX_TAG_BYTES or pos >= end:
                raise Asn1Error("bad high tag number")
            byte = data[pos]
            pos += 1
            number = (number << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
    if pos >= end:
        raise Asn1Error("truncated: no length")
    byte = data[pos]
    pos += 1
    if byte < 0x80:
        length: int | None = byte
    elif byte == 0x80:
        if not constructed:
            raise Asn1Error("indefinite length on a primitive element")
        length = None
    else:
        count = byte & 0x7F
        if pos + count > end:
            raise Asn1Error("truncated length")
        raw = data[pos : pos + count].lstrip(b"\x00")
        if len(raw) > _MAX_LENGTH_BYTES:
            raise Asn1Error("length too large")
        length = int.from_bytes(raw, "big")
        pos += count
    if length is not None and pos + length > end:
        raise Asn1Error("truncated: content runs past its container")
    return tag_class, constructed, number, pos, length


def _parse(data: bytes, pos: int, end: int, budget: Budget, depth: int) -> tuple[Element | None, int]:
    """Parse the element at ``pos`` (within ``end``); (None, next) for an end-of-contents marker."""
    budget.spend()
    if depth > budget.depth:
        raise Asn1Error("nesting too deep")
    tag_class, constructed, number, start, length = _header(data, pos, end)
    if tag_class == UNIVERSAL and number == 0:
        if constructed or length != 0:
            raise Asn1Error("malformed end-of-contents")
        return None, start
    if not constructed:
        assert length is not None  # indefinite lengths on primitives were refused above
        return Element(tag_class, False, number, data[start : start + length], ()), start + length
    children: list[Element] = []
    pos = start
    if length is None:
        while True:
            child, pos = _parse(data, pos, end, budget, depth + 1)
            if child is None:
                break
            children.append(child)
    else:
        stop = start + length
        while pos < stop:
            child, pos = _parse(data, pos, stop, budget, depth + 1)
            if child is None:
                raise Asn1Error("end-of-contents inside a definite-length element")
            children.append(child)
    return Element(tag_class, True, number, b"", tuple(children)), pos


def parse_one(data: bytes, budget: Budget, *, allow_trailing: bool = False) -> tuple[Element, int]:
    """The first element of ``data`` and the offset just after it; refuses trailing bytes unless allowed."""
    element, pos = _parse(data, 0, len(data), budget, 0)
    if element is None:
        raise Asn1Error("end-of-contents where an element was expected")
    if not allow_trailing and pos != len(data):
        raise Asn1Error("trailing bytes after the element")
    return element, pos


def parse_all(data: bytes, budget: Budget) -> Element:
    """``data`` as exactly one element (no trailing bytes)."""
    return parse_one(data, budget)[0]
