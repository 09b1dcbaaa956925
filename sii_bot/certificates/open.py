"""Opening the company owner's digital certificate (.pfx / .p12): ``open_pkcs12``.

Chilean CAs issue PKCS#12 files with legacy encryption (RC2-40 / 3DES). Playwright's Node driver
refuses those, so the file is opened here with ``cryptography`` and the driver only ever receives PEM
bytes (``CertificateMaterial``). Every refusal is a ``CertificateError`` with a stable ``code`` and a
Spanish message that tells the user what to do.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .. import asn1
from .bundle import CertificateBundle, CertificateError
from .holder import holder_name, holder_rut, readable_name
from .kdf_budget import Undecryptable, check_pfx_structure

__all__ = ["DEFAULT_MAX_BYTES", "open_pkcs12"]

DEFAULT_MAX_BYTES = 64 * 1024


def _looks_like_pem(data: bytes) -> bool:
    return b"-----BEGIN" in data[:4096]


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
    ``check_pfx_structure``), locked with another password, without key or certificate, expired or not yet
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
        check_pfx_structure(data)
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
        check_pfx_structure(data, password)
    except asn1.Asn1Error as exc:
        raise CertificateError("not_pkcs12", detail=f"not a PFX: {exc}") from None
    except Undecryptable as exc:
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

    rut = holder_rut(leaf)

    fingerprint = leaf.fingerprint(hashes.SHA256()).hex().upper()
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in others if c != leaf)
    return CertificateBundle(
        holder_rut=rut,
        holder_name=holder_name(leaf),
        issuer=readable_name(leaf.issuer),
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
