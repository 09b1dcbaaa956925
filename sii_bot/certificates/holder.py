"""Who holds a certificate: the holder's RUT and name, and the readable issuer name.

Chilean personal certificates carry the holder's RUT in subjectAltName otherName
``1.3.6.1.4.1.8321.1`` (Decreto 181/2002); some CAs also (or only) write it in the subject's
serialNumber (Acepta, IDOK) or OU (Signapis), sometimes with a lower-case ``k``.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from ..rut import InvalidRut, is_person_rut, normalize_rut
from .bundle import CertificateError

__all__ = ["SII_RUT_OID", "holder_name", "holder_rut", "readable_name"]

# Decreto 181/2002: the holder's RUT travels in subjectAltName otherName with this type id.
SII_RUT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.8321.1")

# Minimal DER reading for values inside an already parsed certificate (the SAN otherName).


class _Asn1Error(Exception):
    pass


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """Return (tag, content start, content length or None for BER indefinite length) at ``pos``."""
    if pos >= len(data):
        raise _Asn1Error("truncated: no tag")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # high tag numbers never occur in a SAN value
        raise _Asn1Error("unexpected high tag number")
    if pos >= len(data):
        raise _Asn1Error("truncated: no length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return tag, pos, first
    if first == 0x80:
        return tag, pos, None
    count = first & 0x7F
    if count > 4 or pos + count > len(data):
        raise _Asn1Error("bad length")
    length = int.from_bytes(data[pos : pos + count], "big")
    return tag, pos + count, length


# Holder RUT extraction.

# A RUT inside free text: optional dots, optional dash, check digit (0-9/K/k). Word boundaries keep it
# from matching inside longer digit runs.
_RUT_IN_TEXT = re.compile(r"(?<![0-9])([0-9]{1,2}(?:\.?[0-9]{3}){2}|[0-9]{1,8})\s*-\s*([0-9Kk])(?![0-9A-Za-z])")


_BARE_RUT = re.compile(r"^[0-9][0-9.]{5,10}[0-9Kk]$")


def _der_string_value(raw: bytes) -> str | None:
    """Decode the DER value of an otherName: IA5String (0x16) expected; UTF8/Printable/Visible tolerated.

    ``cryptography`` returns the value as DER bytes (tag, length, content), sometimes still wrapped in
    the ``[0] EXPLICIT`` tag; that wrapper is peeled off first.
    """
    try:
        tag, pos, length = _read_tlv(raw, 0)
        if tag == 0xA0 and length is not None:
            tag, pos, length = _read_tlv(raw, pos)
        if length is None or pos + length > len(raw):
            return None
        content = raw[pos : pos + length]
    except _Asn1Error:
        return None
    if tag in (0x16, 0x13, 0x1A):  # IA5String, PrintableString, VisibleString
        return content.decode("ascii", errors="replace")
    if tag == 0x0C:  # UTF8String
        return content.decode("utf-8", errors="replace")
    if tag == 0x1E:  # BMPString
        return content.decode("utf-16-be", errors="replace")
    return None


def _rut_candidates(cert: x509.Certificate) -> list[tuple[str, str]]:
    """Return ``(source, text)`` pairs that may hold the holder's RUT, in order of authority."""
    found: list[tuple[str, str]] = []
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except (x509.ExtensionNotFound, ValueError):
        san = None
    if san is not None:
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == SII_RUT_OID:
                text = _der_string_value(other.value)
                if text:
                    found.append(("san_other_name", text))
    try:
        subject = list(cert.subject)
    except ValueError:
        subject = []
    for attribute in subject:
        if attribute.oid == NameOID.SERIAL_NUMBER and isinstance(attribute.value, str):
            found.append(("subject_serial_number", attribute.value))
    for attribute in subject:
        if attribute.oid == NameOID.ORGANIZATIONAL_UNIT_NAME and isinstance(attribute.value, str):
            found.append(("subject_ou", attribute.value))
    return found


def holder_rut(cert: x509.Certificate) -> str:
    """Return the canonical, person RUT of the certificate holder or raise ``CertificateError``."""
    invalid: str | None = None
    for source, text in _rut_candidates(cert):
        match = _RUT_IN_TEXT.search(text)
        if match:
            raw = f"{match.group(1)}-{match.group(2)}"
        elif source != "subject_ou" and _BARE_RUT.match(text.strip()):
            # A field that is nothing but a RUT without its dash ("133229248"): the last character is
            # the check digit. Not done for OU, where a bare number is more likely something else.
            raw = text.strip()
        else:
            continue
        try:
            rut = normalize_rut(raw)
        except InvalidRut:
            # Remember it but keep looking: another field may carry a valid RUT (e.g. an OU with a
            # number that merely looks like a RUT).
            invalid = invalid or f"{source} has a RUT with a wrong check digit"
            continue
        if not is_person_rut(rut):
            raise CertificateError("not_a_person", detail=f"{source} holds company RUT {rut}")
        return rut
    if invalid:
        raise CertificateError("invalid_rut", detail=invalid)
    raise CertificateError("no_rut", detail="no RUT in SAN otherName, serialNumber or OU")


# Names.


def readable_name(name: x509.Name) -> str:
    """Return 'CN (O)' or whichever of the two exists, else the RFC 4514 string."""

    def first(oid: x509.ObjectIdentifier) -> str:
        values = [a.value for a in name.get_attributes_for_oid(oid) if isinstance(a.value, str)]
        return values[0].strip() if values else ""

    common, org = first(NameOID.COMMON_NAME), first(NameOID.ORGANIZATION_NAME)
    if common and org and org != common:
        return f"{common} ({org})"
    return common or org or name.rfc4514_string()


def holder_name(cert: x509.Certificate) -> str:
    """The holder's CN, else given name and surname joined; "" when the subject names neither."""
    subject = cert.subject
    common = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]
    if common and common[0].strip():
        return common[0].strip()
    given = [a.value for a in subject.get_attributes_for_oid(NameOID.GIVEN_NAME) if isinstance(a.value, str)]
    surname = [a.value for a in subject.get_attributes_for_oid(NameOID.SURNAME) if isinstance(a.value, str)]
    return " ".join(part.strip() for part in (*given, *surname) if part.strip())

