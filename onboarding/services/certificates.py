"""Certificates and job evidence at rest: sealing a client's certificate when it is uploaded, opening
it for the worker, erasing it (at the client's request, when a job no longer needs it, at the end of
the retention period), re-wrapping every data key after a master key rotation, and the sealed
screenshots and pages of a job.

Every sealed row opens only for its own tenant and row id (`onboarding.crypto.record_context`).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from onboarding import crypto
from onboarding.domain.rules import certificates_usable
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    AuditAction,
    Certificate,
    ClientCompany,
    EnrollmentJob,
    JobArtifact,
)
from onboarding.services.audit import audit_record
from onboarding.services.errors import ServiceError
from sii_bot.certificates import CertificateBundle, CertificateMaterial

__all__ = [
    "bundle_public_facts",
    "bundle_seal",
    "certificate_destroy",
    "certificate_opened",
    "certificate_store",
    "certificates_purge_expired",
    "certificates_rewrap",
    "company_certificates_destroy",
    "company_usable_certificate",
    "job_artifact_open",
    "job_artifact_store",
    "pem_material_split",
]

CERTIFICATE_PURPOSE = "certificate"
ARTIFACT_PURPOSE = "artifact"


def company_usable_certificate(*, company: ClientCompany) -> Certificate | None:
    """The company's newest certificate a job may still use (`domain.rules.certificate_is_usable`:
    stored and unexpired), or None."""
    return (
        certificates_usable(Certificate.objects.filter(company=company), now=timezone.now())
        .order_by("-created_at")
        .first()
    )


def _certificate_context(certificate: Certificate) -> bytes:
    return crypto.record_context(purpose=CERTIFICATE_PURPOSE, tenant_id=certificate.tenant_id, record_id=certificate.pk)


def certificate_store(
    *, company: ClientCompany, bundle: CertificateBundle, uploaded_by: AbstractBaseUser | None
) -> Certificate:
    """Seal the private key and chain of an opened certificate and store them for this company.

    The password is not an argument: it was used to open the file and is already gone. Returns the
    saved Certificate; its sealed material opens only for this tenant and this row.
    """
    certificate = Certificate(
        tenant_id=company.tenant_id,
        company=company,
        uploaded_by=uploaded_by,
        **bundle_public_facts(bundle),
    )
    sealed = bundle_seal(bundle=bundle, context=_certificate_context(certificate))
    certificate.key_id = sealed.key_id
    certificate.wrapped_key = sealed.wrapped_key
    certificate.sealed_material = sealed.ciphertext
    certificate.save()
    audit_record(
        tenant=company.tenant,
        actor=uploaded_by,
        action=AuditAction.UPLOAD,
        company=company,
        summary=f"Certificado de {bundle.holder_name} ({bundle.holder_rut}) cargado",
        details={"certificate": str(certificate.pk), "fingerprint": bundle.fingerprint_sha256},
    )
    return certificate


def bundle_public_facts(bundle: CertificateBundle) -> dict[str, Any]:
    """The certificate's public facts a sealed row keeps in clear (holder, issuer, validity, fingerprint)."""
    return {
        "holder_rut": bundle.holder_rut,
        "holder_name": bundle.holder_name,
        "issuer": bundle.issuer[:200],
        "not_before": bundle.not_before,
        "not_after": bundle.not_after,
        "fingerprint_sha256": bundle.fingerprint_sha256,
    }


def bundle_seal(*, bundle: CertificateBundle, context: bytes) -> crypto.Sealed:
    """Seal an opened certificate's key, leaf and chain (in the order `pem_material_split` reads them)
    for the record `context` names; the joined plaintext buffer is overwritten before returning."""
    payload = bytearray(bundle.key_pem + bundle.cert_pem + bundle.chain_pem)
    try:
        return crypto.seal(bytes(payload), context=context)
    finally:
        crypto.wipe(payload)


@contextmanager
def certificate_opened(*, certificate: Certificate) -> Iterator[CertificateMaterial]:
    """Yield the decrypted PEM material for the bot, and overwrite the plaintext buffer afterwards.

    Only the worker calls this. Raises ServiceError if the material was destroyed, and
    crypto.DecryptionFailed if the row was tampered with or the master key is wrong.
    """
    if not certificate.is_usable:
        raise ServiceError(
            "El certificado ya no está guardado. Suba su certificado nuevamente para continuar.",
            code="certificate_missing",
        )
    sealed = crypto.Sealed(
        key_id=certificate.key_id,
        wrapped_key=bytes(certificate.wrapped_key),
        ciphertext=bytes(certificate.sealed_material),
    )
    plaintext = crypto.open_sealed(sealed, context=_certificate_context(certificate))
    try:
        key_pem, cert_pem, chain_pem = pem_material_split(bytes(plaintext))
        yield CertificateMaterial(cert_pem=cert_pem, key_pem=key_pem, chain_pem=chain_pem)
    finally:
        crypto.wipe(plaintext)


def pem_material_split(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """Split a sealed payload into (key PEM, leaf PEM, chain PEMs), the order `certificate_store` and
    `firm_keys.firm_key_store` join them in."""
    marker = b"-----BEGIN "
    blocks = [marker + part for part in payload.split(marker)[1:]]
    if len(blocks) < 2 or b"PRIVATE KEY" not in blocks[0].split(b"\n", 1)[0]:
        raise crypto.DecryptionFailed("The certificate material is not in the expected layout.")
    return blocks[0], blocks[1], b"".join(blocks[2:])


def certificate_destroy(*, certificate: Certificate, reason: str, actor: AbstractBaseUser | None = None) -> bool:
    """Erase the sealed key material (public facts stay for the audit trail).

    Returns True if material was erased now, False if it was already gone.
    """
    erased = Certificate.objects.filter(pk=certificate.pk, destroyed_at__isnull=True).update(
        sealed_material=None, wrapped_key=None, key_id="", destroyed_at=timezone.now(), destroy_reason=reason
    )
    certificate.refresh_from_db(fields=["sealed_material", "wrapped_key", "key_id", "destroyed_at", "destroy_reason"])
    if erased and actor is not None:
        audit_record(
            tenant=certificate.company.tenant,
            actor=actor,
            action=AuditAction.DELETION,
            company=certificate.company,
            summary=f"Certificado de {certificate.holder_name} eliminado",
            details={"certificate": str(certificate.pk), "reason": reason},
        )
    return bool(erased)


def company_certificates_destroy(*, company: ClientCompany, reason: str, actor: AbstractBaseUser | None = None) -> int:
    """Erase every stored certificate of `company` that no queued or running job needs, now.

    For when no re-run is possible any more (the relationship ended, the company is removed): the
    retention period exists only for re-runs. Audited per certificate when there is an `actor`.
    Returns how many certificates were erased.
    """
    stored = Certificate.objects.filter(company=company, destroyed_at__isnull=True).exclude(
        jobs__status__in=ACTIVE_JOB_STATUSES
    )
    count = 0
    for certificate in stored.select_related("company__tenant"):
        count += certificate_destroy(certificate=certificate, reason=reason, actor=actor)
    return count


def certificates_purge_expired(*, now: datetime | None = None) -> int:
    """Destroy key material older than the retention period that no active job still needs.

    Returns how many certificates were erased.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.AUTORIZA_CERT_RETENTION_DAYS)
    stale = Certificate.objects.filter(destroyed_at__isnull=True, created_at__lt=cutoff).exclude(
        jobs__status__in=ACTIVE_JOB_STATUSES
    )
    count = 0
    for certificate in stale.select_related("company__tenant"):
        count += certificate_destroy(certificate=certificate, reason="retention")
    return count


def certificates_rewrap(*, batch_size: int = 200) -> int:
    """Re-wrap every stored data key with the active master key (rotation). Returns rows changed."""
    changed = 0
    ring = crypto.get_keyring()
    queryset = Certificate.objects.filter(destroyed_at__isnull=True).exclude(key_id=ring.active_id)
    for certificate in queryset.iterator(chunk_size=batch_size):
        sealed = crypto.Sealed(certificate.key_id, bytes(certificate.wrapped_key), bytes(certificate.sealed_material))
        fresh = crypto.rewrap(sealed, context=_certificate_context(certificate), keyring=ring)
        changed += Certificate.objects.filter(pk=certificate.pk, key_id=certificate.key_id).update(
            key_id=fresh.key_id, wrapped_key=fresh.wrapped_key
        )
    for artifact in JobArtifact.objects.exclude(key_id=ring.active_id).iterator(chunk_size=batch_size):
        context = _artifact_context(artifact)
        sealed = crypto.Sealed(artifact.key_id, bytes(artifact.wrapped_key), bytes(artifact.sealed_content))
        fresh = crypto.rewrap(sealed, context=context, keyring=ring)
        changed += JobArtifact.objects.filter(pk=artifact.pk, key_id=artifact.key_id).update(
            key_id=fresh.key_id, wrapped_key=fresh.wrapped_key
        )
    return changed


# --- Job artifacts (screenshots, page HTML) -------------------------------------------------


def _artifact_context(artifact: JobArtifact) -> bytes:
    return crypto.record_context(purpose=ARTIFACT_PURPOSE, tenant_id=artifact.tenant_id, record_id=artifact.pk)


def job_artifact_store(
    *, job: EnrollmentJob, kind: str, step: str, content: bytes, unless_stored: bool = False
) -> JobArtifact | None:
    """Seal and store one piece of evidence of a job step; returns it.

    With `unless_stored`, returns None and stores nothing when the job already holds the same bytes
    of this kind for this step: a failure carries the screenshot its step's "failed" event already
    delivered, and the job's page listed the same picture twice.
    """
    if unless_stored:
        for stored in JobArtifact.objects.filter(job=job, kind=kind, step=step):
            if job_artifact_open(artifact=stored) == content:
                return None
    artifact = JobArtifact(tenant_id=job.tenant_id, job=job, kind=kind, step=step)
    sealed = crypto.seal(content, context=_artifact_context(artifact))
    artifact.key_id = sealed.key_id
    artifact.wrapped_key = sealed.wrapped_key
    artifact.sealed_content = sealed.ciphertext
    artifact.save()
    return artifact


def job_artifact_open(*, artifact: JobArtifact) -> bytes:
    """Return the decrypted content of an artifact (callers have already checked tenant access)."""
    sealed = crypto.Sealed(artifact.key_id, bytes(artifact.wrapped_key), bytes(artifact.sealed_content))
    return bytes(crypto.open_sealed(sealed, context=_artifact_context(artifact)))
