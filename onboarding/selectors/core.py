"""Reads of the onboarding domain. Every selector takes the tenant it reads from: nothing here can
return another tenant's rows, because every queryset starts from a tenant filter."""
from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, QuerySet

from onboarding.models import (
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobEvent,
    Membership,
    Tenant,
)

__all__ = [
    "company_get",
    "company_list",
    "company_stage_counts",
    "job_attempts",
    "job_events",
    "job_get",
    "job_kind_number",
    "job_list",
    "membership_get",
    "memberships_of",
    "parse_uuid",
]


def membership_get(*, user: AbstractBaseUser, tenant_slug: str) -> Membership | None:
    """The user's membership in the tenant with this slug, or None."""
    if not user.is_authenticated:
        return None
    return Membership.objects.select_related("tenant").filter(user=user, tenant__slug=tenant_slug).first()


def memberships_of(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    """Every firm the user belongs to, with the tenant loaded."""
    return Membership.objects.select_related("tenant").filter(user=user).order_by("tenant__name")


def company_list(*, tenant: Tenant) -> QuerySet[ClientCompany]:
    """The tenant's client companies, newest first."""
    return ClientCompany.objects.filter(tenant=tenant).order_by("-created_at")


def company_get(*, tenant: Tenant, company_id: int) -> ClientCompany | None:
    """One client company of the tenant, or None (also for another tenant's id)."""
    return ClientCompany.objects.filter(tenant=tenant, pk=company_id).first()


def company_stage_counts(*, tenant: Tenant) -> dict[str, int]:
    """How many of the tenant's clients are in each stage (every stage present, zeros included)."""
    counts = dict.fromkeys(CompanyStage.values, 0)
    rows = ClientCompany.objects.filter(tenant=tenant).values("stage").annotate(n=Count("id")).order_by()
    counts.update({row["stage"]: row["n"] for row in rows})
    return counts


def job_list(*, tenant: Tenant) -> QuerySet[EnrollmentJob]:
    """The tenant's jobs, newest first, with company and representative loaded."""
    return (
        EnrollmentJob.objects.filter(tenant=tenant)
        .select_related("company", "representative")
        .order_by("-created_at")
    )


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID in `value`, or None if it is not one (so malformed URLs are a plain 404)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def job_get(*, tenant: Tenant, job_id: object) -> EnrollmentJob | None:
    """One job of the tenant, or None (also for another tenant's id or a malformed id)."""
    pk = parse_uuid(job_id)
    if pk is None:
        return None
    return job_list(tenant=tenant).select_related("certificate", "rerun_of").filter(pk=pk).first()


def job_attempts(*, job: EnrollmentJob) -> QuerySet[EnrollmentJob]:
    """Every attempt for the same client as `job`, newest first."""
    return EnrollmentJob.objects.filter(tenant_id=job.tenant_id, company_id=job.company_id).order_by("-attempt")


def job_kind_number(*, job: EnrollmentJob) -> int:
    """`job`'s number among its company's jobs of the same kind (one query): "Retiro, intento 1"."""
    return EnrollmentJob.objects.filter(
        tenant_id=job.tenant_id, company_id=job.company_id, kind=job.kind, attempt__lte=job.attempt
    ).count()


def job_events(*, job: EnrollmentJob) -> QuerySet[JobEvent]:
    """The job's timeline, oldest first."""
    return JobEvent.objects.filter(tenant_id=job.tenant_id, job=job).order_by("created_at", "id")

