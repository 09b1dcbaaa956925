"""The firm's choices for one client company: which SII attributes it requests there (overriding the
firm's setting, `Tenant.grant_*`)."""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from onboarding.domain.display import permission_labels
from onboarding.models import AuditAction, ClientCompany, Permission
from onboarding.services.audit import audit_record
from onboarding.services.errors import ServiceError

__all__ = ["company_permissions_set"]


def company_permissions_set(
    *, company: ClientCompany, permissions: Iterable[str] | None, actor: AbstractBaseUser
) -> bool:
    """Request `permissions` (`Permission` codes) in `company`, or the firm's setting again when None.

    Returns whether anything changed (audited, SETTINGS, with before/after). Raises ServiceError for
    an unknown code or an empty choice. Jobs already created keep what they requested; the next one
    (and the permission sync, `services.permissions_sync`) uses the new choice.
    """
    chosen: list[str] | None = None
    if permissions is not None:
        codes = {str(code) for code in permissions}
        unknown = codes - set(Permission.values)
        if unknown:
            raise ServiceError("Elija permisos de la lista.", code="invalid_permission")
        if not codes:
            raise ServiceError(
                "Marque al menos un permiso para este cliente, o use los del estudio.", code="no_permission"
            )
        chosen = [str(code) for code in Permission.values if code in codes]  # the SII's order
    before = company.requested_permissions
    if before == chosen:
        return False
    with transaction.atomic():
        ClientCompany.objects.filter(pk=company.pk).update(requested_permissions=chosen)
        company.requested_permissions = chosen
        after_text = ", ".join(permission_labels(chosen)) if chosen is not None else "los del estudio"
        audit_record(
            tenant=company.tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            company=company,
            summary=f"Permisos solicitados en {company.legal_name}: {after_text}",
            details={"changes": {"requested_permissions": {"before": before, "after": chosen}}},
        )
    return True
