"""Builders shared by the firm-side tests (imported as `tests.onboarding.staff_factories`).

They write rows directly where the real path needs a worker (jobs in a given state, artifacts), and
go through services everywhere else, so the rows look like what production creates.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from onboarding import services
from onboarding.models import (
    ArtifactKind,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobArtifact,
    JobEvent,
    JobStatus,
)


def staff_url(name: str, **kwargs: object) -> str:
    """The URL of the firm page `staff:<name>` of tenant A (the cast's "pyme")."""
    return reverse(f"staff:{name}", kwargs={"tenant_slug": "pyme", **kwargs})


# Valid RUTs (check digit right) used across the tests.
RUTS = ("96874030-K", "60803000-K", "76369187-K", "11111111-1", "7880442-4", "12531909-2")


def company_make(tenant: Any, rut: str, name: str, *, stage: str = CompanyStage.WAITING_CERTIFICATE, **extra: Any) -> ClientCompany:
    """A client company of `tenant` in `stage` (through the service, then the stage forced)."""
    company = services.client_company_create(tenant=tenant, rut=rut, legal_name=name, stage=stage, **extra)
    return company


def certificate_make(company: ClientCompany, bundle: Any) -> Certificate:
    """A sealed, usable certificate for `company` (the conftest's `certificate_bundle`)."""
    return services.certificate_store(company=company, bundle=bundle, uploaded_by=None)


def job_make(
    company: ClientCompany,
    *,
    status: str = JobStatus.FAILED,
    certificate: Certificate | None = None,
    attempt: int | None = None,
    failure_code: str = "sii_unavailable",
    failure_message: str = "El SII no está disponible en este momento.",
    result: dict[str, Any] | None = None,
    rerun_of: EnrollmentJob | None = None,
    with_events: bool = True,
) -> EnrollmentJob:
    """A job of `company` already in `status` (as a worker would have left it), with its events,
    and the company's stage set to match."""
    representative = company.tenant.representatives.filter(is_active=True).order_by("created_at").first()
    if attempt is None:
        attempt = (EnrollmentJob.objects.filter(company=company).count() or 0) + 1
    now = timezone.now()
    finished = status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    job = EnrollmentJob.objects.create(
        tenant=company.tenant,
        company=company,
        certificate=certificate,
        representative=representative,
        user_rut=representative.rut,
        user_name=representative.name,
        status=status,
        attempt=attempt,
        rerun_of=rerun_of,
        created_at=now - timedelta(seconds=40),
        started_at=now - timedelta(seconds=35) if status != JobStatus.QUEUED else None,
        finished_at=now if finished else None,
        failure_code=failure_code if status == JobStatus.FAILED else "",
        failure_message=failure_message if status == JobStatus.FAILED else "",
        failure_detail="HTTP 500 on eu_enrola_usuarios" if status == JobStatus.FAILED else "",
        outcome="created" if status == JobStatus.SUCCEEDED else "",
        result=result,
    )
    if with_events:
        base = now - timedelta(seconds=40)
        JobEvent.objects.create(tenant=company.tenant, job=job, step="queued", status="info", message="En cola.", created_at=base)
        if status != JobStatus.QUEUED:
            JobEvent.objects.create(tenant=company.tenant, job=job, step="login", status="started", created_at=base + timedelta(seconds=5))
            JobEvent.objects.create(tenant=company.tenant, job=job, step="login", status="done", created_at=base + timedelta(seconds=7, milliseconds=400))
        if status == JobStatus.FAILED:
            JobEvent.objects.create(
                tenant=company.tenant, job=job, step="finished", status="failed", message=failure_message,
                created_at=base + timedelta(seconds=40),
            )
    stage = {
        JobStatus.QUEUED: CompanyStage.QUEUED,
        JobStatus.RUNNING: CompanyStage.RUNNING,
        JobStatus.SUCCEEDED: CompanyStage.AUTHORIZED,
        JobStatus.FAILED: CompanyStage.FAILED,
    }[status]
    ClientCompany.objects.filter(pk=company.pk).update(stage=stage, stage_changed_at=now)
    company.stage = stage
    return job


def artifact_make(job: EnrollmentJob, *, kind: str = ArtifactKind.SCREENSHOT, content: bytes | None = None) -> JobArtifact:
    """A sealed artifact of `job` (a tiny PNG header, or a hostile HTML page)."""
    if content is None:
        content = (
            b"\x89PNG\r\n\x1a\n fake png"
            if kind == ArtifactKind.SCREENSHOT
            else b"<html><script>alert('xss')</script><body>No ha sido posible completar su solicitud</body></html>"
        )
    return services.job_artifact_store(job=job, kind=kind, step="company", content=content)


def invitation_make(tenant: Any, rut: str, name: str, *, email: str = "contacto@empresa.cl", actor: Any = None) -> Invitation:
    """An invitation through the service (company INVITED, email sent to the locmem outbox)."""
    return services.invitation_create(
        tenant=tenant, rut=rut, legal_name=name, contact_name="Contacto Prueba", email=email, actor=actor
    )

