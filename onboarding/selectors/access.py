"""Reads for the firm's own access to its clients in the SII (the access checks made with a firm key):
which companies a representative's check covers, what the firm requests, how what the SII holds
compares with it, and what the last check found for one company (the staff pages show it).

Every selector takes the tenant (or a company, which belongs to one) it reads from.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet
from django.utils import timezone

from onboarding.domain.display import PERMISSION_LABELS, failure_label, permission_labels
from onboarding.models import (
    AccessCheckItem,
    AccessCheckItemStatus,
    AccessCheckRun,
    AccessCheckStatus,
    AccessProblem,
    ClientCompany,
    Relationship,
    Representative,
    Tenant,
)
from sii_bot import Permission, SiiUser

__all__ = [
    "ACCESS_PROBLEM_LABELS",
    "CompanyAccessView",
    "access_check_companies",
    "access_check_due",
    "access_check_runs_pending",
    "access_problem_count",
    "access_problem_of",
    "access_state_from_user",
    "company_access_view",
    "tenants_with_unreported_access_problems",
]

ACCESS_PROBLEM_LABELS: dict[str, str] = {str(code): str(label) for code, label in AccessProblem.choices}


def access_state_from_user(user: SiiUser | None) -> dict[str, Any] | None:
    """What a check keeps of the representative's row (`ClientCompany.access_state`): their RUT, the
    permissions shown as granted and the ones the page does not show at all; None when not a user."""
    if user is None:
        return None
    return {
        "rut": user.rut,
        "name": user.name,
        "permissions": [p.value for p in Permission if user.flag(p)],
        "not_shown": [p.value for p in Permission if user.flag(p) is None],
    }


def access_problem_of(*, state: dict[str, Any] | None, requested: Iterable[str]) -> str:
    """The `AccessProblem` code for the representative's row as found (`access_state_from_user`),
    against the permissions the firm requests; "" when access is as requested.

    The one comparison of found against requested permissions. A permission the company's page does
    not show (a MIPYME page has three of the six) cannot be below what is requested, so it is not.
    """
    if state is None:
        return AccessProblem.REPRESENTATIVE_MISSING
    granted = set(state.get("permissions", []))
    if Permission.ADMIN.value not in granted and Permission.ADMIN.value not in state.get("not_shown", []):
        return AccessProblem.NOT_ADMINISTRATOR
    hidden = set(state.get("not_shown", []))
    if any(code not in granted and code not in hidden for code in requested):
        return AccessProblem.PERMISSIONS_BELOW
    return ""


def access_check_companies(*, tenant: Tenant, representative: Representative) -> QuerySet[ClientCompany]:
    """The companies a check with `representative`'s firm key covers: the tenant's ACTIVE clients whose
    SII account holds that representative (a succeeded authorization, `sii_user_rut`), by RUT."""
    return ClientCompany.objects.filter(
        tenant=tenant, relationship=Relationship.ACTIVE, sii_user_rut=representative.rut
    ).order_by("rut", "pk")


def access_check_runs_pending(*, tenant: Tenant) -> QuerySet[AccessCheckRun]:
    """The tenant's runs not finished yet (queued or running)."""
    return AccessCheckRun.objects.filter(
        tenant=tenant, status__in=(AccessCheckStatus.QUEUED, AccessCheckStatus.RUNNING)
    )


def access_problem_count(*, tenant: Tenant) -> int:
    """How many of the tenant's ACTIVE clients the last check found with an access problem."""
    return (
        ClientCompany.objects.filter(tenant=tenant, relationship=Relationship.ACTIVE)
        .exclude(access_problem="")
        .count()
    )


@dataclass(frozen=True)
class CompanyAccessView:
    """What the staff pages show of a company's access (`staff/_company_access.html`).

    `state` is "verified", "problem", "unverified" (never checked) or "failed" (the last attempt could
    not read the company); `label` says it in Spanish. `problem` is the problem's Spanish sentence, ""
    without one; `verified_at` when the SII was last read for it; `found_rut`/`found_name`/
    `found_permissions` (Spanish labels) the representative's row then. `last_failure` is the Spanish
    reason of a later check that could not read it, `pending` whether a check of it is queued or running.
    """

    state: str
    label: str
    problem: str
    problem_since: dt.datetime | None
    verified_at: dt.datetime | None
    found_rut: str
    found_name: str
    found_permissions: tuple[str, ...]
    last_failure: str
    last_failure_at: dt.datetime | None
    pending: bool


def company_access_view(*, company: ClientCompany) -> CompanyAccessView:
    """What the last access checks found for `company` (two queries)."""
    latest = (
        AccessCheckItem.objects.filter(company=company)
        .exclude(status=AccessCheckItemStatus.PENDING)
        .order_by("-checked_at", "-pk")
        .first()
    )
    pending = (
        AccessCheckItem.objects.filter(
            company=company,
            status=AccessCheckItemStatus.PENDING,
            run__status__in=(AccessCheckStatus.QUEUED, AccessCheckStatus.RUNNING),
        ).exists()
    )
    last_failure, last_failure_at = "", None
    if latest is not None and latest.status == AccessCheckItemStatus.FAILED and (
        company.access_verified_at is None or (latest.checked_at and latest.checked_at > company.access_verified_at)
    ):
        label = failure_label(latest.failure_code)
        last_failure = f"{label}. {latest.failure_message}".strip() if label else latest.failure_message
        last_failure_at = latest.checked_at
    state_row = company.access_state or {}
    permissions = permission_labels(code for code in state_row.get("permissions", []) if code in PERMISSION_LABELS)
    if company.access_problem:
        state, label = "problem", "Acceso con problemas"
    elif company.access_verified_at is not None:
        state, label = "verified", "Verificado"
    elif last_failure:
        state, label = "failed", "No se pudo verificar"
    else:
        state, label = "unverified", "Sin verificar"
    return CompanyAccessView(
        state=state,
        label=label,
        problem=ACCESS_PROBLEM_LABELS.get(company.access_problem, company.access_problem),
        problem_since=company.access_problem_since,
        verified_at=company.access_verified_at,
        found_rut=str(state_row.get("rut", "")),
        found_name=str(state_row.get("name", "")),
        found_permissions=permissions,
        last_failure=last_failure,
        last_failure_at=last_failure_at,
        pending=pending,
    )


def tenants_with_unreported_access_problems() -> QuerySet[Tenant]:
    """The tenants with a client whose access problem was not e-mailed yet."""
    pending = ClientCompany.objects.exclude(access_problem="").exclude(access_problem=F("access_problem_notified"))
    return Tenant.objects.filter(pk__in=pending.values("tenant_id")).order_by("pk")


def access_check_due(*, tenant: Tenant, now: dt.datetime | None = None) -> bool:
    """Whether the tenant's periodic check is due at `now` (never when its interval is 0)."""
    now = now or timezone.now()
    days = tenant.access_check_interval_days
    if not days:
        return False
    last = tenant.access_check_scheduled_at
    return last is None or last + dt.timedelta(days=days) <= now
