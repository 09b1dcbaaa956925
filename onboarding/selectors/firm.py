"""Reads for the firm side (dashboard, exports, job detail, invitations, team, audit).

Every selector takes the tenant it reads from and starts its queryset from a tenant filter, so
nothing here can return another tenant's rows. The dashboard list is built to cost the same number
of queries whatever the page size or the tenant's size: the latest job of each row comes from one
windowed query per page (or per export chunk), never one query per row, and the counts by stage
come from the cache while no company changed stage.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import (
    Case,
    F,
    Func,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, Length, Lower, Replace, RowNumber
from django.utils import timezone

from onboarding.domain.display import failure_label
from onboarding.models import (
    AuditEntry,
    ClientCompany,
    CompanyClaim,
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
from onboarding.selectors.core import company_stage_counts, parse_uuid
from sii_bot.errors import LoginThrottled, TooManySessions, failure_from_code

# --- Dashboard --------------------------------------------------------------------------------

# Stages whose rows the dashboard keeps refreshing (a worker may change them any second).
ACTIVE_STAGES: tuple[str, ...] = (CompanyStage.QUEUED, CompanyStage.RUNNING)

# The pipeline order, used when sorting by stage (alphabetical order of the codes means nothing).
STAGE_ORDER: tuple[str, ...] = (
    CompanyStage.INVITED,
    CompanyStage.WAITING_CERTIFICATE,
    CompanyStage.QUEUED,
    CompanyStage.RUNNING,
    CompanyStage.FAILED,
    CompanyStage.AUTHORIZED,
)

# Public sort keys (what the URL carries) → the model ordering they stand for.
SORT_FIELDS: dict[str, tuple[str, ...]] = {
    "nombre": ("legal_name_folded",),
    "rut": ("rut_length", "rut"),
    "estado": ("stage_position",),
    "cambio": ("stage_changed_at",),
    "creado": ("created_at",),
}
DEFAULT_SORT = "-cambio"

# Spanish letters folded for search and sorting, mapped the same way in SQL and in Python. Both cases
# are listed because SQLite's lower() folds only ASCII (PostgreSQL's folds everything).
_FOLDED_LETTERS: tuple[tuple[str, str], ...] = tuple(
    (accented, plain)
    for lower, plain in (("á", "a"), ("é", "e"), ("í", "i"), ("ó", "o"), ("ú", "u"), ("ü", "u"), ("ñ", "n"))
    for accented in (lower, lower.upper())
)


def fold_text(text: str) -> str:
    """`text` as `folded()` stores it for comparison: Spanish accents and ñ dropped, lower case."""
    for accented, plain in _FOLDED_LETTERS:
        text = text.replace(accented, plain)
    return text.lower()


def folded(field: str) -> Combinable:
    """SQL for `fold_text(field)`, the same on SQLite and PostgreSQL: "Compañía Ñandú" and
    "COMPANIA NANDU" compare equal, so searching and sorting by name ignore case and accents."""
    expression: Combinable = F(field)
    for accented, plain in _FOLDED_LETTERS:
        expression = Replace(expression, Value(accented), Value(plain))
    return Lower(expression)


# Characters that may appear in a RUT as people type it: digits, K, dots, dashes, spaces.
_RUTISH = re.compile(r"^[0-9kK.\s\u2010-\u2014\u2212-]+$")


@dataclass(frozen=True)
class CompanyFilters:
    """What the dashboard (and its CSV export) shows: validated filter values, all optional.

    `date_field` is "created" or "stage_changed"; `date_from`/`date_to` are inclusive local dates.
    `sort` is one of SORT_FIELDS' keys, optionally prefixed with "-" for descending.
    """

    stage: str = ""
    query: str = ""
    date_field: str = "stage_changed"
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    sort: str = DEFAULT_SORT


def _local_midnight(day: dt.date) -> dt.datetime:
    """The aware datetime at which `day` starts in the project's time zone (America/Santiago)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_current_timezone())


def rut_search_key(text: str) -> str | None:
    """The compact form (digits and K, no dots or dash) to look for in RUTs, or None if `text`
    doesn't look like (part of) a RUT. "76.086.428-5", "760864285", "76086428" all qualify."""
    text = text.strip()
    if not text or not _RUTISH.match(text):
        return None
    compact = re.sub(r"[^0-9kK]", "", text).upper()
    return compact or None


def company_search(*, queryset: QuerySet[ClientCompany], query: str) -> QuerySet[ClientCompany]:
    """Narrow `queryset` to companies whose RUT (in any spelling) or name contains `query`.

    A RUT-like query matches the RUT with dots and dash ignored, so "76.086.428-5", "76086428-5",
    "760864285" and a partial "086428" all find 76086428-5; a lower-case k matches K. Names match
    in the legal name, the contact's name (both ignoring case and Spanish accents: "nunoa" finds
    "Ñuñoa") and the contact's email (ignoring case).
    """
    query = query.strip()
    if not query:
        return queryset
    needle = fold_text(query)
    queryset = queryset.annotate(legal_name_folded=folded("legal_name"), owner_name_folded=folded("owner_name"))
    text_match = (
        Q(legal_name_folded__contains=needle) | Q(owner_name_folded__contains=needle) | Q(owner_email__icontains=query)
    )
    compact = rut_search_key(query)
    if compact is None:
        return queryset.filter(text_match)
    queryset = queryset.annotate(rut_compact=Replace("rut", Value("-"), Value("")))
    return queryset.filter(Q(rut_compact__contains=compact) | text_match)


def _latest_job_prefetch() -> Prefetch:
    """Prefetch each company's most recent attempt into `latest_jobs` (a list of 0 or 1 job).

    Django turns the sliced queryset into one windowed query (ROW_NUMBER() OVER (PARTITION BY
    company ORDER BY attempt DESC)) over the page's companies: one query, whatever the page size.
    """
    jobs = (
        EnrollmentJob.objects.only(
            "id", "company_id", "tenant_id", "kind", "status", "outcome", "attempt", "retry_count", "created_at",
            "finished_at", "failure_code", "failure_message", "certificate_id",
        )
        .annotate(kind_number=_kind_number())
        .order_by("-attempt")[:1]
    )
    return Prefetch("jobs", queryset=jobs, to_attr="latest_jobs")


def _kind_number() -> Window:
    """The job's number among its company's jobs of the same kind ("Retiro, intento 1" even when it is
    the company's third job): what `domain.display.attempt_label` shows."""
    return Window(RowNumber(), partition_by=[F("company_id"), F("kind")], order_by=F("attempt").asc())


def _company_filtered(*, tenant: Tenant, filters: CompanyFilters) -> QuerySet[ClientCompany]:
    """The tenant's client companies narrowed and sorted by `filters` (lazy, nothing prefetched).

    Ties are broken by id so pages never overlap.
    """
    queryset = ClientCompany.objects.filter(tenant=tenant)
    if filters.stage:
        queryset = queryset.filter(stage=filters.stage)
    date_column = "created_at" if filters.date_field == "created" else "stage_changed_at"
    if filters.date_from:
        queryset = queryset.filter(**{f"{date_column}__gte": _local_midnight(filters.date_from)})
    if filters.date_to:
        queryset = queryset.filter(**{f"{date_column}__lt": _local_midnight(filters.date_to + dt.timedelta(days=1))})
    queryset = company_search(queryset=queryset, query=filters.query)

    sort = filters.sort if filters.sort.lstrip("-") in SORT_FIELDS else DEFAULT_SORT
    descending = sort.startswith("-")
    fields = SORT_FIELDS[sort.lstrip("-")]
    if "legal_name_folded" in fields and "legal_name_folded" not in queryset.query.annotations:
        # "empresa x" and "EMPRESA Y" sort together, and "Ñandú" after "Nadal", not after "Z".
        queryset = queryset.annotate(legal_name_folded=folded("legal_name"))
    if "rut_length" in fields:
        # Canonical RUTs have no padding: ordering by length first gives numeric order (9.xxx before 76.xxx).
        queryset = queryset.annotate(rut_length=Length("rut"))
    if "stage_position" in fields:
        queryset = queryset.annotate(
            stage_position=Case(
                *(When(stage=stage, then=Value(position)) for position, stage in enumerate(STAGE_ORDER)),
                default=Value(len(STAGE_ORDER)),
                output_field=IntegerField(),
            )
        )
    prefix = "-" if descending else ""
    ordering = [prefix + field for field in fields] + [prefix + "id"]
    return queryset.order_by(*ordering)


def company_dashboard_list(*, tenant: Tenant, filters: CompanyFilters) -> QuerySet[ClientCompany]:
    """The tenant's client companies narrowed and sorted by `filters`, each with `latest_jobs`.

    Lazily evaluated: stream it with `.iterator(chunk_size=…)` (two queries per chunk), as the CSV
    export does. The dashboard page reads lighter rows: `company_dashboard_values` + `dashboard_rows`.
    """
    return _company_filtered(tenant=tenant, filters=filters).prefetch_related(_latest_job_prefetch())


@dataclass(frozen=True, slots=True)
class LatestJob:
    """What a dashboard row shows of a company's most recent attempt."""

    pk: uuid.UUID
    status: str
    attempt: int
    failure_code: str
    failure_message: str
    certificate_id: uuid.UUID | None = None
    certificate_destroyed_at: dt.datetime | None = None
    kind: str = "authorize"
    outcome: str = ""
    retry_count: int = 0
    run_after: dt.datetime | None = None
    kind_number: int = 1

    @property
    def certificate_kept(self) -> bool:
        """Whether the attempt's certificate is still stored: a re-run needs it (`job_rerun`)."""
        return self.certificate_id is not None and self.certificate_destroyed_at is None

    @property
    def waits_for_retry(self) -> bool:
        """Queued again after a transient failure, its automatic retry not yet due."""
        return self.status == "queued" and self.retry_count > 0 and self.run_after is not None and self.run_after > timezone.now()


@dataclass(frozen=True, slots=True)
class DashboardRow:
    """One line of the dashboard: the company's displayed columns and its latest attempt (or None).

    Plain values, not model instances: building 50 of these costs a fraction of 50 models plus a
    prefetch, and the page shows nothing else.
    """

    pk: int
    rut: str
    legal_name: str
    owner_name: str
    owner_email: str
    stage: str
    stage_changed_at: dt.datetime
    claimants: int  # how many people registered the company themselves (CompanyClaim); 0 if the firm did
    job: LatestJob | None


# The company columns of a DashboardRow, in its field order (values_list tuples map onto it).
_ROW_COLUMNS: tuple[str, ...] = (
    "pk", "rut", "legal_name", "owner_name", "owner_email", "stage", "stage_changed_at", "claimants",
)


def _with_claimants(queryset: QuerySet[ClientCompany]) -> QuerySet[ClientCompany]:
    """`queryset` annotated with `claimants`, a correlated count in the same statement (no query more)."""
    # COUNT(*) as a plain function, not an aggregate: the subquery needs no GROUP BY.
    count = CompanyClaim.objects.filter(company=OuterRef("pk")).order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return queryset.annotate(claimants=Coalesce(Subquery(count, output_field=IntegerField()), 0))
_JOB_COLUMNS: tuple[str, ...] = (
    "company_id", "pk", "status", "attempt", "failure_code", "failure_message", "certificate_id",
    "certificate__destroyed_at", "kind", "outcome", "retry_count", "run_after", "kind_number",
)


def company_dashboard_values(*, tenant: Tenant, filters: CompanyFilters) -> QuerySet[Any]:
    """What `company_dashboard_list` selects, as tuples of the dashboard's columns (lazy): paginate
    it (one COUNT unless the paginator is told the count, one page query), then pass the page to
    `dashboard_rows` (one more query) for the rows with their latest attempts."""
    return _with_claimants(_company_filtered(tenant=tenant, filters=filters)).values_list(*_ROW_COLUMNS)


def _latest_jobs(*, tenant: Tenant, company_ids: list[int]) -> dict[int, LatestJob]:
    """Each of these companies' most recent attempt, by company id: one windowed query
    (ROW_NUMBER() OVER (PARTITION BY company ORDER BY attempt DESC) = 1), whatever their history."""
    if not company_ids:
        return {}
    rows = (
        EnrollmentJob.objects.filter(tenant=tenant, company_id__in=company_ids)
        .annotate(
            position=Window(RowNumber(), partition_by=F("company_id"), order_by=F("attempt").desc()),
            kind_number=_kind_number(),
        )
        .filter(position=1)
        .values_list(*_JOB_COLUMNS)
    )
    return {company_id: LatestJob(*job) for company_id, *job in rows}


def dashboard_rows(*, tenant: Tenant, companies: Iterable[tuple[Any, ...]]) -> list[DashboardRow]:
    """The dashboard rows of `companies` (tuples from `company_dashboard_values`, in their order),
    each with its latest attempt of this tenant: one query, none when `companies` is empty."""
    companies = list(companies)
    latest = _latest_jobs(tenant=tenant, company_ids=[company[0] for company in companies])
    return [DashboardRow(*company, job=latest.get(company[0])) for company in companies]


def company_rows_by_ids(*, tenant: Tenant, company_ids: list[int]) -> list[DashboardRow]:
    """The tenant's companies with these ids (others' ids are silently dropped) as dashboard rows,
    in the order given: what the dashboard's live refresh re-renders (two queries)."""
    companies = _with_claimants(ClientCompany.objects.filter(tenant=tenant, pk__in=company_ids)).values_list(*_ROW_COLUMNS)
    by_id = {company[0]: company for company in companies}
    return dashboard_rows(tenant=tenant, companies=[by_id[pk] for pk in company_ids if pk in by_id])


# How long a tenant's stage counts may be served from the cache at most. Every stage change moves
# `stage_changed_at` to now, which changes the cache key at once; this bound only matters for what
# doesn't (a row deleted, a bulk insert dated in the past, a worker whose clock runs behind).
STAGE_COUNTS_CACHE_SECONDS = 30


def company_stage_counts_cached(*, tenant: Tenant) -> dict[str, int]:
    """`company_stage_counts` (every stage, zeros included), read from the cache while none of the
    tenant's companies changed stage.

    Costs one index lookup (the tenant's latest `stage_changed_at`, on company_tenant_changed) and
    one cache read; the GROUP BY over all the tenant's companies (milliseconds at 10,000) runs only
    after a change. The key is content-addressed (tenant + latest change), so every process agrees.
    """
    latest = (
        ClientCompany.objects.filter(tenant=tenant)
        .order_by("-stage_changed_at")
        .values_list("stage_changed_at", flat=True)
        .first()
    )
    key = f"dashboard:stage-counts:{tenant.pk}:{latest.isoformat() if latest else '-'}"
    counts = cache.get(key)
    if counts is None:
        counts = company_stage_counts(tenant=tenant)
        cache.set(key, counts, STAGE_COUNTS_CACHE_SECONDS)
    return counts


def company_latest_job(company: ClientCompany) -> EnrollmentJob | None:
    """The latest job prefetched by `company_dashboard_list` (no query), or None."""
    jobs = getattr(company, "latest_jobs", None)
    return jobs[0] if jobs else None


def company_export_rows(*, tenant: Tenant, filters: CompanyFilters, chunk_size: int = 2000) -> Iterator[ClientCompany]:
    """Every company the dashboard shows for `filters` (all pages), streamed in chunks of
    `chunk_size` with their latest job: memory stays flat for any tenant size."""
    return company_dashboard_list(tenant=tenant, filters=filters).iterator(chunk_size=chunk_size)


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
    return Representative.objects.filter(tenant=tenant, rut=rut).first()


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
    from django.contrib.auth import get_user_model

    User = get_user_model()
    return User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).order_by("id").first()


def active_company_ids(companies: Iterable[ClientCompany | DashboardRow]) -> list[int]:
    """The ids of the rows among `companies` that are queued or running (no query)."""
    return [company.pk for company in companies if company.stage in ACTIVE_STAGES]


__all__ = [
    "ACTIVE_STAGES",
    "BLOCKED_CLIENT",
    "BLOCKED_OPEN_INVITATION",
    "DEFAULT_SORT",
    "SII_MINIMUM_WAIT_CODES",
    "SORT_FIELDS",
    "STAGE_COUNTS_CACHE_SECONDS",
    "STAGE_ORDER",
    "CompanyFilters",
    "DashboardRow",
    "JobStepTiming",
    "LatestJob",
    "RetryNowState",
    "active_company_ids",
    "audit_filtered",
    "audit_job_kinds",
    "company_dashboard_list",
    "company_dashboard_values",
    "company_export_rows",
    "company_invitation_blockers",
    "company_latest_job",
    "company_reinvitable",
    "company_rows_by_ids",
    "company_search",
    "company_stage_counts_cached",
    "dashboard_rows",
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
    "rut_search_key",
    "user_by_email",
]
