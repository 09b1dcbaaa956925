"""RC2-CBC decryption (RFC 2268) with any effective key length.

RC2 with 40 effective key bits is what Chilean CAs encrypt certificates with, and ``cryptography``
offers RC2 only with 128-bit keys; the key-derivation budget (``kdf_budget``) decrypts such an
EncryptedData to see the bags inside before OpenSSL does. Pure Python: it only ever runs on the few
kilobytes of one certificate file.
"""

from __future__ import annotations

__all__ = ["PITABLE", "cbc_decrypt"]


# RFC 2268's PITABLE: the key expansion's substitution table.
PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2179a59f587b34f1361456d8d09817d32"
    "bd8f40eb86b77b0bf09521225c6b4e8254d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed708e8eade8052eef784aa72ac354d6a2a"
    "961ad2715a1549744b9fd05e0418a4ecc2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a90d38341bab33ffb0bb480c5fb9b1cd2e"
    "c5f3db47e5a59c770aa62068fe7fc1ad"
)


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """RC2-CBC (RFC 2268) with effective key bits = 8 × len(key), as OpenSSL's rc2-40/rc2-128-cbc."""
    bits = 8 * len(key)
    expanded = bytearray(128)
    expanded[: len(key)] = key
    for i in range(len(key), 128):
        expanded[i] = PITABLE[(expanded[i - 1] + expanded[i - len(key)]) & 0xFF]
    t8, tm = (bits + 7) // 8, 0xFF >> (-bits & 7)
    expanded[128 - t8] = PITABLE[expanded[128 - t8] & tm]
    for i in range(127 - t8, -1, -1):
        expanded[i] = PITABLE[expanded[i + 1] ^ expanded[i + t8]]
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

