"""One client company as the firm sees it on its own page: the company, whether the firm's
representative is authorized there (and with what), the permissions requested there, its jobs."""
from __future__ import annotations

from dataclasses import dataclass

from onboarding.domain.display import permission_labels
from onboarding.domain.rules import (
    company_permissions_stale,
    company_requested_permissions,
    job_needs_person,
    representative_active,
    sii_user_name,
)
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    ClientCompany,
    EnrollmentJob,
    Permission,
    Representative,
    Tenant,
)

__all__ = ["CompanyPage", "company_page"]

# How many of the company's jobs its page lists (newest first); older ones stay in the audit log.
COMPANY_PAGE_JOBS = 50


@dataclass(frozen=True)
class CompanyPage:
    """What the firm's page for one client shows.

    `authorization`: "authorized" (the SII holds the firm's active representative), "other" (it holds
    someone else of the firm: a replacement is due), "none" (nobody yet). `held_labels`: the attributes
    the SII holds for that person; `requested_labels`: the ones requested in this company now
    (`overridden`: by a choice of its own, else the firm's setting); `unavailable_labels`: requested
    ones the company's SII page did not offer at the last job; `stale`: held and requested differ.
    `jobs`: newest first, each with `needs_person` set; `active_job`: the one queued or running, if any
    (a change now would wait for it).
    """

    company: ClientCompany
    representative: Representative | None
    authorization: str
    holder_name: str
    held_labels: tuple[str, ...]
    requested: tuple[str, ...]
    requested_labels: tuple[str, ...]
    overridden: bool
    unavailable_labels: tuple[str, ...]
    stale: bool
    jobs: list[EnrollmentJob]
    active_job: EnrollmentJob | None


def company_page(*, tenant: Tenant, company: ClientCompany) -> CompanyPage:
    """The page of `company` (a company of `tenant`, already checked by the caller's access helper)."""
    company.tenant = tenant
    representative = representative_active(tenant)
    if not company.sii_user_rut:
        authorization = "none"
    elif representative is not None and company.sii_user_rut == representative.rut:
        authorization = "authorized"
    else:
        authorization = "other"
    held = [str(code) for code in Permission.values if code in company.sii_permissions]
    requested = company_requested_permissions(company)
    unavailable = [str(code) for code in Permission.values if code in set(company.sii_unavailable or ())]
    jobs = list(
        EnrollmentJob.objects.filter(tenant=tenant, company=company)
        .select_related("representative")
        .order_by("-created_at")[:COMPANY_PAGE_JOBS]
    )
    for job in jobs:
        job.needs_person = job_needs_person(job)  # type: ignore[attr-defined]
    return CompanyPage(
        company=company,
        representative=representative,
        authorization=authorization,
        holder_name=sii_user_name(company) if company.sii_user_rut else "",
        held_labels=permission_labels(held),
        requested=requested,
        requested_labels=permission_labels(requested),
        overridden=company.requested_permissions is not None,
        unavailable_labels=permission_labels(unavailable),
        stale=bool(company.sii_user_rut) and company_permissions_stale(company),
        jobs=jobs,
        # The newest jobs are loaded anyway, and a change is never queued beside an active one.
        active_job=next((job for job in jobs if job.status in ACTIVE_JOB_STATUSES), None),
    )
