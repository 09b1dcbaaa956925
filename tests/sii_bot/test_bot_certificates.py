"""Tests for sii_bot.certificates.open_pkcs12: every refusal code, RUT sources, redaction."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sii_bot.certificates import (
    CERTIFICATE_ERROR_CODES,
    CertificateBundle,
    CertificateError,
    CertificateMaterial,
    open_pkcs12,
)

from tests.sii_bot.bot_pfx_factory import NOW, CertSpec, make_pfx, make_rc2_pfx


def refusal(data: bytes, password: str = "secreto", **kwargs: object) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        open_pkcs12(data, password, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert info.value.code in CERTIFICATE_ERROR_CODES
    assert info.value.message == CERTIFICATE_ERROR_CODES[info.value.code]
    return info.value


@pytest.fixture(scope="module")
def good_pfx() -> bytes:
    return make_pfx()


def test_legacy_3des_with_rut_in_san(good_pfx: bytes) -> None:
    bundle = open_pkcs12(good_pfx, "secreto", now=NOW)
    assert isinstance(bundle, CertificateBundle)
    assert bundle.holder_rut == "13322924-8"
    assert bundle.holder_name == "JUAN PEREZ SOTO"
    assert bundle.issuer == "Test CA Firma Electronica (Acreditadora de Prueba S.A.)"
    assert bundle.not_before.tzinfo is not None and bundle.not_after.utcoffset() == timedelta(0)
    assert bundle.serial_number == "1234ABCD"
    assert len(bundle.fingerprint_sha256.split(":")) == 32
    assert bundle.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert bundle.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert bundle.chain_pem.count(b"BEGIN CERTIFICATE") == 1
    material = bundle.material
    assert isinstance(material, CertificateMaterial)
    assert material.full_chain_pem.count(b"BEGIN CERTIFICATE") == 2


def test_modern_aes_pfx() -> None:
    bundle = open_pkcs12(make_pfx(legacy=False), "secreto", now=NOW)
    assert bundle.holder_rut == "13322924-8"


def test_rc2_40_legacy_pfx() -> None:
    data = make_rc2_pfx()
    if data is None:
        pytest.skip("openssl CLI cannot produce RC2-40 here")
    assert open_pkcs12(data, "secreto", now=NOW).holder_rut == "13322924-8"


def test_rc2_with_legacy_disabled_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_rc2_pfx()
    if data is None:
        pytest.skip("openssl CLI cannot produce RC2-40 here")
    monkeypatch.setenv("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", "1")
    # cryptography decides at import whether to load the legacy provider, so in this process RC2 may
    # still open; the mapping is what we check when it does fail.
    try:
        open_pkcs12(data, "secreto", now=NOW)
    except CertificateError as exc:
        assert exc.code == "legacy_disabled"


def test_legacy_disabled_maps_load_failure(monkeypatch: pytest.MonkeyPatch, good_pfx: bytes) -> None:
    monkeypatch.setenv("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", "1")
    assert refusal(good_pfx, "otra").code == "legacy_disabled"


def test_ec_key() -> None:
    assert open_pkcs12(make_pfx(CertSpec(key_kind="ec")), "secreto", now=NOW).holder_rut == "13322924-8"


def test_empty_password() -> None:
    assert open_pkcs12(make_pfx(password=""), "", now=NOW).holder_rut == "13322924-8"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (CertSpec(san_rut=None, serial_rut="13322924-8"), "13322924-8"),
        (CertSpec(san_rut=None, serial_rut="RUT:13.322.924-8"), "13322924-8"),
        (CertSpec(san_rut=None, serial_rut="133229248"), "13322924-8"),
        (CertSpec(san_rut=None, ou="RUT = 13322924-8"), "13322924-8"),
        (CertSpec(san_rut="7880442-4"), "7880442-4"),
        (CertSpec(san_rut="10000013-k"), "10000013-K"),  # lower-case k normalized
        (CertSpec(san_rut=None, serial_rut="10000013-k"), "10000013-K"),
        # SAN wins over the other fields.
        (CertSpec(san_rut="7880442-4", serial_rut="13322924-8"), "7880442-4"),
    ],
)
def test_rut_sources(spec: CertSpec, expected: str) -> None:
    assert open_pkcs12(make_pfx(spec), "secreto", now=NOW).holder_rut == expected


def test_san_value_is_der_decoded_not_raw() -> None:
    # A DNS name next to the otherName must not confuse the extraction.
    spec = CertSpec(extra_san=[x509.RFC822Name("juan@example.cl")])
    assert open_pkcs12(make_pfx(spec), "secreto", now=NOW).holder_rut == "13322924-8"


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        (CertSpec(san_rut=None), "no_rut"),
        (CertSpec(san_rut="13322924-9"), "invalid_rut"),
        (CertSpec(san_rut="96874030-K"), "not_a_person"),
        (CertSpec(san_rut=None, serial_rut="76086428-5"), "not_a_person"),
        (CertSpec(not_after=NOW - timedelta(days=1)), "expired"),
        (CertSpec(not_before=NOW + timedelta(days=1)), "not_yet_valid"),
    ],
)
def test_certificate_refusals(spec: CertSpec, code: str) -> None:
    assert refusal(make_pfx(spec)).code == code


def test_wrong_password(good_pfx: bytes) -> None:
    error = refusal(good_pfx, "incorrecta")
    assert error.code == "wrong_password"
    assert "contraseña" in error.message


def test_no_private_key() -> None:
    assert refusal(make_pfx(with_key=False)).code == "no_private_key"


def test_no_certificate() -> None:
    assert refusal(make_pfx(with_cert=False, with_chain=False)).code == "no_certificate"


def test_key_without_its_certificate_but_with_other_certs() -> None:
    assert refusal(make_pfx(with_cert=False)).code == "key_mismatch"


def test_pem_is_not_pkcs12(good_pfx: bytes) -> None:
    bundle = open_pkcs12(good_pfx, "secreto", now=NOW)
    assert refusal(bundle.cert_pem + bundle.key_pem).code == "not_pkcs12"


@pytest.mark.parametrize("data", [b"hello world", b"\x30\x03\x02\x01\x05", b"\x00" * 100, b"PK\x03\x04zip"])
def test_garbage_is_not_pkcs12(data: bytes) -> None:
    assert refusal(data).code == "not_pkcs12"


def test_truncated_is_not_pkcs12(good_pfx: bytes) -> None:
    for cut in (len(good_pfx) // 2, len(good_pfx) - 1, 10):
        assert refusal(good_pfx[:cut]).code == "not_pkcs12"


def test_der_certificate_is_not_pkcs12(good_pfx: bytes) -> None:
    cert = pkcs12.load_pkcs12(good_pfx, b"secreto").cert
    assert cert is not None
    assert refusal(cert.certificate.public_bytes(serialization.Encoding.DER)).code == "not_pkcs12"


def test_empty_and_too_large(good_pfx: bytes) -> None:
    assert refusal(b"").code == "empty"
    assert refusal(b"\x30" * (64 * 1024 + 1)).code == "too_large"
    assert refusal(good_pfx, max_bytes=100).code == "too_large"


def test_repr_never_shows_key(good_pfx: bytes) -> None:
    bundle = open_pkcs12(good_pfx, "secreto", now=NOW)
    key_body = bundle.key_pem.split(b"\n")[1].decode()
    for text in (repr(bundle), str(bundle), repr(bundle.material), str(bundle.material)):
        assert key_body not in text
        assert "PRIVATE KEY" not in text
        assert "redacted" in text


def test_error_messages_are_spanish_and_distinct() -> None:
    messages = list(CERTIFICATE_ERROR_CODES.values())
    assert len(set(messages)) == len(messages)
    for code in ("too_large", "empty", "not_pkcs12", "wrong_password", "no_private_key", "no_certificate",
                 "expired", "not_yet_valid", "no_rut", "invalid_rut", "not_a_person", "legacy_disabled"):
        assert code in CERTIFICATE_ERROR_CODES


def test_parse_is_fast(good_pfx: bytes) -> None:
    start = time.perf_counter()
    open_pkcs12(good_pfx, "secreto", now=NOW)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048), st.text(max_size=20))
def test_random_bytes_only_raise_certificate_error(data: bytes, password: str) -> None:
    try:
        open_pkcs12(data, password, now=NOW)
    except CertificateError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mutated_pfx_only_raise_certificate_error(data: st.DataObject) -> None:
    original = bytearray(_PFX_FOR_FUZZ)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    try:
        open_pkcs12(bytes(original), "secreto", now=NOW)
    except CertificateError:
        pass


_PFX_FOR_FUZZ = make_pfx()
