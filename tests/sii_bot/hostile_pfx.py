"""Re-encodes and re-assembles PKCS#12 files for the key-derivation-budget tests, independently of
``sii_bot.asn1``: BER re-encodings (indefinite lengths, long-form lengths, constructed OCTET STRINGs)
of honest files that still open, and hostile files asking for more key-derivation work than allowed.

Only test code: it knows just enough of PKCS#12 (RFC 7292) to rebuild a file and recompute its MAC
(HMAC-SHA1 with the PKCS#12 key derivation) and to encrypt a SafeContents (pbeWithSHAAnd3-KeyTripleDES).
"""
from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

OID_DATA = bytes.fromhex("2a864886f70d010701")
OID_ENCRYPTED_DATA = bytes.fromhex("2a864886f70d010706")
OID_SHA1 = bytes.fromhex("2b0e03021a")
OID_PBE_SHA1_3DES = bytes.fromhex("2a864886f70d010c0103")
OID_SHROUDED_KEY_BAG = bytes.fromhex("2a864886f70d010c0a0102")
OID_SAFE_CONTENTS_BAG = bytes.fromhex("2a864886f70d010c0a0106")
OID_PBES2 = bytes.fromhex("2a864886f70d01050d")
OID_PBKDF2 = bytes.fromhex("2a864886f70d01050c")
OID_PBMAC1 = bytes.fromhex("2a864886f70d01050e")
OID_SCRYPT = bytes.fromhex("2b06010401da47040b")
OID_PBE_MD5_DES = bytes.fromhex("2a864886f70d010503")  # PKCS#5 PBES1 pbeWithMD5AndDES-CBC
OID_HMAC_SHA256 = bytes.fromhex("2a864886f70d0209")
OID_AES256_CBC = bytes.fromhex("60864801650304012a")


# --- A DER tree and its BER re-encodings -------------------------------------------------------------


@dataclass
class Node:
    tag: int
    value: bytes = b""  # primitive content
    children: list[Node] | None = None  # constructed content

    @property
    def constructed(self) -> bool:
        return self.children is not None


def parse_der(data: bytes) -> Node:
    """A DER (definite-length, low-tag) element as a tree; OCTET STRINGs stay opaque."""
    node, end = _parse(data, 0)
    assert end == len(data), "trailing bytes"
    return node


def _parse(data: bytes, pos: int) -> tuple[Node, int]:
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        count = first & 0x7F
        assert count and first != 0x80, "DER only"
        start, length = pos + 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
    end = start + length
    if not tag & 0x20:
        return Node(tag, data[start:end]), end
    children, at = [], start
    while at < end:
        child, at = _parse(data, at)
        children.append(child)
    return Node(tag, children=children), end


def length_bytes(n: int, style: str) -> bytes:
    """A definite length: minimal DER, or ``long`` (always long form, with two leading zero bytes)."""
    if style == "long":
        return b"\x86" + n.to_bytes(6, "big")
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length_bytes(len(content), "der") + content


def encode(node: Node, style: str = "der", *, chunk: int = 0) -> bytes:
    """``node`` in ``der``, ``long`` (long-form lengths everywhere) or ``indefinite`` (constructed elements
    with indefinite lengths) encoding; ``chunk`` > 0 also splits OCTET STRINGs into constructed ones."""
    if not node.constructed:
        if chunk and node.tag == 0x04 and len(node.value) > chunk:
            parts = [Node(0x04, node.value[i : i + chunk]) for i in range(0, len(node.value), chunk)]
            return encode(Node(0x24, children=parts), style, chunk=chunk)
        return bytes([node.tag]) + length_bytes(len(node.value), style) + node.value
    body = b"".join(encode(child, style, chunk=chunk) for child in node.children or [])
    if style == "indefinite":
        return bytes([node.tag]) + b"\x80" + body + b"\x00\x00"
    return bytes([node.tag]) + length_bytes(len(body), style) + body


def reencode_outer(pfx: bytes, style: str, *, chunk: int = 0) -> bytes:
    """The PFX envelope (PFX, authSafe ContentInfo, MacData) in another encoding; the authSafe's
    octets (which the MAC covers) are unchanged, so an honest file still opens."""
    return encode(parse_der(pfx), style, chunk=chunk)


# --- Taking a PFX apart and putting it back together with a fresh MAC --------------------------------


@dataclass
class Pfx:
    content_infos: list[Node]  # the AuthenticatedSafe's ContentInfos
    mac_iterations: int


def split(pfx: bytes) -> Pfx:
    root = parse_der(pfx)
    auth_safe = root.children[1]  # type: ignore[index]
    octets = auth_safe.children[1].children[0].value  # type: ignore[index]
    mac = root.children[2].children  # type: ignore[index]
    iterations = int.from_bytes(mac[2].value, "big") if len(mac) > 2 else 1
    return Pfx(parse_der(octets).children or [], iterations)


def _fill(raw: bytes, v: int) -> bytes:
    """``raw`` repeated to fill whole ``v``-byte blocks (empty stays empty)."""
    if not raw:
        return b""
    size = v * ((len(raw) + v - 1) // v)
    return (raw * (size // len(raw) + 1))[:size]


def pkcs12_kdf(password: str, salt: bytes, purpose: int, iterations: int, size: int) -> bytes:
    """RFC 7292 appendix B with SHA-1: purpose 1 = key, 2 = IV, 3 = MAC key."""
    v, u = 64, 20
    secret = (password.encode("utf-16-be") + b"\x00\x00") if password else b""
    d = bytes([purpose]) * v
    i = bytearray(_fill(salt, v) + _fill(secret, v))
    out = b""
    while len(out) < size:
        a = hashlib.sha1(d + bytes(i)).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha1(a).digest()
        out += a
        b = int.from_bytes((a * (v // u + 1))[:v], "big")
        for start in range(0, len(i), v):
            block = (int.from_bytes(i[start : start + v], "big") + b + 1) % (1 << (8 * v))
            i[start : start + v] = block.to_bytes(v, "big")
    return out[:size]


def assemble(
    content_infos: list[bytes], password: str, *, mac_iterations: int = 2048, mac_field: int | None = None,
    mac_algorithm: bytes | None = None, auth_safe: bytes | None = None,
) -> bytes:
    """A DER PFX of these ContentInfos with a valid HMAC-SHA1 MAC over ``mac_iterations`` rounds.

    ``mac_field`` writes another count in the file (the MAC then no longer verifies); ``mac_algorithm``
    replaces the DigestInfo's AlgorithmIdentifier (e.g. PBMAC1); ``auth_safe`` gives the encoded
    AuthenticatedSafe itself (e.g. in BER) instead of the DER SEQUENCE of ``content_infos``."""
    auth_safe = auth_safe if auth_safe is not None else tlv(0x30, b"".join(content_infos))
    salt = os.urandom(8)
    key = pkcs12_kdf(password, salt, 3, mac_iterations, 20)
    digest = hmac.new(key, auth_safe, "sha1").digest()
    algorithm = mac_algorithm or tlv(0x30, tlv(0x06, OID_SHA1) + b"\x05\x00")
    count = mac_field if mac_field is not None else mac_iterations
    mac_data = tlv(0x30, tlv(0x30, algorithm + tlv(0x04, digest)) + tlv(0x04, salt) + integer(count))
    content = tlv(0x30, tlv(0x06, OID_DATA) + tlv(0xA0, tlv(0x04, auth_safe)))
    return tlv(0x30, integer(3) + content + mac_data)


def integer(n: int) -> bytes:
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def data_content_info(safe_contents: bytes) -> bytes:
    return tlv(0x30, tlv(0x06, OID_DATA) + tlv(0xA0, tlv(0x04, safe_contents)))


def pbe_3des(salt: bytes, iterations: int) -> bytes:
    return tlv(0x30, tlv(0x06, OID_PBE_SHA1_3DES) + tlv(0x30, tlv(0x04, salt) + integer(iterations)))


def encrypted_content_info(plain: bytes, password: str, *, iterations: int = 2048,
                           algorithm: bytes | None = None) -> bytes:
    """An EncryptedData ContentInfo holding ``plain`` under pbeWithSHAAnd3-KeyTripleDES-CBC.

    ``algorithm`` writes another AlgorithmIdentifier in the file (the content then no longer decrypts)."""
    salt = os.urandom(8)
    key = pkcs12_kdf(password, salt, 1, iterations, 24)
    iv = pkcs12_kdf(password, salt, 2, iterations, 8)
    padder = padding.PKCS7(64).padder()
    encryptor = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    content = tlv(0x06, OID_DATA) + (algorithm or pbe_3des(salt, iterations)) + tlv(0x80, ciphertext)
    encrypted = tlv(0x30, integer(0) + tlv(0x30, content))
    return tlv(0x30, tlv(0x06, OID_ENCRYPTED_DATA) + tlv(0xA0, encrypted))


def plain_safe_contents(info: Node) -> bytes:
    """The SafeContents DER inside a data ContentInfo."""
    assert info.children and info.children[0].value == OID_DATA
    return info.children[1].children[0].value  # type: ignore[index]


def replace_integer(der: bytes, old: int, new: int) -> bytes:
    """``der`` with its only INTEGER ``old`` replaced by ``new`` (lengths of its ancestors re-encoded)."""
    found: list[Node] = []

    def visit(node: Node) -> None:
        if node.tag == 0x02 and int.from_bytes(node.value, "big") == old:
            found.append(node)
        for child in node.children or []:
            visit(child)

    tree = parse_der(der)
    visit(tree)
    assert len(found) == 1, f"{len(found)} INTEGERs {old}"
    found[0].value = new.to_bytes(new.bit_length() // 8 + 1, "big")
    return encode(tree)


def map_tree(der: bytes, change: Callable[[Node], None]) -> bytes:
    tree = parse_der(der)
    change(tree)
    return encode(tree)


# --- AlgorithmIdentifiers and bags for hostile files ---------------------------------------------------


def pkcs12_pbe(iterations: int) -> bytes:
    """pbeWithSHAAnd3-KeyTripleDES-CBC with ``iterations`` rounds."""
    return pbe_3des(os.urandom(8), iterations)


def pbes1(iterations: int) -> bytes:
    """PKCS#5 PBES1 pbeWithMD5AndDES-CBC with ``iterations`` rounds."""
    return tlv(0x30, tlv(0x06, OID_PBE_MD5_DES) + tlv(0x30, tlv(0x04, os.urandom(8)) + integer(iterations)))


def pbkdf2(iterations: int, *, key_length: int | None = None) -> bytes:
    """PBKDF2 with hmacWithSHA256 as a key-derivation AlgorithmIdentifier."""
    params = tlv(0x04, os.urandom(16)) + integer(iterations)
    if key_length is not None:
        params += integer(key_length)
    params += tlv(0x30, tlv(0x06, OID_HMAC_SHA256) + b"\x05\x00")
    return tlv(0x30, tlv(0x06, OID_PBKDF2) + tlv(0x30, params))


def scrypt(n: int, r: int, p: int) -> bytes:
    params = tlv(0x04, os.urandom(16)) + integer(n) + integer(r) + integer(p)
    return tlv(0x30, tlv(0x06, OID_SCRYPT) + tlv(0x30, params))


def pbes2(kdf: bytes) -> bytes:
    """PBES2 with ``kdf`` and AES-256-CBC."""
    scheme = tlv(0x30, tlv(0x06, OID_AES256_CBC) + tlv(0x04, os.urandom(16)))
    return tlv(0x30, tlv(0x06, OID_PBES2) + tlv(0x30, kdf + scheme))


def pbmac1(iterations: int) -> bytes:
    """A PBMAC1 (RFC 9579) MAC AlgorithmIdentifier whose PBKDF2 asks for ``iterations`` rounds."""
    scheme = tlv(0x30, tlv(0x06, OID_HMAC_SHA256) + b"\x05\x00")
    return tlv(0x30, tlv(0x06, OID_PBMAC1) + tlv(0x30, pbkdf2(iterations, key_length=32) + scheme))


def shrouded_bag(algorithm: bytes) -> bytes:
    """A pkcs8ShroudedKeyBag encrypted with ``algorithm`` (its ciphertext is random: it never decrypts)."""
    value = tlv(0x30, algorithm + tlv(0x04, os.urandom(64)))
    return tlv(0x30, tlv(0x06, OID_SHROUDED_KEY_BAG) + tlv(0xA0, value))


def safe_contents(*bags: bytes) -> bytes:
    return tlv(0x30, b"".join(bags))
