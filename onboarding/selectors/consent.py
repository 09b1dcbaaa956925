"""What a client's consent covers, shown on the consent page and hashed into its `version`: the first
authorization or a permission update (`consent_terms`), or a removal or replacement of the firm's
representative (`change_consent_terms`).

The consent form carries the `version` the client saw; a consent given to terms that changed since
(the firm changed its representative or its permissions meanwhile) is refused by the services.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from onboarding.domain.display import permission_labels, permission_rows, rut_display
from onboarding.domain.firm_access import CONSENT_EDITION
from onboarding.domain.rules import (
    company_requested_permissions,
    pending_change,
    representative_active,
    sii_user_name,
)
from onboarding.models import ClientCompany, JobKind, Representative

__all__ = [
    "ChangeConsentTerms",
    "ConsentTerms",
    "change_consent_terms",
    "consent_terms",
]


def _version(parts: list[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ConsentTerms:
    """Exactly what the client agrees to: who is authorized, with which permissions, in which company.

    `version` is a hash of all of it: the consent form carries it, so a consent given on a page that
    showed other terms (the firm changed its representative or permissions meanwhile) is refused.
    """

    company_name: str
    company_rut: str
    representative: Representative | None
    representative_name: str
    representative_rut: str
    permissions: tuple[str, ...]
    permission_labels: tuple[str, ...]
    tenant_name: str
    retention_days: int
    version: str
    # The edition of the consent text (`domain.firm_access.CONSENT_EDITION`), part of `version`.
    edition: int = CONSENT_EDITION

    @property
    def permission_rows(self) -> tuple[tuple[str, bool], ...]:
        """(label, requested?) for each of the six SII attributes, for the SI/NO list."""
        return permission_rows(self.permissions)


def consent_terms(*, company: ClientCompany, retention_days: int) -> ConsentTerms:
    """The terms a consent for `company` covers right now (the tenant's active representative and
    the permissions requested in this company, in SII's order: the firm's choice for it, else its setting)."""
    tenant = company.tenant
    representative = representative_active(tenant)
    permissions = company_requested_permissions(company)
    version = _version(
        [
            str(company.pk),
            company.rut,
            company.legal_name,
            str(representative.pk) if representative else "-",
            representative.rut if representative else "-",
            representative.name if representative else "-",
            ",".join(permissions),
            f"edition={CONSENT_EDITION}",
        ]
    )
    return ConsentTerms(
        company_name=company.legal_name,
        company_rut=rut_display(company.rut),
        representative=representative,
        representative_name=representative.name if representative else "",
        representative_rut=rut_display(representative.rut) if representative else "",
        permissions=permissions,
        permission_labels=permission_labels(permissions),
        tenant_name=tenant.name,
        retention_days=retention_days,
        version=version,
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
    edition: int = CONSENT_EDITION

    @property
    def permission_rows(self) -> tuple[tuple[str, bool], ...]:
        """(label, requested?) for each of the six SII attributes, for the SI/NO list."""
        return permission_rows(self.permissions)

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
    authorization (the rule is `domain.rules.pending_change`)."""
    change = pending_change(company)
    if change.kind == JobKind.AUTHORIZE:
        return None
    tenant = company.tenant
    permissions = company_requested_permissions(company) if change.kind == JobKind.REPLACE else ()
    if change.kind == JobKind.REVOKE:
        add_name, add_rut = "", ""
        remove_name, remove_rut = sii_user_name(company), company.sii_user_rut
    else:
        add_name, add_rut = change.representative.name, change.representative.rut  # type: ignore[union-attr]
        remove_name, remove_rut = change.old_user_name, change.old_user_rut
    return ChangeConsentTerms(
        kind=change.kind,
        company_name=company.legal_name,
        company_rut=rut_display(company.rut),
        tenant_name=tenant.name,
        add_name=add_name,
        add_rut=rut_display(add_rut),
        remove_name=remove_name,
        remove_rut=rut_display(remove_rut),
        permissions=permissions,
        permission_labels=permission_labels(permissions),
        version=_version(
            [str(company.pk), company.rut, company.legal_name, change.kind, add_rut, add_name, remove_rut, remove_name,
             ",".join(permissions), f"edition={CONSENT_EDITION}"]
        ),
    )
