"""Envelope encryption: round trips, binding to tenant/record/purpose, rotation, key parsing."""
from __future__ import annotations

import base64

import pytest
from django.core.exceptions import ImproperlyConfigured

from onboarding import crypto

KEY_A = base64.b64encode(b"\x01" * 32).decode()
KEY_B = base64.b64encode(b"\x02" * 32).decode()


def ring(spec: str) -> crypto.Keyring:
    return crypto.parse_keyring(spec)


def context(tenant: int = 1, record: str = "r1", purpose: str = "certificate") -> bytes:
    return crypto.record_context(purpose=purpose, tenant_id=tenant, record_id=record)


def test_round_trip_returns_a_wipeable_buffer() -> None:
    keys = ring(f"a:{KEY_A}")
    sealed = crypto.seal(b"-----BEGIN PRIVATE KEY-----secret", context=context(), keyring=keys)
    assert b"secret" not in sealed.ciphertext and b"secret" not in sealed.wrapped_key
    plain = crypto.open_sealed(sealed, context=context(), keyring=keys)
    assert bytes(plain) == b"-----BEGIN PRIVATE KEY-----secret"
    crypto.wipe(plain)
    assert set(plain) == {0}


def test_each_record_gets_its_own_data_key_and_nonce() -> None:
    keys = ring(f"a:{KEY_A}")
    first = crypto.seal(b"same", context=context(), keyring=keys)
    second = crypto.seal(b"same", context=context(), keyring=keys)
    assert first.ciphertext != second.ciphertext and first.wrapped_key != second.wrapped_key


@pytest.mark.parametrize(
    "other",
    [context(tenant=2), context(record="r2"), context(purpose="artifact")],
    ids=["other-tenant", "other-record", "other-purpose"],
)
def test_a_copied_ciphertext_does_not_open_elsewhere(other: bytes) -> None:
    keys = ring(f"a:{KEY_A}")
    sealed = crypto.seal(b"key material", context=context(), keyring=keys)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(sealed, context=other, keyring=keys)


def test_tampering_is_detected() -> None:
    keys = ring(f"a:{KEY_A}")
    sealed = crypto.seal(b"key material", context=context(), keyring=keys)
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(crypto.Sealed(sealed.key_id, sealed.wrapped_key, bytes(flipped)), context=context(), keyring=keys)


def test_wrong_or_missing_master_key_fails() -> None:
    sealed = crypto.seal(b"x", context=context(), keyring=ring(f"a:{KEY_A}"))
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(sealed, context=context(), keyring=ring(f"a:{KEY_B}"))
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(sealed, context=context(), keyring=ring(f"b:{KEY_B}"))


def test_rotation_rewraps_with_the_active_key_and_keeps_the_payload() -> None:
    old = ring(f"a:{KEY_A}")
    sealed = crypto.seal(b"payload", context=context(), keyring=old)
    rotated = ring(f"b:{KEY_B},a:{KEY_A}")  # b is active now, a still opens old records
    assert bytes(crypto.open_sealed(sealed, context=context(), keyring=rotated)) == b"payload"
    fresh = crypto.rewrap(sealed, context=context(), keyring=rotated)
    assert fresh.key_id == "b" and fresh.ciphertext == sealed.ciphertext
    assert bytes(crypto.open_sealed(fresh, context=context(), keyring=ring(f"b:{KEY_B}"))) == b"payload"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ("nokey", "id:base64key"),
        ("a:not-base64!", "not valid base64"),
        ("a:" + base64.b64encode(b"short").decode(), "32 bytes"),
        (f"a:{KEY_A},a:{KEY_B}", "appears twice"),
        (f"bad id:{KEY_A}", "id:base64key"),
    ],
)
def test_malformed_master_keys_fail_loudly(spec: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        crypto.parse_keyring(spec)


def test_repr_never_shows_key_bytes() -> None:
    keys = ring(f"a:{KEY_A}")
    assert KEY_A not in repr(keys) and "\\x01" not in repr(keys)
