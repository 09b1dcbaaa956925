"""Writes of the onboarding domain (HackSoft style: keyword-only, `<entity>_<action>` names).

Views and tasks call these; nothing else writes the models. Every function that changes a client's
state also records what a person did in the audit log when there is a person behind it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from onboarding import crypto
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    AuditAction,
    AuditEntry,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobArtifact,
    Membership,
    Representative,
    Role,
    SiiEnvironment,
    Tenant,
)
from sii_bot.rut import normalize_rut

if TYPE_CHECKING:
    from sii_bot.certificates import CertificateBundle, CertificateMaterial

logger = logging.getLogger(__name__)

CERTIFICATE_PURPOSE = "certificate"
ARTIFACT_PURPOSE = "artifact"


class ServiceError(Exception):
    """A refused write; `message` is Spanish and safe to show to the user who asked for it."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- Tenants and people ----------------------------------------------------------------------


def tenant_create(
    *,
    name: str,
    slug: str,
    sii_environment: str = SiiEnvironment.PRODUCTION,
    grant_admin: bool = True,
    grant_sign: bool = True,
    grant_registry: bool = True,
    notification_emails: str = "",
) -> Tenant:
    """Create an accounting firm; returns the saved Tenant."""
    tenant = Tenant(
        name=name,
        slug=slug,
        sii_environment=sii_environment,
        grant_admin=grant_admin,
        grant_sign=grant_sign,
        grant_registry=grant_registry,
        notification_emails=notification_emails,
    )
    tenant.full_clean()
    tenant.save()
    return tenant


def representative_add(*, tenant: Tenant, rut: str, name: str) -> Representative:
    """Add (or reactivate) a representative of the firm; the RUT is stored canonically."""
    canonical = normalize_rut(rut)
    representative, _ = Representative.objects.update_or_create(
        tenant=tenant, rut=canonical, defaults={"name": name.strip().upper(), "is_active": True}
    )
    return representative


def membership_add(*, tenant: Tenant, user: AbstractBaseUser, role: str = Role.STAFF) -> Membership:
    """Give a user a role in a tenant (updating the role if already a member)."""
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    return membership


def audit_record(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    action: str,
    summary: str,
    company: ClientCompany | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one line to the tenant's audit log."""
    label = ""
    if actor is not None and getattr(actor, "is_authenticated", False):
        label = actor.get_username()
    return AuditEntry.objects.create(
        tenant=tenant,
        actor=actor if label else None,
        actor_label=label or "sistema",
        action=action,
        company=company,
        summary=summary[:300],
        details=details or {},
    )


# --- Client companies -----------------------------------------------------------------------


def client_company_create(
    *,
    tenant: Tenant,
    rut: str,
    legal_name: str,
    owner: AbstractBaseUser | None = None,
    owner_name: str = "",
    owner_email: str = "",
    stage: str = CompanyStage.WAITING_CERTIFICATE,
) -> ClientCompany:
    """Create a client company of the tenant. Raises ServiceError if its RUT is already a client."""
    canonical = normalize_rut(rut)
    try:
        with transaction.atomic():
            return ClientCompany.objects.create(
                tenant=tenant,
                rut=canonical,
                legal_name=legal_name.strip(),
                owner=owner,
                owner_name=owner_name.strip(),
                owner_email=owner_email.strip(),
                stage=stage,
            )
    except IntegrityError:
        raise ServiceError(
            "Esta empresa ya está registrada con este estudio contable. Inicie sesión con la cuenta "
            "que la registró, o pida ayuda a su contador.",
            code="company_exists",
        ) from None


def company_stage_set(*, company: ClientCompany, stage: str) -> None:
    """Move `company` to `stage` (a `CompanyStage`), stamping when; the instance is updated too."""
    ClientCompany.objects.filter(pk=company.pk).update(stage=stage, stage_changed_at=timezone.now())
    company.stage = stage


def client_company_remove(*, company: ClientCompany, actor: AbstractBaseUser | None) -> None:
    """Remove a client company of the firm, erasing its stored certificates first (audited).

    Nothing can be re-run for a company that is gone, so its keys are erased at once (reason
    "company_removed") before its rows go; the audit entries stay with the tenant. Raises
    ServiceError while a job of the company is queued or running (its outcome would have nowhere to go).
    """
    with transaction.atomic():
        company = ClientCompany.objects.select_for_update().select_related("tenant").get(pk=company.pk)
        if EnrollmentJob.objects.filter(company=company, status__in=ACTIVE_JOB_STATUSES).exists():
            raise ServiceError(
                "Hay un trabajo en curso para esta empresa. Espere a que termine antes de eliminarla.",
                code="job_already_active",
            )
        erased = company_certificates_destroy(company=company, reason="company_removed", actor=actor)
        audit_record(
            tenant=company.tenant,
            actor=actor,
            action=AuditAction.DELETION,
            company=company,
            summary=f"Empresa {company.legal_name} ({company.rut}) eliminada",
            details={"company": company.pk, "rut": company.rut, "certificates_erased": erased},
        )
        company.delete()


# --- Certificates ---------------------------------------------------------------------------


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
        holder_rut=bundle.holder_rut,
        holder_name=bundle.holder_name,
        issuer=bundle.issuer[:200],
        not_before=bundle.not_before,
        not_after=bundle.not_after,
        fingerprint_sha256=bundle.fingerprint_sha256,
    )
    payload = bytearray(bundle.key_pem + bundle.cert_pem + bundle.chain_pem)
    try:
        sealed = crypto.seal(bytes(payload), context=_certificate_context(certificate))
    finally:
        crypto.wipe(payload)
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


@contextmanager
def certificate_opened(*, certificate: Certificate) -> Iterator[CertificateMaterial]:
    """Yield the decrypted PEM material for the bot, and overwrite the plaintext buffer afterwards.

    Only the worker calls this. Raises ServiceError if the material was destroyed, and
    crypto.DecryptionFailed if the row was tampered with or the master key is wrong.
    """
    from sii_bot.certificates import CertificateMaterial

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
        key_pem, cert_pem, chain_pem = _split_pem_material(bytes(plaintext))
        yield CertificateMaterial(cert_pem=cert_pem, key_pem=key_pem, chain_pem=chain_pem)
    finally:
        crypto.wipe(plaintext)


def _split_pem_material(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """Split the sealed payload (key PEM, leaf PEM, chain PEMs, as `certificate_store` joined them)."""
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


def certificates_purge_expired(*, now: Any = None) -> int:
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


# --- Demo -----------------------------------------------------------------------------------

DEMO_TENANT_SLUG = "pyme-contadores"
DEMO_PASSWORD = "autoriza-demo"
DEMO_USERS = (
    ("dueno@pymecontadores.cl", "Dueña", Role.OWNER),
    ("admin@pymecontadores.cl", "Administrador", Role.ADMIN),
    ("personal@pymecontadores.cl", "Personal", Role.STAFF),
)


def demo_tenant_ensure(*, sii_environment: str = SiiEnvironment.SANDBOX) -> Tenant:
    """Create (or reuse) the demo firm "PyME Contadores" with its representative and its users.

    Representative ALEX BRITO MARDONES 13.322.924-8 with Usuario Administrador, Firmar Documentos and
    Registro, as in SII's guide. Users (password DEMO_PASSWORD): an owner, an admin and a staff
    member. Running it again changes nothing that exists.
    """
    from django.contrib.auth import get_user_model

    User = get_user_model()
    with transaction.atomic():
        tenant, created = Tenant.objects.get_or_create(
            slug=DEMO_TENANT_SLUG,
            defaults={
                "name": "PyME Contadores",
                "sii_environment": sii_environment,
                "grant_admin": True,
                "grant_sign": True,
                "grant_registry": True,
                "notification_emails": "avisos@pymecontadores.cl",
            },
        )
        if not tenant.representatives.exists():
            representative_add(tenant=tenant, rut="13.322.924-8", name="ALEX BRITO MARDONES")
        for email, first_name, role in DEMO_USERS:
            user = User.objects.filter(username=email).first()
            if user is None:
                user = User.objects.create_user(username=email, email=email, password=DEMO_PASSWORD, first_name=first_name)
            if not Membership.objects.filter(tenant=tenant, user=user).exists():
                membership_add(tenant=tenant, user=user, role=role)
        if created:
            audit_record(tenant=tenant, actor=None, action=AuditAction.SETTINGS, summary="Estudio de demostración creado")
    return tenant


# --- Invitation links -----------------------------------------------------------------------

INVITATION_SALT = "autoriza.invitation"


def invitation_token(*, invitation: Any) -> str:
    """A signed token naming the invitation; the link is `client:signup` + `?invitacion=<token>`."""
    from django.core import signing

    return signing.TimestampSigner(salt=INVITATION_SALT).sign(str(invitation.pk))


def invitation_from_token(*, token: str, tenant: Tenant) -> Any:
    """The open Invitation of `tenant` named by a valid, unexpired token, or None.

    None for a forged or tampered token, another tenant's invitation, or one that is revoked,
    accepted or past `expires_at`.
    """
    from django.core import signing

    from onboarding.models import Invitation

    try:
        pk = signing.TimestampSigner(salt=INVITATION_SALT).unsign(token)
    except signing.BadSignature:
        return None
    invitation = Invitation.objects.select_related("company").filter(pk=pk, tenant=tenant).first()
    if invitation is None or not invitation.is_open():
        return None
    return invitation
