"""Builds test PKCS#12 files with ``cryptography`` (and ``openssl`` for RC2-40 when available)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

SII_RUT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.8321.1")
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
# Default validity covers both the fixed NOW of the unit tests and the real clock (other suites open
# these files without passing ``now``).
_REAL_NOW = datetime.now(UTC)
_VALID_FROM = min(NOW, _REAL_NOW) - timedelta(days=30)
_VALID_TO = max(NOW, _REAL_NOW) + timedelta(days=335)

_KEYS: dict[str, object] = {}


def _key(kind: str = "rsa") -> object:
    # Key generation dominates test time: reuse one key per kind.
    if kind not in _KEYS:
        _KEYS[kind] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
    return _KEYS[kind]


def ia5(text: str) -> bytes:
    raw = text.encode("ascii")
    assert len(raw) < 128
    return bytes([0x16, len(raw)]) + raw


@dataclass
class CertSpec:
    cn: str = "JUAN PEREZ SOTO"
    san_rut: str | None = "13322924-8"
    serial_rut: str | None = None
    ou: str | None = None
    not_before: datetime = _VALID_FROM
    not_after: datetime = _VALID_TO
    key_kind: str = "rsa"
    extra_san: list[x509.GeneralName] = field(default_factory=list)
    # The issuing CA's names (an accepted provider's names make an "accepted" certificate).
    issuer_cn: str = "Test CA Firma Electronica"
    issuer_org: str = "Acreditadora de Prueba S.A."


def make_ca(cn: str = "Test CA Firma Electronica", org: str = "Acreditadora de Prueba S.A.") -> tuple[object, x509.Certificate]:
    key = _key("ca-ec")
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(1000)
        .not_valid_before(NOW - timedelta(days=3650))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return key, cert


def make_cert(spec: CertSpec) -> tuple[object, x509.Certificate, x509.Certificate]:
    ca_key, ca_cert = make_ca(spec.issuer_cn, spec.issuer_org)
    key = _key(spec.key_kind)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, spec.cn), x509.NameAttribute(NameOID.COUNTRY_NAME, "CL")]
    if spec.serial_rut is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, spec.serial_rut))
    if spec.ou is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, spec.ou))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(0x1234ABCD)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
    )
    san: list[x509.GeneralName] = list(spec.extra_san)
    if spec.san_rut is not None:
        san.append(x509.OtherName(SII_RUT_OID, ia5(spec.san_rut)))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return key, cert, ca_cert


def legacy_3des(password: bytes) -> serialization.KeySerializationEncryption:
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password)
    )


def make_pfx(
    spec: CertSpec | None = None,
    password: str = "secreto",
    *,
    with_key: bool = True,
    with_cert: bool = True,
    with_chain: bool = True,
    legacy: bool = True,
) -> bytes:
    key, cert, ca = make_cert(spec or CertSpec())
    encryption: serialization.KeySerializationEncryption
    if not password:
        encryption = serialization.NoEncryption()
    elif legacy:
        encryption = legacy_3des(password.encode())
    else:
        encryption = serialization.BestAvailableEncryption(password.encode())
    return pkcs12.serialize_key_and_certificates(
        b"test",
        key if with_key else None,  # type: ignore[arg-type]
        cert if with_cert else None,
        [ca] if with_chain else None,
        encryption,
    )


def make_rc2_pfx(spec: CertSpec | None = None, password: str = "secreto") -> bytes | None:
    """RC2-40 (what Chilean CAs ship) via the openssl CLI; None when openssl cannot do it here."""
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    key, cert, ca = make_cert(spec or CertSpec())
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "key.pem").write_bytes(
            key.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        result = subprocess.run(
            [openssl, "pkcs12", "-export", "-legacy", "-inkey", "key.pem", "-in", "cert.pem",
             "-certfile", "ca.pem", "-passout", f"pass:{password}", "-out", "out.pfx"],
            check=False, cwd=d, capture_output=True,
        )
        if result.returncode != 0:
            return None
        return (d / "out.pfx").read_bytes()
