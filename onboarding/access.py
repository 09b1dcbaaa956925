"""Access helpers for views: they return the object or raise Http404, never 403, so another tenant's
objects are indistinguishable from objects that do not exist."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.http import Http404

from onboarding import selectors
from onboarding.models import ClientCompany, EnrollmentJob, Membership


def membership_or_404(*, user: AbstractBaseUser, tenant_slug: str) -> Membership:
    """The user's membership in that firm; 404 for non-members (and for anonymous users)."""
    membership = selectors.membership_get(user=user, tenant_slug=tenant_slug)
    if membership is None:
        raise Http404
    return membership


def rerun_membership_or_404(*, user: AbstractBaseUser, tenant_slug: str) -> Membership:
    """Like membership_or_404, but only for owners and admins (the roles that may re-run)."""
    membership = membership_or_404(user=user, tenant_slug=tenant_slug)
    if not membership.can_rerun:
        raise Http404
    return membership


def owner_membership_or_404(*, user: AbstractBaseUser, tenant_slug: str) -> Membership:
    """Like membership_or_404, but only for the firm's owners (settings, staff management)."""
    membership = membership_or_404(user=user, tenant_slug=tenant_slug)
    if not membership.is_owner:
        raise Http404
    return membership


def staff_company_or_404(*, membership: Membership, company_id: int) -> ClientCompany:
    """A client company of the member's tenant, else 404."""
    company = selectors.company_get(tenant=membership.tenant, company_id=company_id)
    if company is None:
        raise Http404
    return company


def staff_job_or_404(*, membership: Membership, job_id: object) -> EnrollmentJob:
    """A job of the member's tenant, else 404."""
    job = selectors.job_get(tenant=membership.tenant, job_id=job_id)
    if job is None:
        raise Http404
    return job


def client_job_or_404(*, user: AbstractBaseUser, job_id: object) -> EnrollmentJob:
    """A job of the (client) user, else 404: a claimant's job (see `CompanyClaim`) is its claimant's
    only, the company's own jobs are its owner's. For an unproven claimant `job.company` is their
    display copy (`selectors.client_job_claimant_view`)."""
    if not user.is_authenticated:
        raise Http404
    pk = selectors.parse_uuid(job_id)
    job = (
        EnrollmentJob.objects.select_related("company", "tenant", "representative")
        .filter(Q(claim__isnull=True, company__owner=user) | Q(claim__user=user), pk=pk)
        .first()
        if pk is not None
        else None
    )
    if job is None:
        raise Http404
    selectors.client_job_claimant_view(job=job)
    return job
