"""Opening the company owner's digital certificate (.pfx / .p12) and finding its holder's RUT.

Chilean CAs issue PKCS#12 files with legacy encryption (RC2-40 / 3DES). Playwright's Node driver
refuses those, so the file is opened here with ``cryptography`` and the driver only ever receives PEM
bytes (``CertificateMaterial``). Every refusal is a ``CertificateError`` with a stable ``code`` and a
Spanish message that tells the user what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtensionOID, NameOID

from . import asn1
from .rut import InvalidRut, is_person_rut, normalize_rut

__all__ = [
    "CERTIFICATE_ERROR_CODES",
    "DEFAULT_MAX_BYTES",
    "SII_RUT_OID",
    "CertificateBundle",
    "CertificateError",
    "CertificateMaterial",
    "open_pkcs12",
]

# Decreto 181/2002: the holder's RUT travels in subjectAltName otherName with this type id.
SII_RUT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.8321.1")
DEFAULT_MAX_BYTES = 64 * 1024

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


# ---------------------------------------------------------------------------------------------------
# The key-derivation budget. OpenSSL runs every key derivation a PKCS#12 file names (the MAC's, each
# EncryptedData's, each shrouded key bag's) with the counts the file itself gives, in one
# uninterruptible call: a file whose MAC asks for 300,000,000 rounds keeps a web process busy ~18 s
# before "wrong password" (2^31 rounds: minutes). So before ``cryptography`` sees a byte, the whole file is read here with a
# strict BER reader (indefinite and long-form lengths and constructed strings included: OpenSSL
# accepts them), every derivation is found and priced, and anything this walk cannot read or price is
# refused. EncryptedData is decrypted here (after pricing it) because it may hold more shrouded key
# bags, which OpenSSL derives keys for too.

# Real files use 1 to 600,000 rounds per derivation (OpenSSL 2,048, Windows 2,000, recent tools up to
# 600,000) and three derivations (MAC, certificates, key).
MAX_KDF_ITERATIONS = 1_000_000
# The file's total, in hash-output blocks times rounds (about 0.1–0.4 µs each in OpenSSL).
MAX_KDF_WORK = 6_000_000
# scrypt: N·r·p is its time, 128·r·N bytes its memory (OpenSSL itself refuses above 32 MiB).
MAX_SCRYPT_WORK = 1 << 20
MAX_SCRYPT_MEMORY = 32 * 1024 * 1024
_MAX_PBKDF2_KEY_BYTES = 64

_OID_DATA = "1.2.840.113549.1.7.1"
_OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_OID_SAFE_CONTENTS_BAG = "1.2.840.113549.1.12.10.1.6"
_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_OID_PBMAC1 = "1.2.840.113549.1.5.14"
_OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
# PKCS#12 PBEs (1.2.840.113549.1.12.1.n): (cipher, key bytes); SHA-1 key derivation, IV of 8 bytes.
_PKCS12_PBES: dict[str, tuple[str, int]] = {
    "1.2.840.113549.1.12.1.1": ("rc4", 16),
    "1.2.840.113549.1.12.1.2": ("rc4", 5),
    "1.2.840.113549.1.12.1.3": ("3des", 24),
    "1.2.840.113549.1.12.1.4": ("3des", 16),
    "1.2.840.113549.1.12.1.5": ("rc2", 16),
    "1.2.840.113549.1.12.1.6": ("rc2", 5),
}
# PKCS#5 PBES1 (1.2.840.113549.1.5.n): (digest, cipher); 8-byte key and IV from one digest chain.
_PKCS5_PBES1: dict[str, tuple[str, str]] = {
    "1.2.840.113549.1.5.1": ("md2", "des"),
    "1.2.840.113549.1.5.3": ("md5", "des"),
    "1.2.840.113549.1.5.4": ("md2", "rc2"),
    "1.2.840.113549.1.5.6": ("md5", "rc2"),
    "1.2.840.113549.1.5.10": ("sha1", "des"),
    "1.2.840.113549.1.5.11": ("sha1", "rc2"),
}
# PBKDF2 PRFs: hashlib name, output bytes.
_PBKDF2_PRFS: dict[str, tuple[str, int]] = {
    "1.2.840.113549.2.7": ("sha1", 20),
    "1.2.840.113549.2.8": ("sha224", 28),
    "1.2.840.113549.2.9": ("sha256", 32),
    "1.2.840.113549.2.10": ("sha384", 48),
    "1.2.840.113549.2.11": ("sha512", 64),
    "1.2.840.113549.2.12": ("sha512_224", 28),
    "1.2.840.113549.2.13": ("sha512_256", 32),
}
# PBES2 encryption schemes: (cipher, key bytes); the parameters are the IV.
_PBES2_CIPHERS: dict[str, tuple[str, int]] = {
    "2.16.840.1.101.3.4.1.2": ("aes", 16),
    "2.16.840.1.101.3.4.1.22": ("aes", 24),
    "2.16.840.1.101.3.4.1.42": ("aes", 32),
    "1.2.840.113549.3.7": ("3des", 24),
    "1.3.14.3.2.7": ("des", 8),
}


class _TooMuchWork(asn1.Asn1Error):
    """The file asks for more key-derivation work than any real certificate file."""


class _Undecryptable(Exception):
    """An EncryptedData does not open with the given password (so OpenSSL could not open it either)."""


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block))


@dataclass
class _Pbe:
    """A priced password-based encryption: how to derive its key and which cipher uses it."""

    kind: str  # "pkcs12", "pbes1", "pbkdf2", "scrypt"
    salt: bytes
    cipher: str
    key_size: int
    iterations: int = 1
    digest: str = "sha1"
    iv: bytes = b""
    scrypt: tuple[int, int, int] = (0, 0, 0)


class _PfxWalk:
    """Reads one PFX (see ``_check_pfx_structure``) and keeps its running key-derivation bill."""

    def __init__(self) -> None:
        self.budget = asn1.Budget()
        self.work = 0
        self.encrypted: list[tuple[_Pbe, bytes]] = []  # EncryptedData still to open: scheme, ciphertext

    # -- pricing ------------------------------------------------------------------------------------

    def charge(self, units: int, what: str) -> None:
        self.work += units
        if self.work > MAX_KDF_WORK:
            raise _TooMuchWork(f"{what}: the file asks for an unreasonable amount of key-derivation work")

    def rounds(self, element: asn1.Element, what: str) -> int:
        count = element.integer(what=what)
        if count < 1:
            raise asn1.Asn1Error(f"{what} is not a positive count")
        if count > MAX_KDF_ITERATIONS:
            raise _TooMuchWork(f"{what} asks for an unreasonable amount of work ({count} rounds)")
        return count

    def pbkdf2(self, params: asn1.Element, *, key_size: int | None, what: str) -> _Pbe:
        """PBKDF2-params ::= SEQUENCE { salt OCTET STRING, iterationCount, keyLength OPTIONAL, prf DEFAULT sha1 }"""
        fields = list(params.sequence(minimum=2, maximum=4, what=what))
        salt = fields.pop(0).octets(what=f"{what} salt")  # the otherSource CHOICE is unsupported everywhere
        iterations = self.rounds(fields.pop(0), f"{what} iterationCount")
        if fields and fields[0].is_universal(asn1.TAG_INTEGER):
            key_size = fields.pop(0).integer(what=f"{what} keyLength")
            if not 1 <= key_size <= _MAX_PBKDF2_KEY_BYTES:
                raise _TooMuchWork(f"{what} asks for an unreasonable amount of work (a {key_size}-byte key)")
        prf = "1.2.840.113549.2.7"
        if fields:
            prf_fields = fields.pop(0).sequence(minimum=1, maximum=2, what=f"{what} prf")
            prf = prf_fields[0].oid(what=f"{what} prf")
            if len(prf_fields) == 2 and not prf_fields[1].is_universal(asn1.TAG_NULL):
                raise asn1.Asn1Error(f"{what} prf has parameters")
        if fields or prf not in _PBKDF2_PRFS:
            raise asn1.Asn1Error(f"{what} uses an unsupported PRF")
        digest, out = _PBKDF2_PRFS[prf]
        size = key_size or _MAX_PBKDF2_KEY_BYTES
        self.charge(iterations * _blocks(size, out), what)
        return _Pbe("pbkdf2", salt, "", size, iterations=iterations, digest=digest)

    def scrypt(self, params: asn1.Element, what: str) -> _Pbe:
        """scrypt-params ::= SEQUENCE { salt OCTET STRING, costParameter, blockSize, parallelizationParameter, keyLength OPTIONAL }"""
        fields = params.sequence(minimum=4, maximum=5, what=what)
        salt = fields[0].octets(what=f"{what} salt")
        n, r, p = (fields[i].integer(what=f"{what} parameter") for i in (1, 2, 3))
        if n < 2 or n & (n - 1) or r < 1 or p < 1:
            raise asn1.Asn1Error(f"{what} has invalid parameters")
        if n * r * p > MAX_SCRYPT_WORK or 128 * r * (n + p) > MAX_SCRYPT_MEMORY:
            raise _TooMuchWork(f"{what} asks for an unreasonable amount of work (N={n}, r={r}, p={p})")
        key_size = fields[4].integer(what=f"{what} keyLength") if len(fields) == 5 else 0
        if len(fields) == 5 and not 1 <= key_size <= _MAX_PBKDF2_KEY_BYTES:
            raise _TooMuchWork(f"{what} asks for an unreasonable amount of work (a {key_size}-byte key)")
        self.charge(n * r * p, what)
        return _Pbe("scrypt", salt, "", key_size, scrypt=(n, r, p))

    def encryption(self, algorithm: asn1.Element, what: str) -> _Pbe:
        """Price the AlgorithmIdentifier of an EncryptedData or a shrouded key bag; refuse unknown ones."""
        fields = algorithm.sequence(minimum=2, maximum=2, what=what)
        oid = fields[0].oid(what=what)
        params = fields[1]
        if oid in _PKCS12_PBES or oid in _PKCS5_PBES1:
            salt_el, count_el = params.sequence(minimum=2, maximum=2, what=f"{what} parameters")
            salt = salt_el.octets(what=f"{what} salt")
            iterations = self.rounds(count_el, f"{what} iterations")
            if oid in _PKCS12_PBES:
                cipher, key_size = _PKCS12_PBES[oid]
                self.charge(iterations * (_blocks(key_size, 20) + 1), what)  # key, then the IV (8 bytes)
                return _Pbe("pkcs12", salt, cipher, key_size, iterations=iterations)
            digest, cipher = _PKCS5_PBES1[oid]
            self.charge(iterations, what)
            return _Pbe("pbes1", salt, cipher, 8, iterations=iterations, digest=digest)
        if oid != _OID_PBES2:
            raise asn1.Asn1Error(f"{what} uses an unsupported algorithm {oid}")
        kdf, scheme = params.sequence(minimum=2, maximum=2, what=f"{what} PBES2 parameters")
        scheme_oid, iv_el = scheme.sequence(minimum=2, maximum=2, what=f"{what} encryption scheme")
        cipher, key_size = _PBES2_CIPHERS.get(scheme_oid.oid(what=f"{what} cipher"), ("", 0))
        if not cipher:
            raise asn1.Asn1Error(f"{what} uses an unsupported cipher")
        iv = iv_el.octets(what=f"{what} IV")
        kdf_oid, kdf_params = kdf.sequence(minimum=2, maximum=2, what=f"{what} key derivation")
        name = kdf_oid.oid(what=f"{what} key derivation")
        if name == _OID_PBKDF2:
            pbe = self.pbkdf2(kdf_params, key_size=key_size, what=f"{what} PBKDF2")
        elif name == _OID_SCRYPT:
            pbe = self.scrypt(kdf_params, f"{what} scrypt")
        else:
            raise asn1.Asn1Error(f"{what} uses an unsupported key derivation {name}")
        if pbe.key_size not in (0, key_size):
            raise asn1.Asn1Error(f"{what} key length does not fit its cipher")
        pbe.cipher, pbe.key_size, pbe.iv = cipher, key_size, iv
        return pbe

    # -- structure ----------------------------------------------------------------------------------

    def pfx(self, data: bytes) -> None:
        """PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }"""
        # Bytes after the PFX are ignored by OpenSSL too; some exporters pad files.
        root, _ = asn1.parse_one(data, self.budget, allow_trailing=True)
        fields = root.sequence(minimum=2, maximum=3, what="PFX")
        if fields[0].integer(what="PFX version") != 3:
            raise asn1.Asn1Error("PFX version is not 3")
        content_type, content = fields[1].sequence(minimum=2, maximum=2, what="authSafe")
        if content_type.oid(what="authSafe contentType") != _OID_DATA:  # OpenSSL opens no other kind
            raise asn1.Asn1Error("authSafe is not of type data")
        octets = content.explicit(0, what="authSafe content").octets(what="authSafe content")
        if len(fields) == 3:
            self.mac_data(fields[2])
        for info in asn1.parse_all(octets, self.budget).sequence(what="AuthenticatedSafe"):
            self.content_info(info)

    def mac_data(self, mac: asn1.Element) -> None:
        """MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }"""
        fields = mac.sequence(minimum=2, maximum=3, what="macData")
        algorithm, _digest = fields[0].sequence(minimum=2, maximum=2, what="macData DigestInfo")
        _digest.octets(what="macData digest")
        fields[1].octets(what="macData salt")
        iterations = self.rounds(fields[2], "macData iterations") if len(fields) == 3 else 1
        self.charge(iterations, "macData")
        alg_fields = algorithm.sequence(minimum=1, maximum=2, what="macData algorithm")
        if alg_fields[0].oid(what="macData algorithm") == _OID_PBMAC1:
            # PBMAC1 (RFC 9579) takes its rounds from PBKDF2 parameters, not from the field above.
            if len(alg_fields) != 2:
                raise asn1.Asn1Error("PBMAC1 without parameters")
            kdf, _scheme = alg_fields[1].sequence(minimum=2, maximum=2, what="PBMAC1 parameters")
            kdf_oid, kdf_params = kdf.sequence(minimum=2, maximum=2, what="PBMAC1 key derivation")
            if kdf_oid.oid(what="PBMAC1 key derivation") != _OID_PBKDF2:
                raise asn1.Asn1Error("PBMAC1 without PBKDF2")
            self.pbkdf2(kdf_params, key_size=None, what="PBMAC1 PBKDF2")

    def content_info(self, info: asn1.Element) -> None:
        """One ContentInfo of the AuthenticatedSafe: data (a SafeContents) or encryptedData."""
        content_type, content = info.sequence(minimum=2, maximum=2, what="ContentInfo")
        kind = content_type.oid(what="ContentInfo contentType")
        inner = content.explicit(0, what="ContentInfo content")
        if kind == _OID_DATA:
            self.safe_contents(asn1.parse_all(inner.octets(what="SafeContents"), self.budget))
        elif kind == _OID_ENCRYPTED_DATA:
            # EncryptedData ::= SEQUENCE { version, EncryptedContentInfo }
            # EncryptedContentInfo ::= SEQUENCE { contentType, algorithm, encryptedContent [0] IMPLICIT OPTIONAL }
            _version, enc = inner.sequence(minimum=2, maximum=2, what="EncryptedData")
            _version.integer(what="EncryptedData version")
            fields = enc.sequence(minimum=2, maximum=3, what="EncryptedContentInfo")
            if fields[0].oid(what="EncryptedContentInfo contentType") != _OID_DATA:
                raise asn1.Asn1Error("EncryptedContentInfo does not hold data")
            pbe = self.encryption(fields[1], "EncryptedData")
            if len(fields) == 3:
                ciphertext = fields[2].octets(what="encryptedContent", implicit=(asn1.CONTEXT, 0))
                self.encrypted.append((pbe, ciphertext))
        else:
            raise asn1.Asn1Error(f"AuthenticatedSafe holds unsupported content {kind}")

    def safe_contents(self, contents: asn1.Element) -> None:
        """SafeContents ::= SEQUENCE OF SafeBag { bagId OID, bagValue [0] EXPLICIT, bagAttributes SET OPTIONAL }"""
        for bag in contents.sequence(what="SafeContents"):
            fields = bag.sequence(minimum=2, maximum=3, what="SafeBag")
            bag_id = fields[0].oid(what="SafeBag bagId")
            value = fields[1].explicit(0, what="SafeBag value")
            if len(fields) == 3:
                fields[2].set_of(what="SafeBag attributes")
            if bag_id == _OID_SHROUDED_KEY_BAG:
                # EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData OCTET STRING }
                algorithm, encrypted = value.sequence(minimum=2, maximum=2, what="shrouded key bag")
                encrypted.octets(what="shrouded key")
                self.encryption(algorithm, "shrouded key bag")
            elif bag_id == _OID_SAFE_CONTENTS_BAG:
                self.safe_contents(value)
            # keyBag, certBag, crlBag, secretBag and unknown bags involve no key derivation.

    def open_encrypted(self, password: str) -> None:
        """Decrypt each EncryptedData with ``password`` and walk the SafeContents inside."""
        while self.encrypted:
            pbe, ciphertext = self.encrypted.pop(0)
            for plain in _pbe_decryptions(pbe, password, ciphertext):
                try:
                    contents = asn1.parse_all(plain, self.budget)
                except _TooMuchWork:
                    raise
                except asn1.Asn1Error:
                    continue  # a wrong key whose output happened to end in valid padding
                self.safe_contents(contents)
                break
            else:
                raise _Undecryptable("EncryptedData does not open with this password")


def _check_pfx_structure(data: bytes, password: str | None = None) -> None:
    """Raise ``asn1.Asn1Error`` (``_TooMuchWork`` for over-budget files) unless ``data`` is a PKCS#12 PFX
    this walk can read whole and whose key derivations stay within ``MAX_KDF_ITERATIONS`` rounds each,
    ``MAX_SCRYPT_WORK`` for scrypt and ``MAX_KDF_WORK`` in all.

    With ``password``, EncryptedData contents are decrypted and walked too (raises ``_Undecryptable``
    when one does not open with it); without, only what is readable without the password is checked.
    """
    walk = _PfxWalk()
    walk.pfx(data)
    if password is not None:
        walk.open_encrypted(password)


# ---------------------------------------------------------------------------------------------------
# Decrypting an EncryptedData (only to see the bags inside before OpenSSL does).


def _pkcs12_kdf(secret: bytes, salt: bytes, purpose: int, iterations: int, size: int) -> bytes:
    """RFC 7292 appendix B.2 with SHA-1 (u = 20, v = 64): purpose 1 = key, 2 = IV."""

    def fill(raw: bytes) -> bytes:
        if not raw:
            return b""
        length = 64 * -(-len(raw) // 64)
        return (raw * (length // len(raw) + 1))[:length]

    block = bytearray(fill(salt) + fill(secret))
    out = b""
    while len(out) < size:
        digest = hashlib.sha1(bytes([purpose]) * 64 + bytes(block)).digest()
        for _ in range(iterations - 1):
            digest = hashlib.sha1(digest).digest()
        out += digest
        b = int.from_bytes((digest * 4)[:64], "big")
        for start in range(0, len(block), 64):
            value = (int.from_bytes(block[start : start + 64], "big") + b + 1) & ((1 << 512) - 1)
            block[start : start + 64] = value.to_bytes(64, "big")
    return out[:size]


def _pbe_secrets(password: str, kind: str) -> list[bytes]:
    """The password bytes OpenSSL may use: PKCS#12 PBEs take UTF-16BE with a terminator, and an empty
    password is tried both as "" and as "no password" (``_load`` does the same)."""
    if kind == "pkcs12":
        if not password:
            return [b"\x00\x00", b""]
        return [password.encode("utf-16-be", "surrogatepass") + b"\x00\x00"]
    return [password.encode("utf-8", "surrogatepass")]


def _pbe_decryptions(pbe: _Pbe, password: str, ciphertext: bytes) -> Iterator[bytes]:
    """Each plaintext of ``ciphertext`` (padding removed) that a form of ``password`` gives."""
    for secret in _pbe_secrets(password, pbe.kind):
        if pbe.kind == "pkcs12":
            key = _pkcs12_kdf(secret, pbe.salt, 1, pbe.iterations, pbe.key_size)
            iv = _pkcs12_kdf(secret, pbe.salt, 2, pbe.iterations, 8) if pbe.cipher != "rc4" else b""
        elif pbe.kind == "pbes1":
            if pbe.digest not in ("md5", "sha1"):
                raise _Undecryptable("MD2-based PBES1 is not supported here")
            chain = hashlib.new(pbe.digest, secret + pbe.salt).digest()
            for _ in range(pbe.iterations - 1):
                chain = hashlib.new(pbe.digest, chain).digest()
            key, iv = chain[:8], chain[8:16]
        elif pbe.kind == "pbkdf2":
            key = hashlib.pbkdf2_hmac(pbe.digest, secret, pbe.salt, pbe.iterations, pbe.key_size)
            iv = pbe.iv
        else:
            n, r, p = pbe.scrypt
            key = hashlib.scrypt(secret, salt=pbe.salt, n=n, r=r, p=p, maxmem=2 * MAX_SCRYPT_MEMORY,
                                 dklen=pbe.key_size)
            iv = pbe.iv
        plain = _cipher_decrypt(pbe.cipher, key, iv, ciphertext)
        if plain is not None:
            yield plain


def _cipher_decrypt(cipher: str, key: bytes, iv: bytes, data: bytes) -> bytes | None:
    """CBC (or RC4) decryption with PKCS#7 padding removed; None when the padding is wrong."""
    if cipher == "rc4":
        decryptor = Cipher(ARC4(key), mode=None).decryptor()
        return decryptor.update(data) + decryptor.finalize()
    size = 16 if cipher == "aes" else 8
    if not data or len(data) % size or len(iv) != size:
        return None
    if cipher == "rc2":
        plain = _rc2_cbc_decrypt(key, iv, data)
    else:
        algorithm = AES(key) if cipher == "aes" else TripleDES(key * 3 if cipher == "des" else key)
        decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= size or plain[-pad:] != bytes([pad]) * pad:
        return None
    return plain[:-pad]


# RFC 2268's PITABLE. RC2 with 40 effective key bits is what Chilean CAs encrypt certificates with, and
# ``cryptography`` offers RC2 only with 128-bit keys.
_RC2_PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2179a59f587b34f1361456d8d09817d32"
    "bd8f40eb86b77b0bf09521225c6b4e8254d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed708e8eade8052eef784aa72ac354d6a2a"
    "961ad2715a1549744b9fd05e0418a4ecc2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a90d38341bab33ffb0bb480c5fb9b1cd2e"
    "c5f3db47e5a59c770aa62068fe7fc1ad"
)


def _rc2_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """RC2-CBC (RFC 2268) with effective key bits = 8 × len(key), as OpenSSL's rc2-40/rc2-128-cbc."""
    bits = 8 * len(key)
    expanded = bytearray(128)
    expanded[: len(key)] = key
    for i in range(len(key), 128):
        expanded[i] = _RC2_PITABLE[(expanded[i - 1] + expanded[i - len(key)]) & 0xFF]
    t8, tm = (bits + 7) // 8, 0xFF >> (-bits & 7)
    expanded[128 - t8] = _RC2_PITABLE[expanded[128 - t8] & tm]
    for i in range(127 - t8, -1, -1):
        expanded[i] = _RC2_PITABLE[expanded[i + 1] ^ expanded[i + t8]]
    k = [expanded[2 * i] | (expanded[2 * i + 1] << 8) for i in range(64)]
    out = bytearray()
    previous = iv
    for start in range(0, len(data), 8):
        block = data[start : start + 8]
        r = [block[2 * i] | (block[2 * i + 1] << 8) for i in range(4)]
        j = 63
        for round_ in range(16):
            for i in (3, 2, 1, 0):
                shift = (1, 2, 3, 5)[i]
                r[i] = ((r[i] << (16 - shift)) | (r[i] >> shift)) & 0xFFFF
                r[i] = (r[i] - k[j] - (r[(i - 1) % 4] & r[(i - 2) % 4]) - (~r[(i - 1) % 4] & r[(i - 3) % 4])) & 0xFFFF
                j -= 1
            if round_ in (4, 10):
                for i in (3, 2, 1, 0):
                    r[i] = (r[i] - k[r[(i - 1) % 4] & 63]) & 0xFFFF
        plain = b"".join(word.to_bytes(2, "little") for word in r)
        out += bytes(a ^ b for a, b in zip(plain, previous))
        previous = block
    return bytes(out)


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


def _load_failure(detail: str) -> CertificateError:
    """The refusal for a file that does not open with the password given."""
    # With legacy providers disabled, RC2-40 files fail with the same "Invalid password or PKCS12
    # data" as a wrong password: blame the server configuration, not the user.
    if os.environ.get("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", "").strip() not in ("", "0"):
        return CertificateError(
            "legacy_disabled",
            detail="CRYPTOGRAPHY_OPENSSL_NO_LEGACY is set: legacy PKCS#12 (RC2-40) cannot be opened; "
            "unset it on this host",
        )
    return CertificateError("wrong_password", detail=detail)


def open_pkcs12(
    data: bytes,
    password: str,
    *,
    now: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> CertificateBundle:
    """Open a .pfx/.p12 and return the holder's RUT, validity and PEM material as a ``CertificateBundle``.

    Refuses (``CertificateError`` with one of ``CERTIFICATE_ERROR_CODES``) files that are empty, too
    large, not PKCS#12 (also: asking for more key-derivation work than real files, see
    ``_check_pfx_structure``), locked with another password, without key or certificate, expired or not yet
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
        # Everything readable without the password first: a hostile file is refused before any work.
        _check_pfx_structure(data)
    except asn1.Asn1Error as exc:
        raise CertificateError("not_pkcs12", detail=f"not a PFX: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - fail closed: a file the check cannot finish never reaches OpenSSL
        raise CertificateError("not_pkcs12", detail=f"structure check failed: {type(exc).__name__}") from None

    if "\x00" in password:
        # No real password holds a NUL byte, and cryptography's Rust layer panics on one (a
        # BaseException that would escape the handler below).
        raise CertificateError("wrong_password", detail="password contains a NUL byte")
    try:
        # Then the bags inside each EncryptedData, which OpenSSL would derive keys for as well.
        _check_pfx_structure(data, password)
    except asn1.Asn1Error as exc:
        raise CertificateError("not_pkcs12", detail=f"not a PFX: {exc}") from None
    except _Undecryptable as exc:
        raise _load_failure(f"{exc}") from None
    except Exception as exc:  # noqa: BLE001 - fail closed: a file the check cannot finish never reaches OpenSSL
        raise CertificateError("not_pkcs12", detail=f"structure check failed: {type(exc).__name__}") from None
    try:
        loaded = _load(data, password)
    except Exception as exc:  # noqa: BLE001 - cryptography raises ValueError/TypeError/UnsupportedAlgorithm
        raise _load_failure(f"load_pkcs12 failed: {type(exc).__name__}") from None

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

    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
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
