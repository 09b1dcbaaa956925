"""Reads for the firm's other pages: a job's detail (evidence, step timings, re-runs, a retry now),
invitations, the team, representatives and the audit log.

Every selector takes the tenant it reads from (or a job already scoped to it) and starts its queryset
from a tenant filter, so nothing here can return another tenant's rows.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from onboarding.domain.display import failure_label
from onboarding.domain.rules import representative_for_rut
from onboarding.models import (
    AuditEntry,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobArtifact,
    JobEvent,
    JobStatus,
    Membership,
    Representative,
    Role,
    Tenant,
)
from onboarding.selectors.core import parse_uuid
from sii_bot.errors import LoginThrottled, TooManySessions, failure_from_code

__all__ = [
    "tenant_admin_recipients",
    "BLOCKED_CLIENT",
    "BLOCKED_OPEN_INVITATION",
    "SII_MINIMUM_WAIT_CODES",
    "JobStepTiming",
    "RetryNowState",
    "audit_filtered",
    "audit_job_kinds",
    "company_invitation_blockers",
    "company_reinvitable",
    "invitation_get",
    "invitation_list",
    "invitation_status",
    "job_artifact_get",
    "job_artifacts",
    "job_has_rerun",
    "job_later_success",
    "job_minimum_wait_until",
    "job_retry_now_state",
    "job_step_timings",
    "jobs_for_rerun",
    "member_get",
    "member_list",
    "owner_count",
    "representative_get",
    "representative_get_by_rut",
    "representative_list",
    "user_by_email",
]

# --- Jobs ---------------------------------------------------------------------------------------


def job_artifacts(*, job: EnrollmentJob) -> QuerySet[JobArtifact]:
    """The job's evidence (without the sealed bytes), oldest first."""
    return (
        JobArtifact.objects.filter(tenant_id=job.tenant_id, job=job)
        .only("id", "tenant_id", "job_id", "kind", "step", "created_at")
        .order_by("created_at")
    )


def job_artifact_get(*, job: EnrollmentJob, artifact_id: object) -> JobArtifact | None:
    """One artifact of this job (of this job's tenant), or None (other jobs', tenants', malformed ids)."""
    pk = parse_uuid(artifact_id)
    if pk is None:
        return None
    return JobArtifact.objects.filter(tenant_id=job.tenant_id, job=job, pk=pk).first()


@dataclass
class JobStepTiming:
    """One line of a job's timeline: a step from its "started" event to the event that ended it
    (done, failed, skipped), or a job-level event on its own (queued, retry, finished).

    `duration` is how long the step took (None for a lone event or a step still running);
    `since_previous` is the time from the end of the previous line to the start of this one.
    """

    step: str
    status: str
    at: dt.datetime
    ended_at: dt.datetime | None
    duration: dt.timedelta | None
    since_previous: dt.timedelta | None
    message: str
    events: list[JobEvent]


_STEP_END_STATUSES = frozenset({"done", "failed", "skipped"})


def job_step_timings(*, events: list[JobEvent]) -> list[JobStepTiming]:
    """The timeline of a job from its events (oldest first): a step's "started" event and the event
    that ends it make one line with the step's duration; other events are lines of their own. Each
    line also says how long after the previous line it began."""
    lines: list[JobStepTiming] = []
    open_line: JobStepTiming | None = None
    for event in events:
        if (
            open_line is not None
            and event.step == open_line.step
            and event.status in _STEP_END_STATUSES
            and open_line.ended_at is None
        ):
            open_line.status = event.status
            open_line.ended_at = event.created_at
            open_line.duration = event.created_at - open_line.at
            open_line.message = event.message or open_line.message
            open_line.events.append(event)
            open_line = None
            continue
        previous = lines[-1] if lines else None
        since = None
        if previous is not None:
            since = event.created_at - (previous.ended_at or previous.at)
        line = JobStepTiming(
            step=event.step,
            status=event.status,
            at=event.created_at,
            ended_at=None,
            duration=None,
            since_previous=since,
            message=event.message,
            events=[event],
        )
        lines.append(line)
        open_line = line if event.status == "started" else None
    return lines


def jobs_for_rerun(*, tenant: Tenant, job_ids: list[Any]) -> list[EnrollmentJob]:
    """The tenant's jobs among `job_ids` (malformed and other tenants' ids dropped), with what
    `enrollment_job_rerun` reads (company, tenant, certificate) loaded, in the order given."""
    pks = [pk for pk in (parse_uuid(value) for value in job_ids) if pk is not None]
    jobs = EnrollmentJob.objects.filter(tenant=tenant, pk__in=pks).select_related("company", "tenant", "certificate")
    by_id = {job.pk: job for job in jobs}
    ordered: list[EnrollmentJob] = []
    for pk in dict.fromkeys(pks):  # keeps order, drops duplicates
        if pk in by_id:
            ordered.append(by_id[pk])
    return ordered


def job_has_rerun(*, job: EnrollmentJob) -> bool:
    """True when a later attempt was already started from this one."""
    return EnrollmentJob.objects.filter(tenant_id=job.tenant_id, rerun_of=job).exists()


def job_later_success(*, job: EnrollmentJob, attempts: Iterable[EnrollmentJob]) -> EnrollmentJob | None:
    """For a failed `job`: the newest later attempt of the same kind that succeeded (among `attempts`,
    the company's jobs as `job_attempts` returns them), or None. No query."""
    if job.status != JobStatus.FAILED:
        return None
    later = [
        other for other in attempts
        if other.attempt > job.attempt and other.kind == job.kind and other.status == JobStatus.SUCCEEDED
    ]
    return max(later, key=lambda other: other.attempt, default=None)


# Failures after which the SII itself demands a long pause before the next login: retrying sooner makes
# it block longer (see /work/shared/sii-reference.md: "never retry that error quickly"). A manual
# "retry now" waits for the failure's own minimum (`retry_after_seconds`) after these.
SII_MINIMUM_WAIT_CODES: frozenset[str] = frozenset({TooManySessions.code, LoginThrottled.code})


@dataclass(frozen=True)
class RetryNowState:
    """Whether an admin may run a job's scheduled automatic retry now.

    `earliest`: the first moment the SII allows another login after the last failure (None when the
    failure demands no minimum wait); `reason`: why not yet, in Spanish ("" when allowed).
    """

    allowed: bool
    earliest: dt.datetime | None
    reason: str


def job_minimum_wait_until(*, job: EnrollmentJob) -> dt.datetime | None:
    """When the SII allows another login after `job`'s last failure, for failures that demand a minimum
    wait (`SII_MINIMUM_WAIT_CODES`), else None. The failure's time is its retry event's (one query),
    or the job's last heartbeat when there is none."""
    if job.failure_code not in SII_MINIMUM_WAIT_CODES:
        return None
    minimum = failure_from_code(job.failure_code).retry_after_seconds or 0
    failed_at = (
        JobEvent.objects.filter(tenant_id=job.tenant_id, job=job, step="retry")
        .order_by("-created_at", "-id")
        .values_list("created_at", flat=True)
        .first()
    ) or job.heartbeat_at or job.started_at or job.created_at
    return failed_at + dt.timedelta(seconds=minimum * settings.AUTORIZA_JOB_RETRY_DELAY_SCALE)


def job_retry_now_state(*, job: EnrollmentJob, now: dt.datetime | None = None) -> RetryNowState | None:
    """Whether `job`'s scheduled automatic retry may run now; None when `job` is not waiting for one
    (not queued again after a failure, or already due)."""
    now = now or timezone.now()
    if not (job.status == JobStatus.QUEUED and job.retry_count > 0 and job.run_after is not None and job.run_after > now):
        return None
    earliest = job_minimum_wait_until(job=job)
    if earliest is not None and earliest > now:
        local = timezone.localtime(earliest)
        return RetryNowState(
            allowed=False,
            earliest=earliest,
            reason=(
                f"El SII exige esperar después de este error ({failure_label(job.failure_code).lower()}): "
                f"reintentar antes hace que bloquee por más tiempo. Se puede reintentar desde las {local:%H:%M}."
            ),
        )
    return RetryNowState(allowed=True, earliest=earliest, reason="")


# --- Invitations --------------------------------------------------------------------------------


def invitation_list(*, tenant: Tenant) -> QuerySet[Invitation]:
    """The tenant's invitations, newest first, with company and author loaded."""
    return (
        Invitation.objects.filter(tenant=tenant)
        .select_related("company", "created_by")
        .order_by("-created_at", "-id")
    )


def invitation_get(*, tenant: Tenant, invitation_id: object) -> Invitation | None:
    """One invitation of the tenant, or None (also for another tenant's or a malformed id)."""
    try:
        pk = int(str(invitation_id))
    except ValueError:
        return None
    return invitation_list(tenant=tenant).filter(pk=pk).first()


def invitation_status(invitation: Invitation, *, now: dt.datetime | None = None) -> str:
    """"accepted", "revoked", "expired" or "open": what the invitation list shows."""
    now = now or timezone.now()
    if invitation.accepted_at:
        return "accepted"
    if invitation.revoked_at:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "open"


# Why a RUT can't get a new invitation (see `company_invitation_blockers`).
BLOCKED_CLIENT = "client"
BLOCKED_OPEN_INVITATION = "open_invitation"


def company_invitation_blockers(*, tenant: Tenant, ruts: set[str]) -> dict[str, str]:
    """For the canonical RUTs among `ruts` that may not be invited again: why (two queries).

    BLOCKED_CLIENT: already a client that signed up or moved past the invitation.
    BLOCKED_OPEN_INVITATION: invited, and the invitation is still open (resend it instead).
    RUTs not in the result are new, or invited companies whose invitations were all revoked or
    expired and nobody signed up: those may be invited again.
    """
    if not ruts:
        return {}
    companies = list(
        ClientCompany.objects.filter(tenant=tenant, rut__in=ruts).values_list("pk", "rut", "stage", "owner_id")
    )
    invited_ids = [pk for pk, _, stage, owner in companies if stage == CompanyStage.INVITED and owner is None]
    with_open = set(
        Invitation.objects.filter(
            tenant=tenant, company_id__in=invited_ids, revoked_at__isnull=True, accepted_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).values_list("company_id", flat=True)
    )
    blockers: dict[str, str] = {}
    for pk, rut, _, _ in companies:
        if pk not in invited_ids:
            blockers[rut] = BLOCKED_CLIENT
        elif pk in with_open:
            blockers[rut] = BLOCKED_OPEN_INVITATION
    return blockers


def company_reinvitable(*, tenant: Tenant, rut: str) -> ClientCompany | None:
    """The tenant's INVITED company with this canonical RUT that nobody claimed and whose
    invitations are all closed (may be invited again), or None."""
    if company_invitation_blockers(tenant=tenant, ruts={rut}):
        return None
    return ClientCompany.objects.filter(tenant=tenant, rut=rut, stage=CompanyStage.INVITED, owner__isnull=True).first()


# --- Team, representatives, audit ---------------------------------------------------------------


def member_list(*, tenant: Tenant) -> QuerySet[Membership]:
    """The firm's members with their users, owners first, then by email."""
    role_order = Case(
        When(role=Role.OWNER, then=Value(0)), When(role=Role.ADMIN, then=Value(1)), default=Value(2),
        output_field=IntegerField(),
    )
    return (
        Membership.objects.filter(tenant=tenant)
        .select_related("user")
        .annotate(role_position=role_order)
        .order_by("role_position", "user__email", "id")
    )


def member_get(*, tenant: Tenant, membership_id: object) -> Membership | None:
    """One membership of the tenant, or None (other tenants' and malformed ids included)."""
    try:
        pk = int(str(membership_id))
    except ValueError:
        return None
    return Membership.objects.select_related("user", "tenant").filter(tenant=tenant, pk=pk).first()


def owner_count(*, tenant: Tenant) -> int:
    """How many owners the firm has."""
    return Membership.objects.filter(tenant=tenant, role=Role.OWNER).count()


def representative_list(*, tenant: Tenant) -> QuerySet[Representative]:
    """The firm's representatives, active first, oldest first."""
    return Representative.objects.filter(tenant=tenant).order_by("-is_active", "created_at", "id")


def representative_get(*, tenant: Tenant, representative_id: object) -> Representative | None:
    """One representative of the tenant, or None."""
    try:
        pk = int(str(representative_id))
    except ValueError:
        return None
    return Representative.objects.filter(tenant=tenant, pk=pk).first()


def representative_get_by_rut(*, tenant: Tenant, rut: str) -> Representative | None:
    """The tenant's representative (active or not) with this canonical RUT, or None."""
    return representative_for_rut(tenant=tenant, rut=rut)


def audit_filtered(*, tenant: Tenant, action: str = "") -> QuerySet[AuditEntry]:
    """The tenant's audit log, newest first, optionally only one action; actor and company loaded."""
    queryset = AuditEntry.objects.filter(tenant=tenant).select_related("company").order_by("-created_at", "-id")
    if action:
        queryset = queryset.filter(action=action)
    return queryset


def audit_job_kinds(*, tenant: Tenant, entries: Iterable[AuditEntry]) -> dict[str, str]:
    """The kind of each job the `entries` name in their details (`"job"`), by job id as stored there
    (one query; other tenants' and malformed ids are left out)."""
    ids = {str(entry.details.get("job")) for entry in entries if isinstance(entry.details, dict) and entry.details.get("job")}
    pks = [pk for pk in (parse_uuid(value) for value in ids) if pk is not None]
    if not pks:
        return {}
    return {str(pk): kind for pk, kind in EnrollmentJob.objects.filter(tenant=tenant, pk__in=pks).values_list("pk", "kind")}


def user_by_email(*, email: str) -> AbstractBaseUser | None:
    """The user whose username or email is `email` (case-insensitive), or None."""
    User = get_user_model()
    return User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).order_by("id").first()


def tenant_admin_recipients(*, tenant: Tenant) -> list[tuple[str, str]]:
    """(name, e-mail) of the firm's active owners and admins with an address, oldest membership first;
    the firm's notification addresses (with no name) when none has one."""
    members = (
        Membership.objects.filter(tenant=tenant, role__in=(Role.OWNER, Role.ADMIN), user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
        .order_by("pk")
    )
    people = [(member.user.get_full_name() or "", member.user.email) for member in members]
    return people or [("", address) for address in tenant.notification_email_list]
