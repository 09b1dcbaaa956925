"""The test PKI: every variant is what the manifest says it is."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from sii_sandbox.pki import CLIENT_NAMES, PASSWORD, RUT_OID, ensure_pki, load_pki, rut_from_certificate
from sii_sandbox.rut import is_person


def _load(path: Path, password: str = PASSWORD) -> tuple[object, x509.Certificate, list[x509.Certificate]]:
    key, cert, chain = pkcs12.load_key_and_certificates(path.read_bytes(), password.encode())
    assert cert is not None
    return key, cert, chain


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_manifest_lists_every_variant(sandbox_pki_dir: Path) -> None:
    manifest = json.loads((sandbox_pki_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == set(CLIENT_NAMES)
    pki = load_pki(sandbox_pki_dir)
    for name in pki.names():
        f = pki[name]
        assert f.path.is_file(), name
        assert f.description and f.kind in ("pkcs12", "pem", "garbage")
    assert pki.demo is pki["demo"]
    assert pki["demo"].password == "demo1234"


def test_demo_pfx_like_a_chilean_certificate(sandbox_pki_dir: Path) -> None:
    pki = load_pki(sandbox_pki_dir)
    key, cert, chain = _load(pki["demo"].path)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    others = [o for o in san.get_values_for_type(x509.OtherName) if o.type_id == RUT_OID]
    # DER IA5String: tag 0x16, length, text.
    assert others[0].value == b"\x16\x0a10345678-9"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "MARIA JOSE SOTO PEREZ"
    # Chain included: issuing intermediate and root, and the leaf is signed by the intermediate.
    assert len(chain) == 2
    assert cert.issuer == chain[0].subject
    cert.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])
    assert cert.not_valid_before_utc < _now() < cert.not_valid_after_utc


def test_pfx_uses_legacy_3des_encryption(sandbox_pki_dir: Path) -> None:
    pki = load_pki(sandbox_pki_dir)
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(pki["demo"].path.read_bytes(), b"wrong-password")
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    out = subprocess.run(
        ["openssl", "pkcs12", "-info", "-noout", "-legacy", "-in", str(pki["demo"].path),
         "-passin", f"pass:{PASSWORD}"],
        capture_output=True, text=True, check=True,
    )
    text = out.stdout + out.stderr
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in text
    assert "MAC: sha1" in text
    assert "AES" not in text


def test_variants_have_what_they_claim(sandbox_pki_dir: Path) -> None:
    pki = load_pki(sandbox_pki_dir)
    ca = x509.load_pem_x509_certificates(pki.ca_bundle.read_bytes())
    trusted = {c.subject for c in ca}
    now = _now()

    _, expired, _ = _load(pki["expired"].path)
    assert expired.not_valid_after_utc < now

    _, future, _ = _load(pki["not_yet_valid"].path)
    assert future.not_valid_before_utc > now

    _, unknown, unknown_chain = _load(pki["unknown_ca"].path)
    assert unknown.issuer not in trusted
    assert all(c.subject not in trusted for c in unknown_chain)

    _, serial_only, _ = _load(pki["serial_only"].path)
    assert rut_from_certificate(serial_only) == ("10345678-9", "subject_serial_number")
    san = serial_only.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert not san.get_values_for_type(x509.OtherName)

    _, no_rut, _ = _load(pki["no_rut"].path)
    assert rut_from_certificate(no_rut) == (None, None)
    assert pki["no_rut"].holder_rut is None

    _, lower_k, _ = _load(pki["lowercase_k"].path)
    assert rut_from_certificate(lower_k) == ("15000005-k", "san_othername")
    assert pki["lowercase_k"].holder_rut == "15000005-K"

    _, company, _ = _load(pki["company_holder"].path)
    rut_text, _ = rut_from_certificate(company)
    assert rut_text is not None and rut_text == pki["company_holder"].holder_rut and not is_person(rut_text)

    _, admin2, _ = _load(pki["admin2"].path)
    assert rut_from_certificate(admin2)[0] == "12531909-2"


def test_pem_and_garbage_are_not_pkcs12(sandbox_pki_dir: Path) -> None:
    pki = load_pki(sandbox_pki_dir)
    pem = pki["pem"].path.read_bytes()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificates(pem)[0].subject.rfc4514_string().find("MARIA JOSE SOTO") >= 0
    assert serialization.load_pem_private_key(pem, password=None) is not None
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(pem, PASSWORD.encode())
    garbage = pki["garbage"].path.read_bytes()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(garbage, PASSWORD.encode())
    assert b"-----BEGIN" not in garbage


def test_pem_exports_match_the_pfx(sandbox_pki_dir: Path) -> None:
    pki = load_pki(sandbox_pki_dir)
    for name in ("demo", "admin2", "serial_only", "lowercase_k"):
        _, cert, _ = _load(pki[name].path)
        cert_pem = pki[name].cert_pem
        assert cert_pem is not None
        leaf = x509.load_pem_x509_certificates(cert_pem.read_bytes())[0]
        assert leaf == cert


def test_ensure_pki_reuses_a_complete_directory(sandbox_pki_dir: Path, tmp_path: Path) -> None:
    before = (sandbox_pki_dir / "clients" / "demo.pfx").read_bytes()
    again = ensure_pki(sandbox_pki_dir)
    assert again.demo.path.read_bytes() == before  # not regenerated

    # An incomplete directory is regenerated.
    copy = tmp_path / "pki"
    shutil.copytree(sandbox_pki_dir, copy)
    (copy / "clients" / "expired.pfx").unlink()
    regenerated = ensure_pki(copy)
    assert regenerated["expired"].path.is_file()
    assert regenerated.demo.path.read_bytes() != before
