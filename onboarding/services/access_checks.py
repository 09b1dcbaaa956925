"""Access checks ("verificación de acceso"): with each representative's own firm key, read in the SII
whether the firm's representative still holds, in every client, the permissions the firm requests.

What this module writes:
- creating runs, periodic (`access_checks_schedule`: every tenant whose interval is due) or on demand
  (`access_check_request`: one client or all, audited). One `AccessCheckRun` per firm key and chunk of
  at most AUTORIZA_ACCESS_CHECK_MAX_COMPANIES companies: one SII session (one login) reads them all.
  Its companies are its PENDING `AccessCheckItem`s from the start, so none can be skipped silently:
  every item ends VERIFIED, PROBLEM or FAILED (`access_check_execute`).
- sending runs to their own queue (AUTORIZA_ACCESS_CHECK_QUEUE) and again when the broker lost them
  (`access_check_runs_dispatch`), and the reaper of runs whose worker died (`access_check_runs_reap`).
- the digest of *new* problems to the firm's admins (`access_problems_notify`): a problem is e-mailed
  once (`ClientCompany.access_problem_notified`, claimed by compare-and-set before sending).
"""
from __future__ import annotations

import logging
import math
import random
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from onboarding.domain import display
from onboarding.domain.display import rut_display
from onboarding.domain.rules import representative_for_rut
from onboarding.models import (
    AccessCheckItem,
    AccessCheckItemStatus,
    AccessCheckRun,
    AccessCheckStatus,
    AccessCheckTrigger,
    AuditAction,
    ClientCompany,
    FirmKey,
    Relationship,
    Representative,
    Tenant,
)
from onboarding.selectors.access import ACCESS_PROBLEM_LABELS, access_check_companies, access_check_due
from onboarding.selectors.firm import tenant_admin_recipients
from onboarding.services.audit import audit_record
from onboarding.services.errors import ServiceError
from onboarding.services.firm_keys import representative_firm_key

logger = logging.getLogger(__name__)

__all__ = [
    "ACCESS_CHECK_RUN_TASK",
    "access_check_request",
    "access_check_run_send",
    "access_check_runs_create",
    "access_check_runs_dispatch",
    "access_check_runs_pending_exist",
    "access_check_runs_reap",
    "access_check_wait_seconds",
    "access_checks_schedule",
    "access_problems_notify",
    "tenant_access_check_interval_set",
]

ACCESS_CHECK_RUN_TASK = "onboarding.tasks.access_check_run"
# A QUEUED run whose message went out this long ago and was never claimed is sent again (lost message).
RESEND_AFTER_SECONDS = 600
# A run that lost its worker is queued again this many times; after that it is finished as interrupted.
REAP_REQUEUES = 1
INTERRUPTED_CODE = "check_interrupted"
INTERRUPTED_MESSAGE = (
    "La verificación se interrumpió porque el proceso que la hacía se detuvo. "
    "Se verificará de nuevo en la próxima revisión, o puede pedirla ahora."
)


# --- Creating runs -----------------------------------------------------------------------------------


def _chunks(companies: list[ClientCompany], size: int) -> list[list[ClientCompany]]:
    """`companies` in as few chunks of at most `size` as possible, of even length (51 → 26 + 25, not
    50 + 1: a login shared by one company is the waste the chunking avoids)."""
    if not companies:
        return []
    count = math.ceil(len(companies) / size)
    even = math.ceil(len(companies) / count)
    return [companies[start:start + even] for start in range(0, len(companies), even)]


def _companies_pending(company_ids: list[int]) -> set[int]:
    """Which of these companies already wait in a queued or running check (not checked twice)."""
    return set(
        AccessCheckItem.objects.filter(
            company_id__in=company_ids,
            status=AccessCheckItemStatus.PENDING,
            run__status__in=(AccessCheckStatus.QUEUED, AccessCheckStatus.RUNNING),
        ).values_list("company_id", flat=True)
    )


def access_check_runs_create(
    *,
    tenant: Tenant,
    representative: Representative,
    firm_key: FirmKey,
    companies: list[ClientCompany],
    trigger: str,
    requested_by: AbstractBaseUser | None = None,
    run_after: datetime | None = None,
) -> list[AccessCheckRun]:
    """Queue checks of `companies` with `representative`'s `firm_key`: one run per chunk of at most
    AUTORIZA_ACCESS_CHECK_MAX_COMPANIES, each with a PENDING item per company. Companies already
    waiting in another check are left to it. Runs without `run_after` are sent once the transaction
    commits. Returns the runs created (possibly none)."""
    if firm_key.tenant_id != tenant.pk or representative.tenant_id != tenant.pk or firm_key.representative_id != representative.pk:
        # A firm key is never usable for another tenant's companies, nor under another representative.
        raise ServiceError("La llave no corresponde a este estudio o representante.", code="firm_key_wrong_tenant")
    companies = [company for company in companies if company.tenant_id == tenant.pk]
    busy = _companies_pending([company.pk for company in companies])
    companies = [company for company in companies if company.pk not in busy]
    runs: list[AccessCheckRun] = []
    requested = requested_by if requested_by is not None and getattr(requested_by, "is_authenticated", False) else None
    with transaction.atomic():
        for chunk in _chunks(companies, settings.AUTORIZA_ACCESS_CHECK_MAX_COMPANIES):
            run = AccessCheckRun.objects.create(
                tenant=tenant,
                representative=representative,
                firm_key=firm_key,
                trigger=trigger,
                requested_by=requested,
                run_after=run_after,
            )
            AccessCheckItem.objects.bulk_create(
                [AccessCheckItem(run=run, tenant=tenant, company=company) for company in chunk]
            )
            runs.append(run)
        if run_after is None:
            for run in runs:
                transaction.on_commit(lambda run_id=str(run.pk): access_check_run_send(run_id=run_id))
    return runs


def _tenant_runs_create(
    *, tenant: Tenant, trigger: str, requested_by: AbstractBaseUser | None, company: ClientCompany | None = None
) -> tuple[list[AccessCheckRun], list[Representative]]:
    """Runs for every representative of the tenant holding clients (or only `company`'s). Returns the
    runs and the representatives whose clients could not be checked for want of a firm key."""
    runs: list[AccessCheckRun] = []
    keyless: list[Representative] = []
    for representative in tenant.representatives.order_by("created_at", "pk"):
        companies = access_check_companies(tenant=tenant, representative=representative)
        if company is not None:
            companies = companies.filter(pk=company.pk)
        company_list = list(companies)
        if not company_list:
            continue
        firm_key = representative_firm_key(representative=representative)
        if firm_key is None:
            keyless.append(representative)
            continue
        runs += access_check_runs_create(
            tenant=tenant,
            representative=representative,
            firm_key=firm_key,
            companies=company_list,
            trigger=trigger,
            requested_by=requested_by,
        )
    return runs, keyless


def access_check_request(
    *, tenant: Tenant, company: ClientCompany | None = None, requested_by: AbstractBaseUser | None
) -> list[AccessCheckRun]:
    """An admin asks for a check now: of one client (`company`) or of all. Returns the runs queued.

    Raises ServiceError (Spanish) when there is nothing to check: the client has no authorized
    representative of the firm, its representative has no firm key, or it is already being checked.
    Audited.
    """
    if company is not None:
        if company.tenant_id != tenant.pk:
            raise ServiceError("Ese cliente no existe.", code="company_not_found")
        if company.relationship != Relationship.ACTIVE or not company.sii_user_rut:
            raise ServiceError(
                "Este cliente aún no tiene un representante del estudio autorizado en el SII: no hay acceso que verificar.",
                code="access_check_nothing",
            )
        representative = representative_for_rut(tenant=tenant, rut=company.sii_user_rut)
        if representative is None:
            raise ServiceError(
                "La persona autorizada en el SII para este cliente no es un representante del estudio.",
                code="access_check_nothing",
            )
        if representative_firm_key(representative=representative) is None:
            raise ServiceError(
                f"Cargue la llave del estudio de {representative.name} para verificar el acceso de este cliente.",
                code="firm_key_missing",
            )
    runs, keyless = _tenant_runs_create(
        tenant=tenant, trigger=AccessCheckTrigger.ON_DEMAND, requested_by=requested_by, company=company
    )
    if not runs:
        if keyless:
            names = ", ".join(representative.name for representative in keyless)
            raise ServiceError(
                f"Cargue la llave del estudio de {names} para verificar el acceso de sus clientes.",
                code="firm_key_missing",
            )
        if company is not None:
            raise ServiceError("Este cliente ya tiene una verificación en curso.", code="access_check_pending")
        raise ServiceError(
            "No hay clientes autorizados que verificar, o ya tienen una verificación en curso.",
            code="access_check_nothing",
        )
    count = AccessCheckItem.objects.filter(run__in=runs).count()
    summary = (
        f"Verificación de acceso pedida para {company.legal_name}"
        if company is not None
        else f"Verificación de acceso pedida para todos los clientes ({count})"
    )
    audit_record(
        tenant=tenant,
        actor=requested_by,
        action=AuditAction.ACCESS_CHECK,
        summary=summary,
        company=company,
        details={"runs": [str(run.pk) for run in runs], "companies": count},
    )
    return runs


def access_checks_schedule(*, now: datetime | None = None) -> int:
    """Periodic: create the checks of every tenant whose interval (`access_check_interval_days`, 0 =
    off) is due, claiming the tenant's turn by compare-and-set so two schedulers never both create
    them. Returns the runs created."""
    now = now or timezone.now()
    created = 0
    for tenant in Tenant.objects.filter(access_check_interval_days__gt=0).order_by("pk"):
        if not access_check_due(tenant=tenant, now=now):
            continue
        claimed = Tenant.objects.filter(
            pk=tenant.pk, access_check_scheduled_at=tenant.access_check_scheduled_at
        ).update(access_check_scheduled_at=now)
        if not claimed:
            continue
        runs, keyless = _tenant_runs_create(tenant=tenant, trigger=AccessCheckTrigger.SCHEDULED, requested_by=None)
        if keyless:
            logger.info(
                "tenant %s: %d representative(s) hold clients but have no firm key; their clients are not checked",
                tenant.slug, len(keyless),
            )
        if runs:
            audit_record(
                tenant=tenant,
                actor=None,
                action=AuditAction.ACCESS_CHECK,
                summary=f"Verificación de acceso programada ({AccessCheckItem.objects.filter(run__in=runs).count()} clientes)",
                details={"runs": [str(run.pk) for run in runs]},
            )
        created += len(runs)
    return created


def tenant_access_check_interval_set(*, tenant: Tenant, days: int, actor: AbstractBaseUser | None) -> bool:
    """Verify the firm's access every `days` days (0: never scheduled; on demand still works). Returns
    whether it changed. Audited (SETTINGS). Raises ServiceError for a negative or too long interval."""
    if days < 0 or days > 90:
        raise ServiceError("Indique entre 0 y 90 días.", code="invalid_interval")
    before = tenant.access_check_interval_days
    if before == days:
        return False
    Tenant.objects.filter(pk=tenant.pk).update(access_check_interval_days=days)
    tenant.access_check_interval_days = days
    audit_record(
        tenant=tenant,
        actor=actor,
        action=AuditAction.SETTINGS,
        summary=(
            f"Verificación de acceso cada {days} día{'s' if days != 1 else ''}"
            if days
            else "Verificación de acceso automática desactivada"
        ),
        details={"access_check_interval_days": {"before": before, "after": days}},
    )
    return True


# --- Sending, re-sending, reaping -----------------------------------------------------------------------


def access_check_run_send(*, run_id: str) -> None:
    """Send a run's id (never anything secret) to the access-check queue, stamping `enqueued_at`."""
    AccessCheckRun.objects.filter(pk=run_id, status=AccessCheckStatus.QUEUED).update(enqueued_at=timezone.now())
    current_app.tasks[ACCESS_CHECK_RUN_TASK].apply_async((run_id,), queue=settings.AUTORIZA_ACCESS_CHECK_QUEUE)


def access_check_runs_dispatch(*, now: datetime | None = None) -> int:
    """Periodic: send the QUEUED runs that are due and were never sent, or whose message was sent so
    long ago it must have been lost. Returns how many were sent."""
    now = now or timezone.now()
    due = AccessCheckRun.objects.filter(status=AccessCheckStatus.QUEUED).filter(
        Q(run_after__isnull=True) | Q(run_after__lte=now)
    ).filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - timedelta(seconds=RESEND_AFTER_SECONDS)))
    sent = 0
    for run_id in due.values_list("pk", flat=True)[:500]:
        access_check_run_send(run_id=str(run_id))
        sent += 1
    return sent


def access_check_runs_reap(*, now: datetime | None = None) -> int:
    """Periodic: a RUNNING run whose heartbeat is older than AUTORIZA_ACCESS_CHECK_REAP_AFTER_SECONDS
    lost its worker (its SII lease frees itself). Queue it again once (reading is harmless to repeat);
    after that finish it, its unread companies FAILED as interrupted. Returns the runs reaped."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.AUTORIZA_ACCESS_CHECK_REAP_AFTER_SECONDS)
    reaped = 0
    for run in AccessCheckRun.objects.filter(status=AccessCheckStatus.RUNNING, heartbeat_at__lt=stale):
        held = AccessCheckRun.objects.filter(pk=run.pk, status=AccessCheckStatus.RUNNING, heartbeat_at=run.heartbeat_at)
        if run.retry_count < REAP_REQUEUES:
            if held.update(
                status=AccessCheckStatus.QUEUED, retry_count=F("retry_count") + 1, worker="",
                run_after=None, enqueued_at=None, started_at=None, heartbeat_at=None,
            ):
                logger.warning("access check run %s lost its worker; queued again", run.pk)
                reaped += 1
            continue
        with transaction.atomic():
            if not held.update(
                status=AccessCheckStatus.FAILED, finished_at=now,
                failure_code=INTERRUPTED_CODE, failure_message=INTERRUPTED_MESSAGE,
            ):
                continue
            AccessCheckItem.objects.filter(run=run, status=AccessCheckItemStatus.PENDING).update(
                status=AccessCheckItemStatus.FAILED, failure_code=INTERRUPTED_CODE,
                failure_message=INTERRUPTED_MESSAGE, checked_at=now,
            )
        logger.warning("access check run %s lost its worker again; finished as interrupted", run.pk)
        reaped += 1
    return reaped


def access_check_runs_pending_exist(*, tenant: Tenant, exclude: AccessCheckRun | None = None) -> bool:
    """Whether the tenant has another run running, or queued and due now (a run waiting an hour for
    the SII's session limit does not hold back the digest of what the others found)."""
    now = timezone.now()
    runs = AccessCheckRun.objects.filter(tenant=tenant).filter(
        Q(status=AccessCheckStatus.RUNNING)
        | Q(status=AccessCheckStatus.QUEUED, run_after__isnull=True)
        | Q(status=AccessCheckStatus.QUEUED, run_after__lte=now + timedelta(minutes=5))
    )
    if exclude is not None:
        runs = runs.exclude(pk=exclude.pk)
    return runs.exists()


def access_check_wait_seconds() -> float:
    """How long a run whose SII session places are all taken waits before trying again (jittered)."""
    return settings.AUTORIZA_SII_LEASE_WAIT_SECONDS * random.uniform(0.5, 1.0)  # jitter, not crypto


# --- The digest of new problems ----------------------------------------------------------------------


def _dashboard_problems_url(tenant: Tenant) -> str:
    try:
        path = reverse("staff:dashboard", kwargs={"tenant_slug": tenant.slug}) + "?acceso=problemas"
    except NoReverseMatch:
        path = "/"
    return settings.AUTORIZA_BASE_URL.rstrip("/") + path


def access_problems_notify(*, tenant: Tenant) -> int:
    """E-mail the firm's admins one digest of the access problems not reported yet, each problem once.

    Each company's problem is claimed first (compare-and-set of `access_problem_notified`), so two
    processes finishing checks at once never report the same problem; the mail goes after. Returns
    how many problems were reported (0: nothing new, no mail)."""
    candidates = (
        ClientCompany.objects.filter(tenant=tenant)
        .exclude(access_problem="")
        .exclude(access_problem=F("access_problem_notified"))
        .order_by("legal_name", "pk")
    )
    claimed: list[ClientCompany] = []
    for company in candidates:
        if (
            ClientCompany.objects.filter(pk=company.pk, access_problem=company.access_problem)
            .exclude(access_problem_notified=company.access_problem)
            .update(access_problem_notified=company.access_problem)
        ):
            claimed.append(company)
    if not claimed:
        return 0
    lines = [
        f"- {company.legal_name} (RUT {rut_display(company.rut)}): "
        f"{ACCESS_PROBLEM_LABELS.get(company.access_problem, company.access_problem)}."
        for company in claimed
    ]
    count = len(claimed)
    subject = (
        f"Acceso con problemas en 1 cliente ({tenant.name})"
        if count == 1
        else f"Acceso con problemas en {count} clientes ({tenant.name})"
    )
    intro = (
        "La verificación de acceso en el SII encontró un problema nuevo con el acceso del estudio:"
        if count == 1
        else f"La verificación de acceso en el SII encontró {count} problemas nuevos con el acceso del estudio:"
    )
    for name, address in tenant_admin_recipients(tenant=tenant):
        body = "\n".join([
            display.greeting(name),
            "",
            intro,
            "",
            *lines,
            "",
            "Revise estos clientes en el panel (filtro «Acceso con problemas»):",
            _dashboard_problems_url(tenant),
            "",
            "Cada problema se informa una sola vez; los que siguen sin resolverse aparecen en el panel.",
            "",
            "— Autoriza",
        ])
        try:
            send_mail(subject, body + "\n", None, [address])
        except Exception:  # the problems stay on the dashboard; a mail server down must not fail the check
            logger.exception("access problem digest to a member of %s could not be sent", tenant.slug)
    return count
