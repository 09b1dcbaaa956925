"""Writes of the onboarding domain (HackSoft style: keyword-only, `<entity>_<action>` names).

Views and tasks call these; nothing else writes the models. Every function that changes a client's
state also records what a person did in the audit log when there is a person behind it.
"""
from __future__ import annotations

import logging
import os
import random
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from onboarding import crypto
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    ArtifactKind,
    AuditAction,
    AuditEntry,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobArtifact,
    JobEvent,
    JobStatus,
    Membership,
    Representative,
    Role,
    SiiEnvironment,
    Tenant,
)
from sii_bot.rut import normalize_rut

if TYPE_CHECKING:
    from sii_bot import EnrollmentResult, ProgressEvent
    from sii_bot.certificates import CertificateBundle, CertificateMaterial
    from sii_bot.settings import SiiSettings

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


def _company_set_stage(company: ClientCompany, stage: str) -> None:
    ClientCompany.objects.filter(pk=company.pk).update(stage=stage, stage_changed_at=timezone.now())
    company.stage = stage


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


# --- Enrollment jobs ------------------------------------------------------------------------


def _enqueue(job: EnrollmentJob) -> None:
    """Send the job's id (never anything secret) to the browser queue once the transaction commits."""
    from onboarding.tasks import enrollment_job_run

    job_id = str(job.pk)

    def send() -> None:
        EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(enqueued_at=timezone.now())
        enrollment_job_run.delay(job_id)

    transaction.on_commit(send)


def enrollment_job_create(
    *,
    company: ClientCompany,
    certificate: Certificate,
    created_by: AbstractBaseUser | None,
    representative: Representative | None = None,
    rerun_of: EnrollmentJob | None = None,
    kind: str | None = None,
    old_user_rut: str = "",
    old_user_name: str = "",
) -> EnrollmentJob:
    """Create a QUEUED job authorizing the tenant's representative in `company`, enqueued on commit.

    Copies what is requested (representative, permissions) onto the job. Raises ServiceError when an
    attempt for this client is already queued or running, or the tenant has no representative.

    `kind` (a `JobKind`, AUTHORIZE by default): REVOKE removes `representative` (its RUT is the
    job's `user_rut`); REPLACE authorizes `representative` and then removes `old_user_rut`. A re-run
    of a REVOKE/REPLACE job repeats exactly what it asked (same kind, same people).
    """
    from onboarding.models import JobKind  # revocation/replacement (services.changes)

    tenant = company.tenant
    # Revocation/replacement: a re-run repeats the failed job's kind and people, not today's settings.
    if kind is None and rerun_of is not None and rerun_of.kind != JobKind.AUTHORIZE:
        kind = rerun_of.kind
        representative = representative or rerun_of.representative
        old_user_rut = old_user_rut or rerun_of.old_user_rut
        old_user_name = old_user_name or rerun_of.old_user_name
    kind = kind or JobKind.AUTHORIZE
    if kind == JobKind.REPLACE and not old_user_rut:
        raise ServiceError("Falta el representante a reemplazar.", code="replace_without_old")
    representative = representative or tenant.representatives.filter(is_active=True).order_by("created_at").first()
    if representative is None:
        raise ServiceError(
            "El estudio contable aún no ha configurado a su representante. Avísele a su contador.",
            code="no_representative",
        )
    with transaction.atomic():
        # Lock the company row so two concurrent requests compute distinct attempt numbers.
        ClientCompany.objects.select_for_update().filter(pk=company.pk).first()
        if EnrollmentJob.objects.filter(company=company, status__in=ACTIVE_JOB_STATUSES).exists():
            raise ServiceError(
                "Ya hay una autorización en curso para esta empresa. Espere a que termine.",
                code="job_already_active",
            )
        last = EnrollmentJob.objects.filter(company=company).order_by("-attempt").values_list("attempt", flat=True).first()
        try:
            with transaction.atomic():
                job = EnrollmentJob.objects.create(
                    tenant=tenant,
                    company=company,
                    certificate=certificate,
                    representative=representative,
                    user_rut=representative.rut,
                    user_name=representative.name,
                    kind=kind,  # revocation/replacement (services.changes)
                    old_user_rut=old_user_rut,
                    old_user_name=old_user_name,
                    grant_admin=tenant.grant_admin,
                    grant_sign=tenant.grant_sign,
                    grant_registry=tenant.grant_registry,
                    attempt=(last or 0) + 1,
                    rerun_of=rerun_of,
                    created_by=created_by,
                )
        except IntegrityError:
            raise ServiceError(
                "Ya hay una autorización en curso para esta empresa. Espere a que termine.",
                code="job_already_active",
            ) from None
        JobEvent.objects.create(
            tenant=tenant, job=job, step="queued", status="info", message="Solicitud recibida; en cola para el SII."
        )
        _company_set_stage(company, CompanyStage.QUEUED)
        _enqueue(job)
    return job


def _attempt_label(job: EnrollmentJob) -> str:
    """"Retiro, intento 1": the job's number among its company's jobs of its kind (one query)."""
    from onboarding.domain.display import attempt_label

    number = EnrollmentJob.objects.filter(company_id=job.company_id, kind=job.kind, attempt__lte=job.attempt).count()
    return attempt_label(kind=job.kind, number=number)


def enrollment_job_rerun(*, job: EnrollmentJob, actor: AbstractBaseUser) -> EnrollmentJob:
    """Re-run a FAILED job as a new attempt linked to it (never a reset), audited.

    Raises ServiceError if the job did not fail, was already re-run, the certificate is gone, or an
    attempt for the client is already queued or running.
    """
    if job.status != JobStatus.FAILED:
        raise ServiceError("Solo se pueden reintentar trabajos con error.", code="not_failed")
    if EnrollmentJob.objects.filter(rerun_of=job).exists():
        raise ServiceError("Este intento ya fue reintentado; revise el intento más reciente.", code="already_rerun")
    certificate = job.certificate
    if certificate is None or not certificate.is_usable:
        raise ServiceError(
            "El certificado de este cliente ya no está guardado: pídale que lo suba nuevamente.",
            code="certificate_missing",
        )
    new_job = enrollment_job_create(company=job.company, certificate=certificate, created_by=actor, rerun_of=job)
    audit_record(
        tenant=job.tenant,
        actor=actor,
        action=AuditAction.RERUN,
        company=job.company,
        summary=f"Reintento de {_attempt_label(job)} de {job.company.legal_name}",
        details={"job": str(job.pk), "new_job": str(new_job.pk), "failure_code": job.failure_code},
    )
    return new_job


def enrollment_job_claim(*, job_id: str, worker: str) -> EnrollmentJob | None:
    """Move a QUEUED, due job to RUNNING (compare-and-set). Returns it, or None if someone else has it.

    A redelivered broker message therefore never runs a job twice.
    """
    now = timezone.now()
    claimed = (
        EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.QUEUED)
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
        .update(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200])
    )
    if not claimed:
        # Reliability: a message redelivered after its worker process died (acks_late +
        # reject_on_worker_lost requeue it at once when a pool process is killed) used to find the job
        # RUNNING and do nothing, leaving it to the reaper minutes later. Take it over instead when the
        # recorded process provably no longer runs on this host; the bot is idempotent (it reads the
        # user list first and answers "already_authorized"), so resuming never authorizes twice.
        return _job_take_over(job_id=job_id, worker=worker)
    job = EnrollmentJob.objects.select_related("tenant", "company", "certificate", "representative").get(pk=job_id)
    _company_set_stage(job.company, CompanyStage.RUNNING)
    return job


# --- Jobs whose worker process died ----------------------------------------------------------
#
# A claimed job records the claiming process as "host pid=N start=T ns=I boot=B" (see
# `worker_identity`). Another process on the same host can then tell for certain that the claimer is
# dead: same host name, same boot, same PID namespace, and no process with that PID and start time.
# Anything else (another host or container, an unparsable or old-style value, /proc unreadable)
# counts as "maybe alive", and only the heartbeat reaper may end the job.

_IDENTITY = re.compile(
    r"^(?P<host>\S+) pid=(?P<pid>\d+) start=(?P<start>\d+) ns=(?P<ns>\d+) boot=(?P<boot>[0-9a-f-]+)$"
)
_WORKER_LOST_MESSAGE = (
    "El proceso que ejecutaba la autorización se interrumpió. Un administrador puede volver a intentarla."
)


def _proc_start_ticks(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live process, None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent: dead all the same
        return None
    return fields[19]


def _host_facts() -> tuple[str, str, str] | None:
    """(host name, PID namespace inode, boot id) of this process, or None where /proc is missing."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return socket.gethostname(), namespace, boot


def worker_identity() -> str:
    """How a claiming process names itself on the job row (readable on the staff job page too)."""
    facts = _host_facts()
    start = _proc_start_ticks(os.getpid()) if facts else None
    if facts is None or start is None:
        return socket.gethostname()
    host, namespace, boot = facts
    return f"{host} pid={os.getpid()} start={start} ns={namespace} boot={boot}"


def worker_is_dead(recorded: str) -> bool:
    """True only if `recorded` (a job's `worker`) names a process of this host that no longer runs."""
    match = _IDENTITY.match(recorded or "")
    facts = _host_facts()
    if match is None or facts is None:
        return False
    if (match["host"], match["ns"], match["boot"]) != facts:
        return False
    try:
        return _proc_start_ticks(int(match["pid"])) != match["start"]
    except (OSError, IndexError, ValueError):
        return False  # cannot tell: leave it to the reaper


def _job_take_over(*, job_id: str, worker: str) -> EnrollmentJob | None:
    """Resume a RUNNING job whose claimer is dead (compare-and-set on the recorded worker).

    Counts as an automatic retry: past AUTORIZA_JOB_MAX_RETRIES the job is failed as `worker_lost`
    instead, so a job that kills its worker every time cannot loop. Returns the job or None.
    """
    row = EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).values_list("worker", "retry_count").first()
    if row is None or not worker_is_dead(row[0]):
        return None
    recorded, retry_count = row
    job = EnrollmentJob.objects.select_related("tenant", "company", "certificate", "representative").get(pk=job_id)
    if retry_count >= settings.AUTORIZA_JOB_MAX_RETRIES:
        _job_finish_failed(
            job, code="worker_lost", message=_WORKER_LOST_MESSAGE, retryable=True,
            detail=f"worker process died ({recorded}); retry budget exhausted",
        )
        return None
    now = timezone.now()
    with transaction.atomic():
        taken = EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, worker=recorded).update(
            worker=worker[:200], started_at=now, heartbeat_at=now, retry_count=retry_count + 1
        )
        if not taken:
            return None  # another process took it over first
        JobEvent.objects.create(
            tenant_id=job.tenant_id, job=job, step="retry", status="info",
            message=(
                "El proceso que ejecutaba la autorización se interrumpió; la retomamos automáticamente "
                f"(reintento {retry_count + 1} de {settings.AUTORIZA_JOB_MAX_RETRIES})."
            ),
        )
    logger.warning("job %s taken over from dead worker %s", job_id, recorded)
    job.refresh_from_db()
    return job


def enrollment_jobs_recover_orphans() -> int:
    """At worker start: put back in the queue the RUNNING jobs whose claiming process on this host
    died (a whole worker killed: its message may be gone with it, e.g. the filesystem broker, or come
    back only after Redis' visibility timeout). Past the retry budget they fail as `worker_lost`.

    Returns how many jobs were re-queued.
    """
    requeued = 0
    for job in EnrollmentJob.objects.filter(status=JobStatus.RUNNING).select_related("tenant", "company"):
        if not worker_is_dead(job.worker):
            continue
        if job.retry_count >= settings.AUTORIZA_JOB_MAX_RETRIES:
            _job_finish_failed(
                job, code="worker_lost", message=_WORKER_LOST_MESSAGE, retryable=True,
                detail=f"worker process died ({job.worker}); retry budget exhausted",
            )
            continue
        with transaction.atomic():
            moved = EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, worker=job.worker).update(
                status=JobStatus.QUEUED, retry_count=job.retry_count + 1, run_after=None, enqueued_at=None
            )
            if not moved:
                continue
            JobEvent.objects.create(
                tenant_id=job.tenant_id, job=job, step="retry", status="info",
                message=(
                    "El proceso que ejecutaba la autorización se interrumpió; la retomamos automáticamente "
                    f"(reintento {job.retry_count + 1} de {settings.AUTORIZA_JOB_MAX_RETRIES})."
                ),
            )
            _company_set_stage(job.company, CompanyStage.QUEUED)
            _enqueue(job)
        logger.warning("job %s re-queued: its worker %s died", job.pk, job.worker)
        requeued += 1
    return requeued


def sii_settings_for(tenant: Tenant) -> SiiSettings:
    """The SII endpoints for the tenant's environment (sandbox reads SII_* from the environment)."""
    from sii_bot.settings import SiiSettings

    if tenant.sii_environment == SiiEnvironment.SANDBOX:
        return SiiSettings.from_env()
    return SiiSettings.for_environment(tenant.sii_environment)


def _record_progress(job: EnrollmentJob, event: ProgressEvent) -> None:
    JobEvent.objects.create(
        tenant_id=job.tenant_id,
        job=job,
        step=event.step.value,
        status=event.status,
        message=event.message,
        created_at=event.at,
    )
    EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
    if event.screenshot:
        job_artifact_store(job=job, kind=ArtifactKind.SCREENSHOT, step=event.step.value, content=event.screenshot)


def enrollment_job_execute(*, job_id: str, worker: str | None = None) -> EnrollmentJob | None:
    """Run one job end to end in this worker: claim, decrypt in memory, drive the SII, record.

    Returns the finished (or re-queued) job, or None when the job was not claimable (already taken,
    finished, or not yet due). Never leaves the job RUNNING: every exception ends in a FAILED row.
    """
    from sii_bot.errors import EnrollmentFailure

    job = enrollment_job_claim(job_id=job_id, worker=worker or socket.gethostname())
    if job is None:
        logger.info("job %s not claimable (already taken, finished or not due)", job_id)
        return None
    logger.info("job %s claimed (attempt %s, retry %s)", job.pk, job.attempt, job.retry_count)
    try:
        if job.certificate is None:
            raise ServiceError(
                "El certificado ya no está guardado. Suba su certificado nuevamente para continuar.",
                code="certificate_missing",
            )
        # Revocation/replacement (services.changes): the job's kind picks the bot's entry point.
        from onboarding.services import changes

        bot_call, request = changes.job_bot_call(job=job)
        with certificate_opened(certificate=job.certificate) as material:
            result = bot_call(
                request,
                certificate=material,
                settings=sii_settings_for(job.tenant),
                on_progress=lambda event: _record_progress(job, event),
            )
    except EnrollmentFailure as failure:
        # A replacement that added the new representative but could not remove the old one.
        partial = changes.job_replacement_incomplete(job=job, failure=failure)
        if partial is not None:
            return partial
        return _job_failed_or_retry(job, failure)
    except ServiceError as error:
        return _job_finish_failed(job, code=error.code, message=error.message, retryable=False, detail=error.code)
    except crypto.DecryptionFailed:
        logger.error("job %s: certificate material does not decrypt", job.pk)
        return _job_finish_failed(
            job,
            code="certificate_unreadable",
            message="No pudimos leer el certificado guardado. Suba su certificado nuevamente.",
            retryable=False,
            detail="sealed material failed to decrypt (wrong master key or tampered row)",
        )
    except BaseException as exc:  # noqa: BLE001 - a job must never stay RUNNING
        from celery.exceptions import SoftTimeLimitExceeded

        timed_out = isinstance(exc, SoftTimeLimitExceeded)
        logger.exception("job %s crashed", job.pk) if not timed_out else logger.warning("job %s timed out", job.pk)
        _job_finish_failed(
            job,
            code="timeout" if timed_out else "internal_error",
            message=(
                "La autorización tardó más de lo esperado y se detuvo. Un administrador puede volver a intentarla."
                if timed_out
                else "Ocurrió un error inesperado de nuestra parte. Nuestro equipo fue notificado; "
                "un administrador puede volver a intentarlo."
            ),
            retryable=True,
            detail=type(exc).__name__,
        )
        if not isinstance(exc, Exception):
            raise
        return job
    if job.kind != "authorize":  # REVOKE / REPLACE (services.changes) record their own results
        from onboarding.services import changes

        return changes.change_job_succeeded(job=job, result=result)
    return _job_succeeded(job, result)


def _job_succeeded(job: EnrollmentJob, result: EnrollmentResult) -> EnrollmentJob:
    now = timezone.now()
    with transaction.atomic():
        EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED,
            finished_at=now,
            heartbeat_at=now,
            outcome=result.outcome,
            result=result.record.to_dict(),
            failure_code="",
            failure_message="",
            failure_retryable=False,
            failure_detail="",
        )
        _company_set_stage(job.company, CompanyStage.AUTHORIZED)
        # What the SII now holds for this firm in this company (the parsed record, not the request).
        ClientCompany.objects.filter(pk=job.company_id).update(
            sii_user_rut=result.record.user_rut,
            sii_admin=result.record.admin,
            sii_sign=result.record.sign,
            sii_registry=result.record.registry,
            sii_synced_at=now,
        )
        if job.certificate is not None:
            # Consent covered one authorization: the key has done its job and is erased now.
            certificate_destroy(certificate=job.certificate, reason="job_succeeded")
        audit_record(
            tenant=job.tenant,
            actor=None,
            action=AuditAction.JOB_FINISHED,
            company=job.company,
            summary=f"{job.user_name} autorizado en {job.company.legal_name}",
            details={"job": str(job.pk), "outcome": result.outcome},
        )
        job.refresh_from_db()
        transaction.on_commit(lambda: _notify_finished(job))
    logger.info("job %s succeeded (%s)", job.pk, result.outcome)
    return job


def _retry_delay_seconds(job: EnrollmentJob, minimum: int | None) -> float:
    """Exponential backoff with full jitter (30 s, 60 s, 120 s…), never below what SII demands.

    Multiplied by AUTORIZA_JOB_RETRY_DELAY_SCALE (1.0 in production) so the reliability suite can run
    the same policy with every delay shrunk proportionally.
    """
    base = 30 * (2**job.retry_count)
    delay = int(base / 2 + random.uniform(0, base / 2))  # noqa: S311 - jitter, not crypto
    return max(delay, minimum or 0) * settings.AUTORIZA_JOB_RETRY_DELAY_SCALE


def _job_failed_or_retry(job: EnrollmentJob, failure: Any) -> EnrollmentJob:
    if failure.page_html:
        job_artifact_store(job=job, kind=ArtifactKind.PAGE_HTML, step=failure.step or "failure", content=failure.page_html.encode("utf-8"))
    if failure.screenshot:
        job_artifact_store(
            job=job, kind=ArtifactKind.SCREENSHOT, step=failure.step or "failure", content=failure.screenshot,
            unless_stored=True,
        )
    if failure.retryable and job.retry_count < settings.AUTORIZA_JOB_MAX_RETRIES:
        delay = _retry_delay_seconds(job, failure.retry_after_seconds)
        run_after = timezone.now() + timedelta(seconds=delay)
        with transaction.atomic():
            moved = EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
                status=JobStatus.QUEUED,
                retry_count=job.retry_count + 1,
                run_after=run_after,
                enqueued_at=None,
                failure_code=failure.code,
                failure_message=failure.user_message,
                failure_retryable=True,
                failure_detail=failure.detail[:2000],
            )
            if moved:
                JobEvent.objects.create(
                    tenant_id=job.tenant_id,
                    job=job,
                    step="retry",
                    status="info",
                    # user_message already says that we will retry; add only which retry and when.
                    message=(
                        f"{failure.user_message} (Reintento {job.retry_count + 1} de "
                        f"{settings.AUTORIZA_JOB_MAX_RETRIES}, en unos {max(1, round(delay / 60))} min.)"
                    ),
                )
                _company_set_stage(job.company, CompanyStage.QUEUED)
        logger.info("job %s: %s, retry %s in %ss", job.pk, failure.code, job.retry_count + 1, delay)
        job.refresh_from_db()
        return job
    # A transient failure's own message promises an automatic retry; none is left now.
    message = (
        "No pudimos completar la autorización: el SII siguió sin responder como esperábamos después de "
        "los reintentos automáticos. Un administrador del estudio puede volver a intentarlo más tarde."
        if failure.retryable
        else failure.user_message
    )
    return _job_finish_failed(job, code=failure.code, message=message, retryable=failure.retryable, detail=failure.detail)


def _job_finish_failed(job: EnrollmentJob, *, code: str, message: str, retryable: bool, detail: str) -> EnrollmentJob:
    """Record a RUNNING job as FAILED (compare-and-set), audited, the client and firm emailed after
    commit; returns the job as stored.

    When the SII refused the certificate itself (`SII_REJECTED_CERTIFICATE_CODES`) the job's
    certificate is destroyed too (reason "sii_rejected"): it could only fail the same way again, so
    the owner is asked for another one instead of being offered it again.
    """
    from onboarding.selectors.client import SII_REJECTED_CERTIFICATE_CODES

    now = timezone.now()
    with transaction.atomic():
        finished = EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED,
            finished_at=now,
            heartbeat_at=now,
            failure_code=code,
            failure_message=message,
            failure_retryable=retryable,
            failure_detail=(detail or "")[:2000],
        )
        if finished:
            JobEvent.objects.create(tenant_id=job.tenant_id, job=job, step="finished", status="failed", message=message)
            _company_set_stage(job.company, CompanyStage.FAILED)
            certificate_destroyed = False
            if code in SII_REJECTED_CERTIFICATE_CODES and job.certificate is not None:
                certificate_destroyed = certificate_destroy(certificate=job.certificate, reason="sii_rejected")
            audit_record(
                tenant=job.tenant,
                actor=None,
                action=AuditAction.JOB_FINISHED,
                company=job.company,
                summary=f"Falló la autorización en {job.company.legal_name}: {code}",
                details={"job": str(job.pk), "failure_code": code, "certificate_destroyed": certificate_destroyed},
            )
            job.refresh_from_db()
            transaction.on_commit(lambda: _notify_finished(job))
    logger.info("job %s failed: %s", job.pk, code)
    return job


def enrollment_jobs_dispatch(*, lost_after: timedelta | None = None) -> int:
    """Enqueue QUEUED jobs that are due and have no live message (scheduled retries, lost messages).

    The database is the source of truth; a message the broker lost is sent again. Returns how many
    jobs were enqueued. Duplicates are harmless: the claim is a compare-and-set.
    """
    from onboarding.tasks import enrollment_job_run

    # The threshold is a setting (AUTORIZA_JOB_LOST_AFTER_SECONDS, default 10 min) so the broker-crash
    # tests can prove the recovery in seconds.
    lost_after = lost_after if lost_after is not None else timedelta(seconds=settings.AUTORIZA_JOB_LOST_AFTER_SECONDS)
    now = timezone.now()
    due = EnrollmentJob.objects.filter(status=JobStatus.QUEUED).filter(
        Q(run_after__isnull=True) | Q(run_after__lte=now)
    ).filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - lost_after))
    count = 0
    for job_id in due.values_list("pk", flat=True)[:500]:
        if EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(enqueued_at=now):
            enrollment_job_run.delay(str(job_id))
            count += 1
    return count


def enrollment_jobs_reap(*, stale_after: timedelta | None = None) -> int:
    """End RUNNING jobs whose worker stopped reporting (killed, lost) as FAILED and re-runnable.

    Returns how many jobs were reaped. A job reports at every step; the limit is the hard time limit
    plus a margin, so a live job is never reaped.
    """
    # A setting (AUTORIZA_JOB_REAP_AFTER_SECONDS, default hard time limit + 60 s) so the reaper test can
    # run the real periodic reaper with a threshold of seconds.
    stale_after = stale_after or timedelta(seconds=settings.AUTORIZA_JOB_REAP_AFTER_SECONDS)
    cutoff = timezone.now() - stale_after
    reaped = 0
    stale = EnrollmentJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    for job in stale.select_related("tenant", "company"):
        done = _job_finish_failed(
            job,
            code="worker_lost",
            message=_WORKER_LOST_MESSAGE,
            retryable=True,
            detail="no heartbeat since " + (job.heartbeat_at.isoformat() if job.heartbeat_at else "start"),
        )
        reaped += done.status == JobStatus.FAILED
    return reaped


def _notify_finished(job: EnrollmentJob) -> None:
    """Email the client and the firm about a finished job (console backend by default).

    The texts (and the links: the client's status page, the firm's job page) come from
    `services.client.job_finished_emails`.
    """
    from onboarding.models import JobKind
    from onboarding.services.changes import change_job_finished_emails
    from onboarding.services.client import job_finished_emails

    # Revocation/replacement jobs (services.changes) have their own texts.
    emails = job_finished_emails if job.kind == JobKind.AUTHORIZE else change_job_finished_emails
    for email in emails(job=job):
        try:
            send_mail(email.subject, email.body, None, email.recipients)
        except Exception:  # noqa: BLE001 - a mail outage must not change the job's outcome
            logger.exception("job %s: notification email failed", job.pk)


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
