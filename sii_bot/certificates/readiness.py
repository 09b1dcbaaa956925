"""What can be known about a certificate before the SII sees it: validity, issuer and holder.

``certificate_readiness`` turns an opened certificate into findings (code, level, Spanish message)
the owner reads at upload, so a file the SII would refuse (its codes 36 "expired" and 37 "not from a
provider the SII accepts", or a company as holder) is caught before consent. It is a first filter on
names, not a trust decision: the SII verifies the chain itself.

The issuer check knows nothing of the caller's SII environment: it reports ``issuer_sandbox`` for our
sandbox's test PKI as an error, and the caller (who knows the environment) may accept it there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..rut import InvalidRut, display_rut, is_person_rut

__all__ = [
    "ACCEPTED_ISSUERS",
    "EXPIRY_WARNING_DAYS",
    "SANDBOX_ISSUER",
    "CertificateFacts",
    "Finding",
    "Readiness",
    "accepted_issuer",
    "certificate_readiness",
    "is_sandbox_issuer",
]

Level = Literal["ok", "warning", "error"]

# A certificate that expires within this many days gets a warning: the authorization must be done first.
EXPIRY_WARNING_DAYS = 30

# The providers whose certificates the SII accepts: the Chilean "prestadores de servicios de
# certificación acreditados" (Ley 19.799; registry of the Subsecretaría de Economía). Sources: SII FAQ
# 001_100_0579 (the list login error code 37 points to) and the SII's guide "Instalación y utilización
# del Certificado Digital", section 4, which lists Acepta.com, E-CertChile, E-Sign, Certinet,
# Paperless and IDOK (BPO Advisors). Camerfirma Chile, Thomas Signe, Signapis and TOC come from issue
# #17's reading of the same registry (not confirmed from the copies reachable here). A provider missing
# here blocks its customers at upload, so add it (display name, pattern) as soon as the SII lists it.
# Patterns run on the issuer's CN and O, lower-cased, without accents, punctuation turned into spaces.
ACCEPTED_ISSUERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("E-CERTCHILE", re.compile(r"\be ?cert ?chile\b|\be ?cert\b")),
    ("Acepta", re.compile(r"\bacepta\b")),
    ("E-Sign", re.compile(r"\be ?sign\b")),
    ("Certinet", re.compile(r"\bcertinet\b")),
    ("IDOK", re.compile(r"\bidok\b|\bbpo advisors\b")),
    ("Paperless", re.compile(r"\bpaperless\b")),
    ("Camerfirma Chile", re.compile(r"\bcamerfirma chile\b")),
    ("Thomas Signe", re.compile(r"\bthomas ?signe\b")),
    ("Signapis", re.compile(r"\bsignapis\b")),
    ("TOC", re.compile(r"\btoc\b")),
)
# The test PKI of ``sii_sandbox`` (``sii_sandbox/pki.py``): acceptable only against the sandbox.
SANDBOX_ISSUER = re.compile(r"\bautoriza sandbox\b")

_CHILE = "America/Santiago"
_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
           "octubre", "noviembre", "diciembre")


class CertificateFacts(Protocol):
    """The public facts readiness reads: a ``CertificateBundle``, or any record that keeps them."""

    holder_rut: str
    issuer: str
    not_before: datetime
    not_after: datetime


class Finding(NamedTuple):
    """One thing known about the certificate: stable ``code``, ``level`` and a Spanish ``message``."""

    code: str
    level: Level
    message: str


@dataclass(frozen=True)
class Readiness:
    """The findings about one certificate, in the order validity, issuer, holder."""

    findings: tuple[Finding, ...]

    @property
    def blocked(self) -> bool:
        """True when a finding is an error: the SII would refuse this certificate."""
        return any(finding.level == "error" for finding in self.findings)


def _folded(text: str) -> str:
    """Lower case, accents removed, every run of non-alphanumerics one space."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return " ".join(re.split(r"[^a-z0-9]+", plain)).strip()


def accepted_issuer(issuer: str) -> str | None:
    """The display name of the accepted provider whose name ``issuer`` carries, else None."""
    folded = _folded(issuer)
    for name, pattern in ACCEPTED_ISSUERS:
        if pattern.search(folded):
            return name
    return None


def is_sandbox_issuer(issuer: str) -> bool:
    """True when ``issuer`` names the test PKI of our sandbox."""
    return bool(SANDBOX_ISSUER.search(_folded(issuer)))


def _local_date(moment: datetime) -> str:
    """'15 de enero de 2027', on Chile's calendar (the owner's)."""
    try:
        local = moment.astimezone(ZoneInfo(_CHILE))
    except ZoneInfoNotFoundError:
        local = moment.astimezone(UTC)
    return f"{local.day} de {_MONTHS[local.month - 1]} de {local.year}"


def _validity(facts: CertificateFacts, now: datetime) -> Finding:
    if now < facts.not_before:
        return Finding("not_yet_valid", "error", (
            f"Su certificado todavía no está vigente: empieza a valer el {_local_date(facts.not_before)}. "
            "Súbalo desde esa fecha, o revise que eligió el certificado correcto."
        ))
    if now > facts.not_after:
        return Finding("expired", "error", (
            f"Su certificado venció el {_local_date(facts.not_after)} y el SII no acepta certificados "
            "vencidos. Renuévelo con su proveedor y suba el certificado nuevo."
        ))
    left = facts.not_after - now
    if left < timedelta(days=EXPIRY_WARNING_DAYS):
        days = left.days
        when = "vence hoy" if days == 0 else "vence mañana" if days == 1 else f"vence en {days} días"
        return Finding("expires_soon", "warning", (
            f"Su certificado {when} ({_local_date(facts.not_after)}): la autorización debe completarse antes."
        ))
    return Finding("valid", "ok", f"Vigente hasta el {_local_date(facts.not_after)}.")


def _issuer(facts: CertificateFacts) -> Finding:
    # The sandbox first: a test issuer stays a test issuer whatever else its name says.
    if is_sandbox_issuer(facts.issuer):
        return Finding("issuer_sandbox", "error", (
            "Es un certificado de pruebas del sandbox de Autoriza: el SII no lo acepta. Suba el "
            "certificado digital que le entregó su proveedor."
        ))
    provider = accepted_issuer(facts.issuer)
    if provider is not None:
        return Finding("issuer_accepted", "ok", f"Emitido por {provider}, un proveedor que el SII acepta.")
    # A warning, not an error: the list is only partly confirmed from public sources, and the SII's own
    # answer (code …37, "certificado no emitido por un proveedor aceptado") is the final word.
    return Finding("issuer_not_accepted", "warning", (
        f"No reconocemos a «{facts.issuer}» entre los proveedores que el SII acepta ("
        + ", ".join(name for name, _ in ACCEPTED_ISSUERS) + "). Si el SII no lo acepta, se lo diremos "
        "al intentar la autorización; para evitarlo, use un certificado digital de uno de ellos."
    ))


def _holder(facts: CertificateFacts) -> Finding:
    try:
        person = is_person_rut(facts.holder_rut)
    except InvalidRut:
        return Finding("holder_rut_invalid", "error", (
            "El RUT del titular que indica el certificado no es válido. Contacte al proveedor que lo emitió."
        ))
    rut = display_rut(facts.holder_rut)
    if not person:
        # SII's own rule for authorized users: "El rut debe ser de una persona natural".
        return Finding("holder_company", "error", (
            f"El titular del certificado es una empresa (RUT {rut}), y el SII exige el certificado de una "
            "persona natural. Use el certificado personal del representante legal o de un usuario "
            "administrador de la empresa."
        ))
    return Finding("holder_person", "ok", f"El titular es una persona natural (RUT {rut}).")


def certificate_readiness(bundle: CertificateFacts, *, now: datetime) -> Readiness:
    """Validity (error when expired or not yet valid, warning within ``EXPIRY_WARNING_DAYS``), issuer
    (a warning unless one of ``ACCEPTED_ISSUERS``; ``issuer_sandbox`` for the sandbox's test PKI) and
    holder (error unless a natural person's valid RUT) of ``bundle`` at ``now`` (naive means UTC).

    Pure: reads only ``holder_rut``, ``issuer``, ``not_before`` and ``not_after``, so a stored record
    of those facts works as well as a ``CertificateBundle``.
    """
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return Readiness(findings=(_validity(bundle, moment), _issuer(bundle), _holder(bundle)))
