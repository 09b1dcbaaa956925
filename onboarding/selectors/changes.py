"""Reads for keeping SII authorizations true over time: which clients a change of the firm's
representative or of its requested permissions affects."""
from __future__ import annotations

from django.db.models import QuerySet

from onboarding.domain.rules import company_permissions_stale
from onboarding.models import ClientCompany, Permission, Relationship, Representative, Tenant

__all__ = [
    "companies_affected_by_representative",
    "companies_with_stale_permissions",
]


def companies_affected_by_representative(*, tenant: Tenant, representative: Representative) -> QuerySet[ClientCompany]:
    """The tenant's ACTIVE clients whose SII account holds `representative` (by `sii_user_rut`)."""
    return ClientCompany.objects.filter(
        tenant=tenant, relationship=Relationship.ACTIVE, sii_user_rut=representative.rut
    ).order_by("legal_name")


def companies_with_stale_permissions(
    *, tenant: Tenant, company: ClientCompany | None = None
) -> QuerySet[ClientCompany]:
    """The tenant's ACTIVE clients holding someone in the SII whose permissions there differ from the
    ones requested in that client now (its override, else the firm's setting; attributes its SII page
    does not offer aside: `domain.rules.company_permissions_stale`); only `company`, when given."""
    holding = ClientCompany.objects.filter(tenant=tenant, relationship=Relationship.ACTIVE).exclude(sii_user_rut="")
    if company is not None:
        holding = holding.filter(pk=company.pk)
    # The rule mixes a per-client JSON override with the firm's flags: decided row by row, on the
    # few columns it needs.
    columns = ["pk", "requested_permissions", "sii_unavailable", *(f"sii_{code}" for code in Permission.values)]
    stale = [company.pk for company in holding.only(*columns) if _stale(company, tenant)]
    return ClientCompany.objects.filter(pk__in=stale).order_by("legal_name")


def _stale(company: ClientCompany, tenant: Tenant) -> bool:
    company.tenant = tenant  # already loaded: no query per row
    return company_permissions_stale(company)
