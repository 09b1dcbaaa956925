"""Whether a certificate is ready for the firm's SII environment, as the client sees it at upload.

`sii_bot.certificates.certificate_readiness` knows the SII's rules but not the environment; this is
where the tenant's environment decides about issuers the real SII refuses: against our sandbox its own
test PKI is fine (against production and certification, "maullin", it is an error), and an unknown
issuer is a warning everywhere, worded for the environment.
"""
from __future__ import annotations

from datetime import datetime

from onboarding.models import SiiEnvironment
from sii_bot.certificates import CertificateFacts, Finding, Readiness, certificate_readiness

__all__ = ["certificate_readiness_for"]


def _in_sandbox(finding: Finding, facts: CertificateFacts) -> Finding:
    """`finding` as it stands for a tenant working against our sandbox."""
    if finding.code == "issuer_sandbox":
        return Finding(finding.code, "ok", (
            "Emitido por la autoridad de pruebas del sandbox de Autoriza, el ambiente de pruebas que usa "
            "su estudio contable."
        ))
    if finding.code == "issuer_not_accepted":
        return Finding(finding.code, "warning", (
            f"Su certificado fue emitido por «{facts.issuer}», que no es un proveedor que el SII acepte. "
            "Su estudio contable trabaja en el ambiente de pruebas, donde puede continuar; en el SII real "
            "no servirá."
        ))
    return finding


def certificate_readiness_for(*, facts: CertificateFacts, environment: str, now: datetime) -> Readiness:
    """The findings about `facts` (an opened bundle or a stored `Certificate`) at `now`, for a tenant
    whose SII environment is `environment` (a `SiiEnvironment` value). `Readiness.blocked`: the
    certificate must not be kept nor used."""
    readiness = certificate_readiness(facts, now=now)
    if environment != SiiEnvironment.SANDBOX:
        return readiness
    return Readiness(findings=tuple(_in_sandbox(finding, facts) for finding in readiness.findings))
