"""Reads about self-signup claims on a company (see `onboarding.models.CompanyClaim`) for the firm's
staff: who registered the company themselves, and who was proven its owner in the SII."""
from __future__ import annotations

from django.db.models import QuerySet

from onboarding.models import CompanyClaim, Tenant

__all__ = ["company_claim_list"]


def company_claim_list(*, tenant: Tenant, company_id: int) -> list[CompanyClaim]:
    """The claims on company `company_id` of `tenant`, oldest first, when there are two or more
    (competing claimants); an empty list for a company one person or the firm registered."""
    claims: QuerySet[CompanyClaim] = CompanyClaim.objects.filter(tenant=tenant, company_id=company_id).select_related(
        "settled_by"
    ).order_by("created_at", "pk")
    rows = list(claims)
    return rows if len(rows) > 1 else []
