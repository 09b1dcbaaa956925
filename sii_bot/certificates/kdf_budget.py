"""The key-derivation budget: what opening a PKCS#12 file would cost OpenSSL, found before it runs.

OpenSSL runs every key derivation a PKCS#12 file names (the MAC's, each EncryptedData's, each
shrouded key bag's) with the counts the file itself gives, in one uninterruptible call: a file whose
MAC asks for 300,000,000 rounds keeps a web process busy ~18 s before "wrong password" (2^31 rounds:
minutes). So before ``cryptography`` sees a byte, ``check_pfx_structure`` reads the whole file with a
strict BER reader (``sii_bot.asn1``: indefinite and long-form lengths and constructed strings
included, since OpenSSL accepts them), finds and prices every derivation, and refuses anything it
cannot read or price. EncryptedData is decrypted here (after pricing it) because it may hold more
shrouded key bags, which OpenSSL derives keys for too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES

from .. import asn1
from . import rc2

__all__ = [
    "MAX_KDF_ITERATIONS",
    "MAX_KDF_WORK",
    "MAX_SCRYPT_MEMORY",
    "MAX_SCRYPT_WORK",
    "Undecryptable",
    "check_pfx_structure",
]

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


class Undecryptable(Exception):
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
    """Reads one PFX (see ``check_pfx_structure``) and keeps its running key-derivation bill."""

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
                raise Undecryptable("EncryptedData does not open with this password")


def check_pfx_structure(data: bytes, password: str | None = None) -> None:
    """Raise ``asn1.Asn1Error`` (``_TooMuchWork`` for over-budget files) unless ``data`` is a PKCS#12 PFX
    this walk can read whole and whose key derivations stay within ``MAX_KDF_ITERATIONS`` rounds each,
    ``MAX_SCRYPT_WORK`` for scrypt and ``MAX_KDF_WORK`` in all.

    With ``password``, EncryptedData contents are decrypted and walked too (raises ``Undecryptable``
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
    password is tried both as "" and as "no password" (``open_pkcs12`` does the same)."""
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
                raise Undecryptable("MD2-based PBES1 is not supported here")
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
        plain = rc2.cbc_decrypt(key, iv, data)
    else:
        algorithm = AES(key) if cipher == "aes" else TripleDES(key * 3 if cipher == "des" else key)
        decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= size or plain[-pad:] != bytes([pad]) * pad:
        return None
    return plain[:-pad]
