"""Test PKI for the sandbox: a CA, TLS server certificates and Chilean-style client ``.pfx`` files.

``ensure_pki(dir)`` is what callers use: it returns a :class:`Pki` describing every file, generating
the PKI only when ``dir`` has no complete one yet (generation costs ~2 s of RSA key generation, so
it is done once per directory and reused; a file lock makes concurrent callers wait instead of
generating twice).

Layout written in ``dir``::

    manifest.json            description of every file (see Pki.as_dict())
    ca.pem                   trust bundle: sandbox root + intermediate CA (SII_CA_BUNDLE)
    root_ca.pem, intermediate_ca.pem
    servers/{zeus,hercules,palena}.{crt,key}.pem   leaf + intermediate chain / key
    clients/<name>.pfx       PKCS#12 (3DES legacy encryption, chain included), password demo1234
    clients/<name>.crt.pem   leaf + intermediate (+ root) chain, for TLS clients such as httpx
    clients/<name>.key.pem   unencrypted private key (PKCS#8)
    clients/pem_cert_and_key.pem   the "pem" variant: a PEM file instead of a PKCS#12
    clients/garbage.pfx      bytes that are no certificate format at all
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

# Fixed demo password for every .pfx (the sandbox is public test material, not a secret).
PASSWORD = "demo1234"
# Bump when the layout or the set of variants changes: an older manifest then counts as incomplete.
MANIFEST_VERSION = 4
# Decreto 181/2002: holder RUT in subjectAltName otherName with this type id, value a DER IA5String.
RUT_OID = ObjectIdentifier("1.3.6.1.4.1.8321.1")

DEMO_HOLDER_RUT = "10345678-9"
DEMO_HOLDER_NAME = "MARIA JOSE SOTO PEREZ"
ADMIN2_HOLDER_RUT = "12531909-2"
ADMIN2_HOLDER_NAME = "CAROLINA ANDREA MUÑOZ TAPIA"
K_HOLDER_RUT = "15000005-K"
K_HOLDER_NAME = "PEDRO PABLO KUNSTMANN ROJAS"
COMPANY_HOLDER_RUT = "77123456-9"
COMPANY_HOLDER_NAME = "INVERSIONES EJEMPLO LIMITADA"
NO_RUT_HOLDER_NAME = "TITULAR SIN RUT"
# The demo accounting firm's representative (also in sii_sandbox.state): his own certificate.
REPRESENTATIVE_HOLDER_RUT = "13322924-8"
REPRESENTATIVE_HOLDER_NAME = "ALEX BRITO MARDONES"

SERVER_NAMES = ("zeus", "hercules", "palena")

# The variants tests need. rut_in: where the holder RUT is written in the certificate.
# validity: "valid" | "expired" | "not_yet_valid"; issuer: "sandbox" | "unknown".
_CLIENT_SPECS: dict[str, dict[str, Any]] = {
    "demo": {
        "holder_rut": DEMO_HOLDER_RUT, "holder_name": DEMO_HOLDER_NAME, "rut_in": "san", "validity": "valid",
        "issuer": "sandbox", "description": "Demo holder; administrator of COMERCIAL DEMO SPA and others.",
    },
    "admin2": {
        "holder_rut": ADMIN2_HOLDER_RUT, "holder_name": ADMIN2_HOLDER_NAME, "rut_in": "san", "validity": "valid",
        "issuer": "sandbox",
        "description": "Second administrator; administers SOCIEDAD AJENA LIMITADA (which demo does not).",
    },
    "representative": {
        "holder_rut": REPRESENTATIVE_HOLDER_RUT, "holder_name": REPRESENTATIVE_HOLDER_NAME, "rut_in": "san",
        "validity": "valid", "issuer": "sandbox",
        "description": ("The accounting firm's representative; Usuario Administrador of ASESORIAS DELEGADAS SPA "
                        "(76777777-9), no access to the other seeded companies."),
    },
    "expired": {
        "holder_rut": DEMO_HOLDER_RUT, "holder_name": DEMO_HOLDER_NAME, "rut_in": "san", "validity": "expired",
        "issuer": "sandbox", "description": "Demo holder, validity ended a year ago (TLS rejects it).",
    },
    "not_yet_valid": {
        "holder_rut": DEMO_HOLDER_RUT, "holder_name": DEMO_HOLDER_NAME, "rut_in": "san", "validity": "not_yet_valid",
        "issuer": "sandbox", "description": "Demo holder, validity starts in a year (TLS rejects it).",
    },
    "unknown_ca": {
        "holder_rut": DEMO_HOLDER_RUT, "holder_name": DEMO_HOLDER_NAME, "rut_in": "san", "validity": "valid",
        "issuer": "unknown", "description": "Demo holder, signed by a CA the sandbox does not trust ('unknown ca').",
    },
    "serial_only": {
        "holder_rut": DEMO_HOLDER_RUT, "holder_name": DEMO_HOLDER_NAME, "rut_in": "serial", "validity": "valid",
        "issuer": "sandbox",
        "description": "Demo holder, RUT only in subject serialNumber (no SAN otherName), like Acepta/IDOK.",
    },
    "no_rut": {
        "holder_rut": None, "holder_name": NO_RUT_HOLDER_NAME, "rut_in": None, "validity": "valid", "issuer": "sandbox",
        "description": "Valid certificate without any RUT (login answers 302 to errorp.html).",
    },
    "lowercase_k": {
        "holder_rut": K_HOLDER_RUT, "holder_name": K_HOLDER_NAME, "rut_in": "san_lower", "validity": "valid",
        "issuer": "sandbox",
        "description": "Holder RUT written with a lower-case 'k' (15000005-k); administers PANADERIA LA K LIMITADA.",
    },
    "company_holder": {
        "holder_rut": COMPANY_HOLDER_RUT, "holder_name": COMPANY_HOLDER_NAME, "rut_in": "san", "validity": "valid",
        "issuer": "sandbox", "description": "Holder RUT is a company (body >= 50,000,000), not a person.",
    },
}
# Variants that are not PKCS#12 files.
_OTHER_FILES = ("pem", "garbage")
CLIENT_NAMES: tuple[str, ...] = tuple(_CLIENT_SPECS) + _OTHER_FILES


@dataclass(frozen=True)
class PkiFile:
    """One client credential file and what it is.

    ``path`` is the file to hand to the system under test (a .pfx, except for ``pem`` and ``garbage``).
    ``cert_pem``/``key_pem`` are PEM exports for TLS clients (None for ``garbage``).
    ``holder_rut`` is canonical (upper-case K) or None; ``rut_text`` is exactly what the certificate says.
    """

    name: str
    kind: str
    path: Path
    password: str | None
    holder_rut: str | None
    holder_name: str | None
    rut_text: str | None
    rut_location: str | None
    description: str
    cert_pem: Path | None
    key_pem: Path | None
    not_before: str | None
    not_after: str | None
    issuer: str | None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with absolute paths as strings."""
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "password": self.password,
            "holder_rut": self.holder_rut,
            "holder_name": self.holder_name,
            "rut_text": self.rut_text,
            "rut_location": self.rut_location,
            "description": self.description,
            "cert_pem": str(self.cert_pem) if self.cert_pem else None,
            "key_pem": str(self.key_pem) if self.key_pem else None,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "issuer": self.issuer,
        }


@dataclass(frozen=True)
class ServerCert:
    """A TLS server certificate: ``cert`` (leaf + intermediate chain PEM) and ``key`` (PEM)."""

    name: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Everything in a sandbox PKI directory, with absolute paths.

    Access client files as ``pki["demo"]`` or ``pki.demo``; iterate names with ``pki.names()``.
    """

    dir: Path
    ca_bundle: Path
    root_ca: Path
    intermediate_ca: Path
    manifest_path: Path
    password: str
    files: dict[str, PkiFile] = field(default_factory=dict)
    servers: dict[str, ServerCert] = field(default_factory=dict)

    def __getitem__(self, name: str) -> PkiFile:
        return self.files[name]

    def __getattr__(self, name: str) -> PkiFile:
        # Only called for names that are not dataclass fields: expose variants as attributes.
        files = self.__dict__.get("files", {})
        if name in files:
            return files[name]
        raise AttributeError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def names(self) -> list[str]:
        """Return the variant names (demo, admin2, expired, ...)."""
        return list(self.files)

    def as_dict(self) -> dict[str, Any]:
        """Return the manifest content with absolute paths (what ``sb.pki`` consumers can serialise)."""
        return {
            "dir": str(self.dir),
            "ca_bundle": str(self.ca_bundle),
            "root_ca": str(self.root_ca),
            "intermediate_ca": str(self.intermediate_ca),
            "password": self.password,
            "files": {n: f.as_dict() for n, f in self.files.items()},
            "servers": {n: {"cert": str(s.cert), "key": str(s.key)} for n, s in self.servers.items()},
        }


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_key() -> rsa.RSAPrivateKey:
    # RSA 2048 like real Chilean certificates; e=65537.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str, *, org: str | None = None, ou: str | None = None, serial: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CL")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if serial:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _ia5_der(text: str) -> bytes:
    """DER-encode ``text`` as an IA5String (tag 0x16), the otherName value Chilean CAs use."""
    raw = text.encode("ascii")
    if len(raw) >= 128:  # never happens for a RUT; keep the encoder honest anyway
        raise ValueError("IA5String too long for short-form DER length")
    return bytes([0x16, len(raw)]) + raw


def _ca_cert(
    subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
    not_before: dt.datetime, not_after: dt.datetime, path_len: int | None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key is not key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf_cert(
    subject: x509.Name, key: rsa.RSAPrivateKey, issuer_cert: x509.Certificate, issuer_key: rsa.RSAPrivateKey,
    not_before: dt.datetime, not_after: dt.datetime, san: list[x509.GeneralName] | None, server: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=not server, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH]
                if server
                else [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def legacy_pfx(
    key: rsa.RSAPrivateKey, cert: x509.Certificate, chain: list[x509.Certificate], password: str, friendly: str
) -> bytes:
    """Return a PKCS#12 like the ones Chilean CAs issue: 3DES (PBES1 SHA1) + SHA1 MAC, chain included."""
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(friendly.encode(), key, cert, chain, encryption)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    if private:
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def generate_pki(directory: str | os.PathLike[str]) -> Pki:
    """Generate a fresh PKI in ``directory`` (overwriting what is there) and return it.

    Prefer :func:`ensure_pki`, which reuses a complete PKI.
    """
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    manifest_path = d / "manifest.json"
    # The manifest is written last: its absence marks an incomplete directory.
    manifest_path.unlink(missing_ok=True)
    now = _now()
    year = dt.timedelta(days=365)
    day = dt.timedelta(days=1)

    root_key = _new_key()
    root_name = _name("Autoriza Sandbox Root CA", org="Autoriza Sandbox (pruebas, no es SII)")
    root = _ca_cert(root_name, root_key, root_name, root_key, now - 5 * year, now + 20 * year, path_len=1)
    inter_key = _new_key()
    inter_name = _name(
        "Autoriza Sandbox Firma Electronica Avanzada CA", org="Autoriza Sandbox (pruebas, no es SII)"
    )
    inter = _ca_cert(inter_name, inter_key, root_name, root_key, now - 5 * year, now + 15 * year, path_len=0)
    # A CA nobody trusts, for the "unknown ca" handshake failure.
    unk_key = _new_key()
    unk_name = _name("Otra CA Desconocida", org="Entidad Desconocida")
    unknown_root = _ca_cert(unk_name, unk_key, unk_name, unk_key, now - 5 * year, now + 20 * year, path_len=0)

    _write(d / "root_ca.pem", _pem(root))
    _write(d / "intermediate_ca.pem", _pem(inter))
    _write(d / "ca.pem", _pem(root) + _pem(inter))
    _write(d / "unknown_ca.pem", _pem(unknown_root))

    servers: dict[str, dict[str, str]] = {}
    for sname in SERVER_NAMES:
        skey = _new_key()
        san: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
        scert = _leaf_cert(
            _name(f"{sname}r.sandbox.localhost" if sname != "palena" else "palena.sandbox.localhost",
                  org="Autoriza Sandbox"),
            skey, inter, inter_key, now - day, now + 2 * year, san, server=True,
        )
        _write(d / "servers" / f"{sname}.crt.pem", _pem(scert) + _pem(inter))
        _write(d / "servers" / f"{sname}.key.pem", _key_pem(skey), private=True)
        servers[sname] = {"cert": f"servers/{sname}.crt.pem", "key": f"servers/{sname}.key.pem"}

    files: dict[str, dict[str, Any]] = {}
    demo_material: tuple[rsa.RSAPrivateKey, x509.Certificate] | None = None
    for cname, spec in _CLIENT_SPECS.items():
        ckey = _new_key()
        holder_rut: str | None = spec["holder_rut"]
        rut_text: str | None = None
        san_list: list[x509.GeneralName] = []
        serial: str | None = None
        if spec["rut_in"] in ("san", "san_lower") and holder_rut:
            rut_text = holder_rut.lower() if spec["rut_in"] == "san_lower" else holder_rut
            san_list.append(x509.OtherName(RUT_OID, _ia5_der(rut_text)))
        elif spec["rut_in"] == "serial" and holder_rut:
            rut_text = holder_rut
            serial = holder_rut
        email_local = spec["holder_name"].split()[0].lower().replace("ñ", "n")
        san_list.append(x509.RFC822Name(f"{email_local}.{cname}@sandbox.example"))
        if spec["validity"] == "expired":
            nb, na = now - 2 * year, now - year
        elif spec["validity"] == "not_yet_valid":
            nb, na = now + year, now + 3 * year
        else:
            nb, na = now - 30 * day, now + 3 * year
        subject = _name(spec["holder_name"], org="Persona Natural", ou="Firma Electronica Avanzada", serial=serial)
        if spec["issuer"] == "unknown":
            ccert = _leaf_cert(subject, ckey, unknown_root, unk_key, nb, na, san_list, server=False)
            chain = [unknown_root]
        else:
            ccert = _leaf_cert(subject, ckey, inter, inter_key, nb, na, san_list, server=False)
            chain = [inter, root]
        pfx_path = d / "clients" / f"{cname}.pfx"
        _write(pfx_path, legacy_pfx(ckey, ccert, chain, PASSWORD, spec["holder_name"]), private=True)
        _write(d / "clients" / f"{cname}.crt.pem", _pem(ccert) + b"".join(_pem(c) for c in chain))
        _write(d / "clients" / f"{cname}.key.pem", _key_pem(ckey), private=True)
        if cname == "demo":
            demo_material = (ckey, ccert)
        files[cname] = {
            "kind": "pkcs12",
            "file": f"clients/{cname}.pfx",
            "password": PASSWORD,
            "holder_rut": holder_rut,
            "holder_name": spec["holder_name"],
            "rut_text": rut_text,
            "rut_location": {"san": "san_othername", "san_lower": "san_othername", "serial": "subject_serial_number"}.get(
                spec["rut_in"]
            ),
            "description": spec["description"],
            "cert_pem": f"clients/{cname}.crt.pem",
            "key_pem": f"clients/{cname}.key.pem",
            "not_before": nb.isoformat(),
            "not_after": na.isoformat(),
            "issuer": ccert.issuer.rfc4514_string(),
        }

    assert demo_material is not None
    dkey, dcert = demo_material
    _write(d / "clients" / "pem_cert_and_key.pem", _pem(dcert) + _pem(inter) + _key_pem(dkey), private=True)
    files["pem"] = {
        "kind": "pem",
        "file": "clients/pem_cert_and_key.pem",
        "password": None,
        "holder_rut": DEMO_HOLDER_RUT,
        "holder_name": DEMO_HOLDER_NAME,
        "rut_text": DEMO_HOLDER_RUT,
        "rut_location": "san_othername",
        "description": "The demo certificate + chain + unencrypted key as PEM text, not PKCS#12.",
        "cert_pem": "clients/demo.crt.pem",
        "key_pem": "clients/demo.key.pem",
        "not_before": files["demo"]["not_before"],
        "not_after": files["demo"]["not_after"],
        "issuer": files["demo"]["issuer"],
    }
    # Deterministic junk that starts like nothing known (not 0x30 DER, not PEM).
    junk = b"".join(hashlib.sha256(b"sii-sandbox-garbage-%d" % i).digest() for i in range(64))
    _write(d / "clients" / "garbage.pfx", b"\x00GARBAGE\xff" + junk)
    files["garbage"] = {
        "kind": "garbage",
        "file": "clients/garbage.pfx",
        "password": PASSWORD,
        "holder_rut": None,
        "holder_name": None,
        "rut_text": None,
        "rut_location": None,
        "description": "Random bytes with a .pfx name: neither PKCS#12 nor PEM.",
        "cert_pem": None,
        "key_pem": None,
        "not_before": None,
        "not_after": None,
        "issuer": None,
    }

    manifest = {
        "version": MANIFEST_VERSION,
        "generated_at": now.isoformat(),
        "password": PASSWORD,
        "note": "Sandbox test PKI for Autoriza. Paths are relative to this directory.",
        "ca_bundle": "ca.pem",
        "root_ca": "root_ca.pem",
        "intermediate_ca": "intermediate_ca.pem",
        "ca_not_after": inter.not_valid_after_utc.isoformat(),
        "servers": servers,
        "files": files,
    }
    _write(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
    return load_pki(d)


def load_pki(directory: str | os.PathLike[str]) -> Pki:
    """Return the :class:`Pki` described by ``directory/manifest.json`` (absolute paths resolved)."""
    d = Path(directory).resolve()
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    files: dict[str, PkiFile] = {}
    for name, f in manifest["files"].items():
        files[name] = PkiFile(
            name=name,
            kind=f["kind"],
            path=d / f["file"],
            password=f["password"],
            holder_rut=f["holder_rut"],
            holder_name=f["holder_name"],
            rut_text=f["rut_text"],
            rut_location=f["rut_location"],
            description=f["description"],
            cert_pem=d / f["cert_pem"] if f["cert_pem"] else None,
            key_pem=d / f["key_pem"] if f["key_pem"] else None,
            not_before=f["not_before"],
            not_after=f["not_after"],
            issuer=f["issuer"],
        )
    servers = {n: ServerCert(n, d / s["cert"], d / s["key"]) for n, s in manifest["servers"].items()}
    return Pki(
        dir=d,
        ca_bundle=d / manifest["ca_bundle"],
        root_ca=d / manifest["root_ca"],
        intermediate_ca=d / manifest["intermediate_ca"],
        manifest_path=d / "manifest.json",
        password=manifest["password"],
        files=files,
        servers=servers,
    )


def _is_complete(d: Path) -> bool:
    """True when ``d`` holds a current, complete PKI whose 'valid' certificates are still valid."""
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("version") != MANIFEST_VERSION:
        return False
    if set(manifest.get("files", {})) != set(CLIENT_NAMES) or set(manifest.get("servers", {})) != set(SERVER_NAMES):
        return False
    paths = [manifest["ca_bundle"], manifest["root_ca"], manifest["intermediate_ca"]]
    for f in manifest["files"].values():
        paths += [p for p in (f["file"], f["cert_pem"], f["key_pem"]) if p]
    for s in manifest["servers"].values():
        paths += [s["cert"], s["key"]]
    if not all((d / p).is_file() for p in paths):
        return False
    # Time moves on: a reused PKI whose "valid" certificates expire soon, or whose "not yet valid"
    # one became valid, no longer has what it claims.
    soon = _now() + dt.timedelta(days=7)
    try:
        if dt.datetime.fromisoformat(manifest["files"]["demo"]["not_after"]) < soon:
            return False
        if dt.datetime.fromisoformat(manifest["files"]["not_yet_valid"]["not_before"]) < soon:
            return False
        if dt.datetime.fromisoformat(manifest["ca_not_after"]) < soon:
            return False
    except (KeyError, ValueError):
        return False
    return True


def ensure_pki(directory: str | os.PathLike[str]) -> Pki:
    """Return the PKI in ``directory``, generating it first only if it is missing or incomplete.

    Idempotent and safe to call from several processes at once (an exclusive lock on
    ``directory/.lock`` serialises generation).
    """
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _is_complete(d):
                return load_pki(d)
            return generate_pki(d)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def rut_from_certificate(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """Return ``(rut_text, source)`` read from a certificate the way SII does.

    Looks first at subjectAltName otherName ``1.3.6.1.4.1.8321.1`` (DER IA5String), then at
    ``subject.serialNumber``. ``rut_text`` is the raw text (may have a lower-case k); ``source`` is
    ``"san_othername"``, ``"subject_serial_number"`` or None.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == RUT_OID:
                text = _decode_der_string(other.value)
                if text:
                    return text, "san_othername"
    serials = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if serials:
        value = serials[0].value
        return (value.decode() if isinstance(value, bytes) else value), "subject_serial_number"
    return None, None


def _decode_der_string(der: bytes) -> str | None:
    """Decode a short DER string value (IA5String/PrintableString/UTF8String); None if malformed."""
    if len(der) < 2 or der[0] not in (0x16, 0x13, 0x0C):
        return None
    length = der[1]
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(der[2 : 2 + n], "big")
        body = der[2 + n : 2 + n + length]
    else:
        body = der[2 : 2 + length]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None
