"""Changes in a client's SII made with the firm's own key (`FirmKey`), without asking the client.

Once a client authorized the firm's representative as Usuario Administrador (and consented under
terms that allow it: `domain.firm_access`), the representative's own certificate may maintain the
firm's users of that company. Which key a change logs in with:

- a permission update (AUTHORIZE): the representative's own key, if they administer the company;
- a change of representative (REPLACE): the new one is added with the key of whoever administers the
  company now (the old one, or the new one when a previous replacement already added them), and the
  old one is removed with the NEW one's key (the SII may not let a user delete itself: we never
  depend on it); so both keys are needed, and the firm must request the administrator attribute;
- ending a relationship (REVOKE): only another representative of the firm who administers the
  company may remove the holder, for the same reason.

Anything else (no key, an expired or rejected key, a representative not known to administer the
company, a consent under older terms) returns None: the caller asks the client, as before. When the
SII refuses the key at run time, the worker falls back to asking the client (`jobs.firm_key_run`).
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from onboarding.domain.display import rut_display
from onboarding.domain.firm_access import (
    consent_allows_firm_access,
    firm_key_usable,
    representative_administers,
)
from onboarding.domain.rules import company_permissions, pending_change, representative_for_rut
from onboarding.models import (
    ClientCompany,
    EnrollmentJob,
    FirmKey,
    JobEvent,
    JobKind,
    Permission,
    Representative,
)
from onboarding.services.firm_keys import representative_firm_key
from onboarding.services.jobs.lifecycle import enrollment_job_create

__all__ = ["change_firm_key", "firm_key_change_job_create"]


def _usable_key(representative: Representative | None) -> FirmKey | None:
    if representative is None:
        return None
    key = representative_firm_key(representative=representative)
    return key if firm_key_usable(key, now=timezone.now()) else None


def change_firm_key(
    *, company: ClientCompany, kind: str, representative: Representative | None, old_user_rut: str = ""
) -> FirmKey | None:
    """The firm key a `kind` job for `company` logs in with first, or None when the client must be asked.

    `representative` is whom the job adds (AUTHORIZE, REPLACE) or removes (REVOKE); `old_user_rut`
    whom a REPLACE removes. For a REPLACE the new representative's key must be usable too (the worker
    removes the old one with it).
    """
    if representative is None or not consent_allows_firm_access(company):
        return None
    tenant = company.tenant
    if kind == JobKind.AUTHORIZE:
        key = _usable_key(representative)
        return key if key is not None and representative_administers(company, representative) else None
    if kind == JobKind.REPLACE:
        new_key = _usable_key(representative)
        # The new representative removes the old one with its own key only as an administrator there.
        if new_key is None or Permission.ADMIN.value not in company_permissions(company):
            return None
        if representative_administers(company, representative):
            return new_key
        old = representative_for_rut(tenant=tenant, rut=old_user_rut)
        old_key = _usable_key(old)
        return old_key if old_key is not None and representative_administers(company, old) else None  # type: ignore[arg-type]
    if kind == JobKind.REVOKE:
        for other in tenant.representatives.exclude(rut=representative.rut).order_by("-is_active", "created_at"):
            # Administering is known from the company row; only then is the key looked up.
            if representative_administers(company, other) and (key := _usable_key(other)) is not None:
                return key
    return None


def _pending(company: ClientCompany) -> tuple[str, Representative | None, str, str]:
    """(kind, representative, old_user_rut, old_user_name) of the change `company` needs now; for a
    REVOKE the representative is the one removed (None when the firm does not know them)."""
    change = pending_change(company)
    representative = change.representative
    if change.kind == JobKind.REVOKE:
        representative = representative_for_rut(tenant=company.tenant, rut=company.sii_user_rut)
    return change.kind, representative, change.old_user_rut, change.old_user_name


def firm_key_change_job_create(
    *,
    company: ClientCompany,
    actor: AbstractBaseUser | None,
    kind: str | None = None,
    representative: Representative | None = None,
    old_user_rut: str = "",
    old_user_name: str = "",
    lane: str | None = None,
) -> EnrollmentJob | None:
    """Create the change job for `company` with the firm's key, or return None (nothing written) when
    the firm may not make it itself (`change_firm_key`): the caller then asks the client.

    Without `kind`, the change is the one the company needs now (`domain.rules.pending_change`). The
    job is QUEUED and enqueued on commit like any other; its first event says whose key it uses.
    Raises ServiceError for everything `enrollment_job_create` refuses (a job already in flight).
    """
    if kind is None:
        kind, representative, old_user_rut, old_user_name = _pending(company)
    firm_key = change_firm_key(company=company, kind=kind, representative=representative, old_user_rut=old_user_rut)
    if firm_key is None:
        return None
    job = enrollment_job_create(
        company=company,
        certificate=None,
        firm_key=firm_key,
        created_by=actor,
        representative=representative,
        kind=kind,
        old_user_rut=old_user_rut,
        old_user_name=old_user_name,
        lane=lane,
    )
    JobEvent.objects.create(
        tenant_id=company.tenant_id,
        job=job,
        step="firm_key",
        status="info",
        message=(
            f"Se hará con la llave del estudio (certificado de {firm_key.holder_name}, RUT "
            f"{rut_display(firm_key.holder_rut)}), sin pedirle el certificado al cliente."
        ),
    )
    return job
