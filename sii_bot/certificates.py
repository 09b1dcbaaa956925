"""Opening the company owner's digital certificate (.pfx / .p12) and finding its holder's RUT.

Chilean CAs issue PKCS#12 files with legacy encryption (RC2-40 / 3DES). Playwright's Node driver
refuses those, so the file is opened here with ``cryptography`` and the driver only ever receives PEM
bytes (``CertificateMaterial``). Every refusal is a ``CertificateError`` with a stable ``code`` and a
Spanish message that tells the user what to do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtensionOID, NameOID

from .rut import InvalidRut, is_person_rut, normalize_rut

__all__ = [
    "CertificateError",
    "CertificateBundle",
    "CertificateMaterial",
    "open_pkcs12",
    "CERTIFICATE_ERROR_CODES",
    "SII_RUT_OID",
    "DEFAULT_MAX_BYTES",
]

# Decreto 181/2002: the holder's RUT travels in subjectAltName otherName with this type id.
SII_RUT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.8321.1")
DEFAULT_MAX_BYTES = 64 * 1024

_OID_DATA = "1.2.840.113549.1.7.1"
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"

# Spanish messages per code. Kept in one table so the web app can show them for stored codes too.
CERTIFICATE_ERROR_CODES: dict[str, str] = {
    "too_large": (
        "El archivo es demasiado grande para ser un certificado digital (.pfx o .p12). "
        "Verifique que eligió el archivo correcto."
    ),
    "empty": "El archivo está vacío. Vuelva a exportar su certificado digital (.pfx o .p12) y súbalo de nuevo.",
    "not_pkcs12": (
        "El archivo no es un certificado digital en formato .pfx o .p12, o está dañado o incompleto. "
        "Exporte nuevamente su certificado desde el navegador o el equipo donde lo tiene instalado, "
        "incluyendo la clave privada, y súbalo otra vez."
    ),
    "wrong_password": (
        "La contraseña no corresponde a este certificado digital. Revísela (distingue mayúsculas y "
        "minúsculas) y vuelva a intentarlo."
    ),
    "no_private_key": (
        "El archivo contiene el certificado pero no su clave privada. Expórtelo nuevamente marcando la "
        "opción «Exportar la clave privada» y súbalo otra vez."
    ),
    "key_mismatch": (
        "La clave privada del archivo no corresponde al certificado que contiene. Exporte nuevamente su "
        "certificado digital desde donde lo tiene instalado y súbalo otra vez."
    ),
    "no_certificate": (
        "El archivo contiene una clave privada pero no el certificado. Exporte nuevamente su certificado "
        "digital completo (.pfx o .p12) y súbalo otra vez."
    ),
    "expired": (
        "El certificado digital está vencido. Renuévelo con su proveedor (entidad acreditada) y suba el "
        "certificado nuevo."
    ),
    "not_yet_valid": (
        "El certificado digital todavía no está vigente. Espere a la fecha de inicio de vigencia o "
        "revise la fecha y hora de su equipo, y vuelva a intentarlo."
    ),
    "no_rut": (
        "El certificado digital no indica el RUT de su titular, por lo que el SII no lo aceptará. Use un "
        "certificado digital emitido por una entidad acreditada en Chile."
    ),
    "invalid_rut": (
        "El RUT que indica el certificado digital no es válido (dígito verificador incorrecto). "
        "Contacte al proveedor que lo emitió."
    ),
    "not_a_person": (
        "El certificado digital pertenece a una empresa, no a una persona. Use el certificado digital "
        "personal del representante legal o de un usuario administrador de la empresa."
    ),
    "legacy_disabled": (
        "No pudimos abrir el certificado por una configuración de nuestro servidor. Nuestro equipo ya "
        "fue notificado; intente nuevamente más tarde."
    ),
}


class CertificateError(ValueError):
    """A certificate file we refuse, with a stable ``code`` and a Spanish ``message`` for the user.

    ``detail`` (English, optional) is for staff logs; it never contains key material or the password.
    """

    def __init__(self, code: str, message: str | None = None, *, detail: str = "") -> None:
        self.code = code
        self.message = message if message is not None else CERTIFICATE_ERROR_CODES.get(code, code)
        self.detail = detail
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"CertificateError(code={self.code!r}, detail={self.detail!r})"


@dataclass(frozen=True, repr=False)
class CertificateMaterial:
    """What the browser needs to present the certificate: PEM bytes of leaf, PKCS#8 key and chain.

    ``key_pem`` is unencrypted: keep instances in memory only, for the duration of one job.
    """

    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = b""

    def __repr__(self) -> str:
        # Never render key bytes (or the certificate) into logs or tracebacks.
        return (
            f"CertificateMaterial(cert_pem=<{len(self.cert_pem)} bytes>, key_pem=<redacted>, "
            f"chain_pem=<{len(self.chain_pem)} bytes>)"
        )

    __str__ = __repr__

    @property
    def full_chain_pem(self) -> bytes:
        """Leaf followed by intermediates: some CAs need the whole chain sent in the TLS handshake."""
        if not self.chain_pem:
            return self.cert_pem
        cert = self.cert_pem if self.cert_pem.endswith(b"\n") else self.cert_pem + b"\n"
        return cert + self.chain_pem


@dataclass(frozen=True, repr=False)
class CertificateBundle:
    """The opened certificate: who holds it, its validity, and the PEM material for the browser.

    ``holder_rut`` is canonical ("13322924-8"); ``not_before``/``not_after`` are aware UTC datetimes;
    ``fingerprint_sha256`` is upper-case hex with colons; ``serial_number`` is upper-case hex.
    ``key_pem`` is PKCS#8 and unencrypted: the caller must encrypt it before storing it.
    """

    holder_rut: str
    holder_name: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    serial_number: str
    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = b""

    def __repr__(self) -> str:
        # Deliberately excludes key_pem (and the PEM blobs) so a logged bundle leaks nothing secret.
        return (
            f"CertificateBundle(holder_rut={self.holder_rut!r}, holder_name={self.holder_name!r}, "
            f"issuer={self.issuer!r}, not_before={self.not_before.isoformat()}, "
            f"not_after={self.not_after.isoformat()}, fingerprint_sha256={self.fingerprint_sha256!r}, "
            f"key_pem=<redacted>)"
        )

    __str__ = __repr__

    @property
    def material(self) -> CertificateMaterial:
        """The ``CertificateMaterial`` the driver takes."""
        return CertificateMaterial(cert_pem=self.cert_pem, key_pem=self.key_pem, chain_pem=self.chain_pem)


# ---------------------------------------------------------------------------------------------------
# Minimal DER/BER reading, only to tell "not a PKCS#12 at all" from "wrong password" (cryptography
# raises the same ValueError for both).


class _Asn1Error(Exception):
    pass


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """Return (tag, content start, content length or None for BER indefinite length) at ``pos``."""
    if pos >= len(data):
        raise _Asn1Error("truncated: no tag")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:  # high tag numbers never occur in the PFX header
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


def _decode_oid(raw: bytes) -> str:
    if not raw:
        raise _Asn1Error("empty OID")
    first = raw[0]
    parts = [str(min(first // 40, 2)), str(first - 40 * min(first // 40, 2))]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def _check_pfx_structure(data: bytes) -> None:
    """Raise ``_Asn1Error`` unless ``data`` starts like a PKCS#12 PFX and is not visibly truncated.

    PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }
    ContentInfo ::= SEQUENCE { contentType OID (data or signedData), content [0] EXPLICIT ... }
    """
    tag, pos, length = _read_tlv(data, 0)
    if tag != 0x30:
        raise _Asn1Error("outer element is not a SEQUENCE")
    if length is not None and pos + length > len(data):
        raise _Asn1Error(f"truncated: PFX declares {length} bytes, {len(data) - pos} present")
    tag, vpos, vlen = _read_tlv(data, pos)
    if tag != 0x02 or vlen is None or vlen < 1 or vlen > 4:
        raise _Asn1Error("version is not a small INTEGER")
    if int.from_bytes(data[vpos : vpos + vlen], "big") != 3:
        raise _Asn1Error("PFX version is not 3")
    tag, cpos, clen = _read_tlv(data, vpos + vlen)
    if tag != 0x30:
        raise _Asn1Error("authSafe is not a SEQUENCE")
    if clen is not None and cpos + clen > len(data):
        raise _Asn1Error("truncated authSafe")
    tag, opos, olen = _read_tlv(data, cpos)
    if tag != 0x06 or olen is None or opos + olen > len(data):
        raise _Asn1Error("authSafe contentType is not an OID")
    if _decode_oid(data[opos : opos + olen]) not in (_OID_DATA, _OID_SIGNED_DATA):
        raise _Asn1Error("authSafe contentType is neither data nor signedData")
    tag, _, _ = _read_tlv(data, opos + olen)
    if tag != 0xA0:
        raise _Asn1Error("authSafe has no [0] content")
    if clen is not None and cpos + clen < len(data):
        _check_mac_iterations(data, cpos + clen)
    _check_pbe_parameters(data)


# Real files use 1 to 600,000 rounds (OpenSSL 2048, Windows 2000, recent tools 10,000–600,000). A file
# asking for billions would keep a web process busy for many minutes before the MAC check fails.
MAX_MAC_ITERATIONS = 1_000_000


def _check_mac_iterations(data: bytes, pos: int) -> None:
    """Raise ``_Asn1Error`` if the MacData at ``pos`` asks for more than MAX_MAC_ITERATIONS rounds.

    MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
    """
    tag, mpos, mlen = _read_tlv(data, pos)
    if tag != 0x30 or mlen is None:
        raise _Asn1Error("macData is not a SEQUENCE")
    end = mpos + mlen
    tag, dpos, dlen = _read_tlv(data, mpos)  # DigestInfo
    if tag != 0x30 or dlen is None:
        raise _Asn1Error("macData has no DigestInfo")
    tag, spos, slen = _read_tlv(data, dpos + dlen)  # macSalt
    if tag != 0x04 or slen is None:
        raise _Asn1Error("macData has no salt")
    if spos + slen >= end:
        return  # iterations omitted: DEFAULT 1
    tag, ipos, ilen = _read_tlv(data, spos + slen)
    if tag != 0x02 or ilen is None or ilen > 8:
        raise _Asn1Error("macData iterations is not a small INTEGER")
    if int.from_bytes(data[ipos : ipos + ilen], "big") > MAX_MAC_ITERATIONS:
        raise _Asn1Error("macData asks for an unreasonable number of iterations")


# Password-based encryption schemes whose parameters name a work factor: PKCS#12's own PBEs
# (pbeWithSHAAnd*, 1.2.840.113549.1.12.1.x: salt, iterations), PBKDF2 inside PBES2 (salt,
# iterationCount) and scrypt (salt, costParameter N). Real files stay far below these caps.
_OID_PKCS12_PBE_PREFIX = "1.2.840.113549.1.12.1."
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
MAX_SCRYPT_COST = 1 << 20
_MAX_DER_ELEMENTS = 20_000


def _check_pbe_parameters(data: bytes) -> None:
    """Raise ``_Asn1Error`` if any key-derivation parameters visible in the file ask for more work than
    real files do (``MAX_MAC_ITERATIONS`` rounds, scrypt cost ``MAX_SCRYPT_COST``).

    Walks the whole DER tree, also into OCTET STRINGs that hold DER (the authSafe and its unencrypted
    SafeContents, where shrouded key bags and EncryptedData name their schemes), with explicit stacks
    and an element budget. Bags inside an *encrypted* SafeContents are out of sight until decryption;
    OpenSSL derives that outer key first, with parameters this check has already capped.
    """
    # (tag, primitive content), each element's primitives before its children's, then a -1 marker.
    tokens: list[tuple[int, bytes]] = []
    ranges = [(0, len(data))]
    seen = 0
    while ranges:
        start, end = ranges.pop()
        pos = start
        children: list[tuple[int, int]] = []
        while pos < end:
            seen += 1
            if seen > _MAX_DER_ELEMENTS:
                raise _Asn1Error("too many ASN.1 elements")
            try:
                tag, cpos, clen = _read_tlv(data, pos)
            except _Asn1Error:
                break  # not DER after all (an OCTET STRING of ciphertext, say): nothing to see here
            if clen is None or cpos + clen > end:
                break  # BER indefinite lengths or garbage: left to the real parser
            if tag & 0x20:
                children.append((cpos, cpos + clen))
            else:
                tokens.append((tag, data[cpos : cpos + clen]))
                if tag == 0x04 and clen > 2 and data[cpos] == 0x30:
                    children.append((cpos, cpos + clen))  # an OCTET STRING that may wrap DER
            pos = cpos + clen
        ranges.extend(reversed(children))
        tokens.append((-1, b""))
    for index, (tag, value) in enumerate(tokens):
        if tag != 0x06:
            continue
        try:
            oid = _decode_oid(value)
        except _Asn1Error:
            continue
        if not (oid.startswith(_OID_PKCS12_PBE_PREFIX) or oid in (_OID_PBKDF2, _OID_SCRYPT)):
            continue
        # params: SEQUENCE { salt OCTET STRING, work INTEGER, ... } -> the salt then the first INTEGER.
        following = [t for t in tokens[index + 1 : index + 6] if t[0] != -1]
        if len(following) < 2 or following[0][0] != 0x04 or following[1][0] != 0x02:
            continue
        raw = following[1][1]
        work = int.from_bytes(raw, "big") if len(raw) <= 8 else 1 << 64
        limit = MAX_SCRYPT_COST if oid == _OID_SCRYPT else MAX_MAC_ITERATIONS
        if work > limit:
            raise _Asn1Error(f"encryption parameters ask for an unreasonable amount of work ({oid})")


def _looks_like_pem(data: bytes) -> bool:
    return b"-----BEGIN" in data[:4096]


# ---------------------------------------------------------------------------------------------------
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


def _holder_rut(cert: x509.Certificate) -> str:
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


# ---------------------------------------------------------------------------------------------------


def _readable_name(name: x509.Name) -> str:
    """Return 'CN (O)' or whichever of the two exists, else the RFC 4514 string."""

    def first(oid: x509.ObjectIdentifier) -> str:
        values = [a.value for a in name.get_attributes_for_oid(oid) if isinstance(a.value, str)]
        return values[0].strip() if values else ""

    common, org = first(NameOID.COMMON_NAME), first(NameOID.ORGANIZATION_NAME)
    if common and org and org != common:
        return f"{common} ({org})"
    return common or org or name.rfc4514_string()


def _holder_name(cert: x509.Certificate) -> str:
    subject = cert.subject
    common = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]
    if common and common[0].strip():
        return common[0].strip()
    given = [a.value for a in subject.get_attributes_for_oid(NameOID.GIVEN_NAME) if isinstance(a.value, str)]
    surname = [a.value for a in subject.get_attributes_for_oid(NameOID.SURNAME) if isinstance(a.value, str)]
    return " ".join(part.strip() for part in (*given, *surname) if part.strip())


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_matches(private_key: object, cert: x509.Certificate) -> bool:
    try:
        return _public_bytes(private_key.public_key()) == _public_bytes(cert.public_key())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - unsupported key types simply do not match
        return False


def _load(data: bytes, password: str) -> pkcs12.PKCS12KeyAndCertificates:
    """Run ``load_pkcs12``; an empty password is tried both as "" and as "no password" (they differ)."""
    secret = password.encode("utf-8")
    try:
        return pkcs12.load_pkcs12(data, secret)
    except ValueError:
        if secret:
            raise
        return pkcs12.load_pkcs12(data, None)


def open_pkcs12(
    data: bytes,
    password: str,
    *,
    now: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> CertificateBundle:
    """Open a .pfx/.p12 and return the holder's RUT, validity and PEM material as a ``CertificateBundle``.

    Refuses (``CertificateError`` with one of ``CERTIFICATE_ERROR_CODES``) files that are empty, too
    large, not PKCS#12, locked with another password, without key or certificate, expired or not yet
    valid at ``now`` (default: the current time), without a valid person RUT, or when this server has
    OpenSSL's legacy algorithms disabled. Never raises anything else for any ``data``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("data must be bytes")
    data = bytes(data)
    if not data:
        raise CertificateError("empty")
    if len(data) > max_bytes:
        raise CertificateError("too_large", detail=f"{len(data)} bytes > {max_bytes}")
    if _looks_like_pem(data):
        raise CertificateError("not_pkcs12", detail="PEM text, not a PKCS#12 file")
    try:
        _check_pfx_structure(data)
    except _Asn1Error as exc:
        raise CertificateError("not_pkcs12", detail=f"not a PFX: {exc}") from None

    if "\x00" in password:
        # No real password holds a NUL byte, and cryptography's Rust layer panics on one (a
        # BaseException that would escape the handler below).
        raise CertificateError("wrong_password", detail="password contains a NUL byte")
    try:
        loaded = _load(data, password)
    except Exception as exc:  # noqa: BLE001 - cryptography raises ValueError/TypeError/UnsupportedAlgorithm
        # With legacy providers disabled, RC2-40 files fail with the same "Invalid password or PKCS12
        # data" as a wrong password: blame the server configuration, not the user.
        if os.environ.get("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", "").strip() not in ("", "0"):
            raise CertificateError(
                "legacy_disabled",
                detail="CRYPTOGRAPHY_OPENSSL_NO_LEGACY is set: legacy PKCS#12 (RC2-40) cannot be opened; "
                "unset it on this host",
            ) from None
        raise CertificateError("wrong_password", detail=f"load_pkcs12 failed: {type(exc).__name__}") from None

    try:
        return _bundle_from(loaded, now)
    except CertificateError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed certificate inside a valid PFX is still "bad file"
        raise CertificateError("not_pkcs12", detail=f"unreadable certificate: {type(exc).__name__}") from None


def _bundle_from(loaded: pkcs12.PKCS12KeyAndCertificates, now: datetime | None) -> CertificateBundle:
    """Validate what ``load_pkcs12`` returned and build the bundle (raises ``CertificateError``)."""
    key = loaded.key
    leaf = loaded.cert.certificate if loaded.cert is not None else None
    others = [c.certificate for c in loaded.additional_certs]
    if key is None:
        if leaf is None and not others:
            raise CertificateError("no_certificate", detail="PKCS#12 holds neither key nor certificate")
        raise CertificateError("no_private_key")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, dsa.DSAPrivateKey,
                            ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raise CertificateError("not_pkcs12", detail=f"unsupported key type {type(key).__name__}")
    if leaf is None or not _key_matches(key, leaf):
        # Some exporters do not tie the key to its certificate (no localKeyId): find it among the rest.
        candidates = ([leaf] if leaf is not None else []) + others
        matching = [c for c in candidates if _key_matches(key, c)]
        if not matching:
            if not candidates:
                raise CertificateError("no_certificate")
            raise CertificateError("key_mismatch")
        leaf = matching[0]
        others = [c for c in candidates if c is not leaf]

    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    not_before = leaf.not_valid_before_utc
    not_after = leaf.not_valid_after_utc
    if moment < not_before:
        raise CertificateError("not_yet_valid", detail=f"valid from {not_before.isoformat()}")
    if moment > not_after:
        raise CertificateError("expired", detail=f"expired on {not_after.isoformat()}")

    holder_rut = _holder_rut(leaf)

    fingerprint = leaf.fingerprint(hashes.SHA256()).hex().upper()
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in others if c != leaf)
    return CertificateBundle(
        holder_rut=holder_rut,
        holder_name=_holder_name(leaf),
        issuer=_readable_name(leaf.issuer),
        not_before=not_before,
        not_after=not_after,
        fingerprint_sha256=":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)),
        serial_number=format(leaf.serial_number, "X"),
        cert_pem=leaf.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        chain_pem=chain_pem,
    )
