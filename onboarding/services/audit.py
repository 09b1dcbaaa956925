"""The tenant's audit log: one line per thing a person (or the system) did to a client or to the
firm's settings. Every service that changes state on someone's behalf appends one."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from onboarding.models import AuditEntry, ClientCompany, Tenant

__all__ = ["audit_record"]


def audit_record(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    action: str,
    summary: str,
    company: ClientCompany | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one line to the tenant's audit log."""
    label = ""
    if actor is not None and getattr(actor, "is_authenticated", False):
        label = actor.get_username()
    return AuditEntry.objects.create(
        tenant=tenant,
        actor=actor if label else None,
        actor_label=label or "sistema",
        action=action,
        company=company,
        summary=summary[:300],
        details=details or {},
    )
