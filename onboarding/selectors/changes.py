"""Reads for keeping SII authorizations true over time: which clients a representative or permission
change affects, and what a client's consent covers when it removes or replaces someone."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from onboarding.models import ClientCompany, JobKind, Relationship, Representative, Tenant
from onboarding.selectors.client import PERMISSION_LABELS, rut_display

__all__ = [
    "ChangeConsentTerms",
    "change_consent_terms",
    "companies_affected_by_representative",
    "companies_with_stale_permissions",
    "job_step_flow",
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


@dataclass(frozen=True)
class ChangeConsentTerms:
    """What a consent to REVOKE or REPLACE covers: who is added (with which permissions) and who is
    removed, in which company. `version` hashes all of it (like `ConsentTerms.version`)."""

    kind: str
    company_name: str
    company_rut: str
    tenant_name: str
    add_name: str
    add_rut: str
    remove_name: str
    remove_rut: str
    permissions: tuple[str, ...]
    permission_labels: tuple[str, ...]
    version: str

    @property
    def summary(self) -> str:
        """One Spanish sentence (for the audit log)."""
        if self.kind == JobKind.REVOKE:
            return (
                f"Consentimiento para QUITAR a {self.remove_name} ({self.remove_rut}) de "
                f"{self.company_name} ({self.company_rut})"
            )
        return (
            f"Consentimiento para autorizar a {self.add_name} ({self.add_rut}) y QUITAR a {self.remove_name} "
            f"({self.remove_rut}) en {self.company_name} ({self.company_rut})"
        )


def change_consent_terms(*, company: ClientCompany) -> ChangeConsentTerms | None:
    """The REVOKE/REPLACE terms a consent for `company` covers now, or None for an ordinary
    authorization (see `services.changes._pending_kind` for the rule)."""
    from onboarding.services.changes import _pending_kind, _sii_user_name

    kind, representative, old_rut, old_name = _pending_kind(company)
    if kind == JobKind.AUTHORIZE:
        return None
    tenant = company.tenant
    flags = (("admin", tenant.grant_admin), ("sign", tenant.grant_sign), ("registry", tenant.grant_registry))
    permissions = tuple(code for code, on in flags if on) if kind == JobKind.REPLACE else ()
    if kind == JobKind.REVOKE:
        add_name, add_rut = "", ""
        remove_name, remove_rut = _sii_user_name(company), company.sii_user_rut
    else:
        add_name, add_rut = representative.name, representative.rut  # type: ignore[union-attr]
        remove_name, remove_rut = old_name, old_rut
    parts = [str(company.pk), company.rut, company.legal_name, kind, add_rut, add_name, remove_rut, remove_name,
             ",".join(permissions)]
    return ChangeConsentTerms(
        kind=kind,
        company_name=company.legal_name,
        company_rut=rut_display(company.rut),
        tenant_name=tenant.name,
        add_name=add_name,
        add_rut=rut_display(add_rut),
        remove_name=remove_name,
        remove_rut=rut_display(remove_rut),
        permissions=permissions,
        permission_labels=tuple(PERMISSION_LABELS[code] for code in permissions),
        version=hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32],
    )


def job_step_flow(*, kind: str) -> list[tuple[str, str]]:
    """(step value, Spanish label) of the steps a job of `kind` (a `JobKind`) reports, in order."""
    from sii_bot import Step

    bot_kind = {JobKind.AUTHORIZE: "enroll", JobKind.REVOKE: "revoke", JobKind.REPLACE: "replace"}.get(kind, "enroll")
    return [(step.value, step.label) for step in Step.flow(bot_kind)]  # type: ignore[arg-type]




