"""What the firm's staff do about jobs: re-running failed jobs (in bulk), running a scheduled
automatic retry now, and asking a client for a new certificate when theirs is gone.

HackSoft style: keyword-only arguments, `<entity>_<action>` names, a `ServiceError` with a Spanish
message for every refusal; each one is audited.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from onboarding import selectors
from onboarding.domain.display import (
    CERTIFICATE_REQUEST_MARKER,
    attempt_label,
    greeting,
    job_kind_noun,
    rut_display,
)
from onboarding.models import (
    AuditAction,
    AuditEntry,
    ClientCompany,
    EnrollmentJob,
    JobStatus,
    Relationship,
    Tenant,
)
from onboarding.services.audit import audit_record
from onboarding.services.client import certificate_upload_link
from onboarding.services.errors import ServiceError
from onboarding.services.jobs.dispatch import enrollment_jobs_dispatch
from onboarding.services.jobs.lifecycle import enrollment_job_rerun

logger = logging.getLogger(__name__)

__all__ = [
    "CERTIFICATE_REQUEST_EVERY_HOURS",
    "RERUN_BULK_MAX",
    "RerunOutcome",
    "company_certificate_request",
    "enrollment_job_retry_now",
    "enrollment_jobs_rerun",
]

# At most this many jobs in one bulk re-run request (the dashboard page holds 50 rows).
RERUN_BULK_MAX = 200


# --- Re-runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RerunOutcome:
    """What happened to one job of a bulk re-run: a new attempt, or the Spanish reason it was refused."""

    job_id: str
    company: ClientCompany | None
    new_job: EnrollmentJob | None
    message: str

    @property
    def ok(self) -> bool:
        return self.new_job is not None


def enrollment_jobs_rerun(*, tenant: Tenant, job_ids: list[Any], actor: AbstractBaseUser) -> list[RerunOutcome]:
    """Re-run each of these failed jobs of the tenant (each through `enrollment_job_rerun`: a new
    attempt linked to the failed one, audited) and report each one, in the order given.

    Refusals (not failed, already re-run, certificate gone, an attempt already in flight) are reported
    per job and don't stop the others. Ids that are not this tenant's jobs are reported as not found.
    Raises ServiceError if more than RERUN_BULK_MAX ids are given.
    """
    if len(job_ids) > RERUN_BULK_MAX:
        raise ServiceError(
            f"Seleccione como máximo {RERUN_BULK_MAX} trabajos por vez.", code="too_many"
        )
    jobs = {str(job.pk): job for job in selectors.jobs_for_rerun(tenant=tenant, job_ids=job_ids)}
    outcomes: list[RerunOutcome] = []
    for raw in dict.fromkeys(str(value) for value in job_ids):
        parsed = selectors.parse_uuid(raw)
        job = jobs.get(str(parsed)) if parsed else None
        if job is None:
            outcomes.append(RerunOutcome(job_id=raw, company=None, new_job=None, message="Trabajo no encontrado."))
            continue
        try:
            new_job = enrollment_job_rerun(job=job, actor=actor)
        except ServiceError as error:
            outcomes.append(RerunOutcome(job_id=raw, company=job.company, new_job=None, message=error.message))
        else:
            outcomes.append(
                RerunOutcome(
                    job_id=raw, company=job.company, new_job=new_job, message=f"{attempt_label(kind=new_job.kind, number=selectors.job_kind_number(job=new_job))} en cola."
                )
            )
    return outcomes


# --- Asking a client for a new certificate ------------------------------------------------------

# A client is e-mailed a request for a new certificate at most once in this many hours (per company),
# so a busy dashboard cannot flood anyone's inbox.
CERTIFICATE_REQUEST_EVERY_HOURS = 12


def company_certificate_request(*, company: ClientCompany, actor: AbstractBaseUser | None) -> ClientCompany:
    """E-mail the client's contact a link to upload a new certificate (their stored one is gone, so
    the firm cannot retry), audited as an INVITATION entry marked `certificate_request`.

    At most once every CERTIFICATE_REQUEST_EVERY_HOURS per company. Raises ServiceError when the
    relationship ended, the client has no e-mail, or the client was asked too recently (the message
    says since when and from when it may be asked again). Returns the company.
    """
    if company.relationship == Relationship.ENDED:
        raise ServiceError("La relación con este cliente terminó: no hay nada que pedirle.", code="relationship_ended")
    email = (company.owner_email or "").strip()
    if not email:
        raise ServiceError(
            "Este cliente no tiene un correo registrado: pídale el certificado por otro medio.", code="no_email"
        )
    now = timezone.now()
    with transaction.atomic():
        # One request at a time per company: two clicks at once cannot both pass the check below.
        ClientCompany.objects.select_for_update().filter(pk=company.pk).first()
        last = (
            AuditEntry.objects.filter(
                tenant_id=company.tenant_id,
                company=company,
                action=AuditAction.INVITATION,
                created_at__gte=now - timedelta(hours=CERTIFICATE_REQUEST_EVERY_HOURS),
                **{f"details__{CERTIFICATE_REQUEST_MARKER}": True},
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if last is not None:
            asked = timezone.localtime(last)
            again = timezone.localtime(last + timedelta(hours=CERTIFICATE_REQUEST_EVERY_HOURS))
            raise ServiceError(
                f"Ya le pedimos un nuevo certificado a este cliente el {asked:%d-%m-%Y} a las {asked:%H:%M}. "
                f"Para no llenar su correo, puede volver a pedirlo desde el {again:%d-%m-%Y} a las {again:%H:%M}.",
                code="too_soon",
            )
        latest = EnrollmentJob.objects.filter(tenant_id=company.tenant_id, company=company).order_by("-attempt").first()
        what = job_kind_noun(latest.kind).lower() if latest is not None else "autorización"
        tenant = company.tenant
        body = "\n".join(
            [
                greeting(company.owner_name),
                "",
                (
                    f"{tenant.name} necesita su certificado digital nuevamente para completar la {what} de "
                    f"{company.legal_name} (RUT {rut_display(company.rut)}) en el SII: el que usamos antes ya no "
                    "está guardado en nuestros sistemas."
                ),
                "",
                (
                    "Súbalo en el siguiente enlace. Antes de hacer cualquier cambio le mostraremos exactamente "
                    "qué se hará y le pediremos su consentimiento:"
                ),
                certificate_upload_link(company=company),
                "",
                "Si no esperaba este correo, puede ignorarlo.",
                "",
                f"— Autoriza, para {tenant.name}",
            ]
        )
        message = EmailMessage(
            subject=f"Se necesita un nuevo certificado digital: {company.legal_name}", body=body + "\n", to=[email]
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.INVITATION,
            company=company,
            summary=f"Pedido de nuevo certificado a {email} para {company.legal_name}",
            details={CERTIFICATE_REQUEST_MARKER: True, "email": email, "job": str(latest.pk) if latest else None},
        )

        def send() -> None:
            try:
                message.send()
            except Exception:
                logger.exception("certificate request e-mail for company %s failed", company.pk)

        transaction.on_commit(send)
    return company


# --- Running a scheduled retry now ------------------------------------------------------------------


def enrollment_job_retry_now(*, job: EnrollmentJob, actor: AbstractBaseUser | None) -> EnrollmentJob:
    """Run `job`'s scheduled automatic retry now instead of at `run_after` (the SII is back): a
    compare-and-set moves `run_after` to now, then the dispatcher enqueues it after commit, as it would
    have when the retry fell due. Audited. Returns the job as stored.

    Raises ServiceError when the job is not waiting for a retry (it ran, finished, or is due anyway),
    or when its failure demands a minimum wait that has not passed (the message says until when).
    """
    state = selectors.job_retry_now_state(job=job)
    if state is None:
        raise ServiceError(
            "Este trabajo no está esperando un reintento automático: revise su estado.", code="not_waiting"
        )
    if not state.allowed:
        raise ServiceError(state.reason, code="sii_minimum_wait")
    now = timezone.now()
    with transaction.atomic():
        # enqueued_at cleared too: the dispatcher sends only jobs without a live message.
        moved = EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED, run_after__gt=now).update(
            run_after=now, enqueued_at=None
        )
        if not moved:
            raise ServiceError(
                "El reintento ya comenzó o el trabajo cambió mientras tanto: revise su estado.", code="changed_meanwhile"
            )
        label = attempt_label(kind=job.kind, number=selectors.job_kind_number(job=job))
        audit_record(
            tenant=job.tenant,
            actor=actor,
            action=AuditAction.RERUN,
            company=job.company,
            summary=f"Reintento inmediato de {label} de {job.company.legal_name}",
            details={"job": str(job.pk), "failure_code": job.failure_code, "retry_now": True},
        )
        # The periodic dispatcher's own pass: the one way a job is sent to the queue.
        transaction.on_commit(enrollment_jobs_dispatch)
    job.refresh_from_db()
    return job
