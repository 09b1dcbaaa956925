"""Reads for keeping SII authorizations true over time: which clients a change of the firm's
representative or of its requested permissions affects."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from onboarding.models import ClientCompany, Relationship, Representative, Tenant

__all__ = [
    "companies_affected_by_representative",
    "companies_with_stale_permissions",
]


def companies_affected_by_representative(*, tenant: Tenant, representative: Representative) -> QuerySet[ClientCompany]:
    """The tenant's ACTIVE clients whose SII account holds `representative` (by `sii_user_rut`)."""
    return ClientCompany.objects.filter(
        tenant=tenant, relationship=Relationship.ACTIVE, sii_user_rut=representative.rut
    ).order_by("legal_name")


def companies_with_stale_permissions(*, tenant: Tenant) -> QuerySet[ClientCompany]:
    """The tenant's ACTIVE clients holding someone in the SII whose sii_* flags differ from the
    permissions the firm requests now."""
    differ = (
        ~Q(sii_admin=tenant.grant_admin) | ~Q(sii_sign=tenant.grant_sign) | ~Q(sii_registry=tenant.grant_registry)
    )
    return (
        ClientCompany.objects.filter(tenant=tenant, relationship=Relationship.ACTIVE)
        .exclude(sii_user_rut="")
        .filter(differ)
        .order_by("legal_name")
    )
