"""Envelope encryption for certificates and screenshots (AES-256-GCM via `cryptography`).

Each record gets a fresh random data key. The payload is sealed with the data key; the data key is
sealed ("wrapped") with a master key from the environment. Both seals carry associated data that
names the tenant, the record and the purpose, so a ciphertext copied to another row, another tenant
or another purpose fails to open instead of decrypting. Master keys have ids: the first configured
key wraps new records, the others still open old ones, and `manage.py rewrap_keys` moves records to
the current key without touching the payload.

Format: wrapped_key = nonce(12) ‖ AESGCM(master).encrypt(dek, aad)
        sealed      = nonce(12) ‖ AESGCM(dek).encrypt(payload, aad)
"""
from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class DecryptionFailed(Exception):
    """The ciphertext does not open with the configured keys and this record's context.

    Raised for a tampered or copied row, a wrong master key, or a key id no longer configured.
    Deliberately says nothing about which check failed.
    """


@dataclass(frozen=True)
class Sealed:
    """What is stored: the master key id, the wrapped data key and the sealed payload."""

    key_id: str
    wrapped_key: bytes
    ciphertext: bytes

    def __repr__(self) -> str:  # ciphertext is not secret, but it is noise in logs
        return f"Sealed(key_id={self.key_id!r}, {len(self.ciphertext)} bytes)"


@dataclass(frozen=True)
class Keyring:
    """Master keys by id; `active_id` wraps new data keys."""

    keys: dict[str, bytes]
    active_id: str

    def __repr__(self) -> str:  # never print key bytes
        return f"Keyring(ids={list(self.keys)}, active={self.active_id!r})"


def parse_keyring(spec: str) -> Keyring:
    """Parse "id:base64[,id:base64…]" into a Keyring; raises ImproperlyConfigured on any defect."""
    keys: dict[str, bytes] = {}
    entries = [part.strip() for part in spec.split(",") if part.strip()]
    if not entries:
        raise ImproperlyConfigured(
            "AUTORIZA_MASTER_KEYS is empty: set it to 'id:base64key', for example with "
            "`python -c \"import base64,os; print('k1:' + base64.b64encode(os.urandom(32)).decode())\"`."
        )
    for entry in entries:
        key_id, sep, encoded = entry.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise ImproperlyConfigured(f"AUTORIZA_MASTER_KEYS: entry {len(keys) + 1} must look like 'id:base64key'.")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(f"AUTORIZA_MASTER_KEYS: key {key_id!r} is not valid base64.") from None
        if len(raw) != KEY_BYTES:
            raise ImproperlyConfigured(f"AUTORIZA_MASTER_KEYS: key {key_id!r} must be 32 bytes, not {len(raw)}.")
        if key_id in keys:
            raise ImproperlyConfigured(f"AUTORIZA_MASTER_KEYS: key id {key_id!r} appears twice.")
        keys[key_id] = raw
    return Keyring(keys=keys, active_id=entries[0].partition(":")[0])


@lru_cache(maxsize=4)
def _keyring_for(spec: str) -> Keyring:
    return parse_keyring(spec)


def get_keyring() -> Keyring:
    """The keyring from settings (parsed once per distinct value)."""
    return _keyring_for(settings.AUTORIZA_MASTER_KEYS)


def record_context(*, purpose: str, tenant_id: int, record_id: object) -> bytes:
    """Associated data that binds a ciphertext to what it belongs to."""
    return f"autoriza/v1/{purpose}/tenant={tenant_id}/record={record_id}".encode()


def seal(payload: bytes, *, context: bytes, keyring: Keyring | None = None) -> Sealed:
    """Seal `payload` with a fresh data key wrapped by the active master key."""
    ring = keyring or get_keyring()
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, payload, context)
    return Sealed(key_id=ring.active_id, wrapped_key=_wrap(data_key, ring.active_id, ring, context), ciphertext=ciphertext)


def open_sealed(sealed: Sealed, *, context: bytes, keyring: Keyring | None = None) -> bytearray:
    """Return the payload as a bytearray (so callers can zero it after use).

    Raises DecryptionFailed if the key id is unknown, the data key or payload was altered, or the
    context differs from the one it was sealed with.
    """
    ring = keyring or get_keyring()
    data_key = _unwrap(sealed, ring, context)
    try:
        nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        return bytearray(AESGCM(data_key).decrypt(nonce, body, context))
    except (InvalidTag, ValueError):
        raise DecryptionFailed("The sealed record does not open with this context.") from None


def rewrap(sealed: Sealed, *, context: bytes, keyring: Keyring | None = None) -> Sealed:
    """Return the same payload with its data key wrapped by the active master key (rotation)."""
    ring = keyring or get_keyring()
    if sealed.key_id == ring.active_id:
        return sealed
    data_key = _unwrap(sealed, ring, context)
    return Sealed(key_id=ring.active_id, wrapped_key=_wrap(data_key, ring.active_id, ring, context), ciphertext=sealed.ciphertext)


def _wrap(data_key: bytes, key_id: str, ring: Keyring, context: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(ring.keys[key_id]).encrypt(nonce, data_key, context + b"/key=" + key_id.encode())


def _unwrap(sealed: Sealed, ring: Keyring, context: bytes) -> bytes:
    master = ring.keys.get(sealed.key_id)
    if master is None:
        raise DecryptionFailed("The master key that sealed this record is not configured.")
    try:
        nonce, body = sealed.wrapped_key[:NONCE_BYTES], sealed.wrapped_key[NONCE_BYTES:]
        return AESGCM(master).decrypt(nonce, body, context + b"/key=" + sealed.key_id.encode())
    except (InvalidTag, ValueError):
        raise DecryptionFailed("The sealed record does not open with this context.") from None


def wipe(buffer: bytearray | None) -> None:
    """Overwrite a plaintext buffer in place. Best effort: Python may hold other copies briefly."""
    if buffer is not None:
        buffer[:] = b"\x00" * len(buffer)
