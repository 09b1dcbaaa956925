"""Reads for the firm's dashboard and its CSV export: the client companies filtered, searched and
sorted, each with its latest attempt, and the counts by stage.

Every selector takes the tenant it reads from and starts its queryset from a tenant filter. The list
is built to cost the same number of queries whatever the page size or the tenant's size: the latest
job of each row comes from one windowed query per page (or per export chunk), never one query per
row, and the counts by stage come from the cache while no company changed stage.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models import (
    Case,
    F,
    Func,
    IntegerField,
    Max,
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

from onboarding.domain.display import CERTIFICATE_REQUEST_MARKER
from onboarding.models import (
    AuditAction,
    AuditEntry,
    ClientCompany,
    CompanyClaim,
    CompanyStage,
    EnrollmentJob,
    JobKind,
    JobStatus,
    Tenant,
)
from onboarding.selectors.core import company_stage_counts

__all__ = [
    "ACCESS_FILTER_PROBLEMS",
    "ACTIVE_STAGES",
    "DEFAULT_SORT",
    "SORT_FIELDS",
    "STAGE_COUNTS_CACHE_SECONDS",
    "STAGE_ORDER",
    "CompanyFilters",
    "DashboardRow",
    "LatestJob",
    "active_company_ids",
    "certificate_requests_since",
    "company_dashboard_list",
    "company_dashboard_values",
    "company_export_rows",
    "company_latest_job",
    "company_rows_by_ids",
    "company_search",
    "company_stage_counts_cached",
    "dashboard_rows",
    "fold_text",
    "folded",
    "rut_search_key",
]


# The dashboard filter value (`?acceso=problemas`) for "Acceso con problemas".
ACCESS_FILTER_PROBLEMS = "problemas"

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
    # "problemas": only the clients whose last access check found a problem (`access_problem`).
    access: str = ""


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
    if filters.access == ACCESS_FILTER_PROBLEMS:
        queryset = queryset.exclude(access_problem="")
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
    kind: str = JobKind.AUTHORIZE
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
        return self.status == JobStatus.QUEUED and self.retry_count > 0 and self.run_after is not None and self.run_after > timezone.now()


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
    access_verified_at: dt.datetime | None  # when an access check last read the SII for it
    access_problem: str  # the AccessProblem that check found, "" when none
    job: LatestJob | None


# The company columns of a DashboardRow, in its field order (values_list tuples map onto it).
_ROW_COLUMNS: tuple[str, ...] = (
    "pk", "rut", "legal_name", "owner_name", "owner_email", "stage", "stage_changed_at", "claimants",
    "access_verified_at", "access_problem",
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


def active_company_ids(companies: Iterable[ClientCompany | DashboardRow]) -> list[int]:
    """The ids of the rows among `companies` that are queued or running (no query)."""
    return [company.pk for company in companies if company.stage in ACTIVE_STAGES]


def certificate_requests_since(*, tenant: Tenant, company_ids: Iterable[int], since: dt.datetime) -> dict[int, dt.datetime]:
    """{company id: when it was last asked for a new certificate} for those of `company_ids` (of
    `tenant`) asked at or after `since` (the audit entries `services.company_certificate_request`
    writes); companies not asked are absent. One query, none for no ids."""
    ids = list(company_ids)
    if not ids:
        return {}
    rows = (
        AuditEntry.objects.filter(
            tenant=tenant, company_id__in=ids, action=AuditAction.INVITATION, created_at__gte=since,
            **{f"details__{CERTIFICATE_REQUEST_MARKER}": True},
        )
        .values("company_id")
        .annotate(last=Max("created_at"))
    )
    return {row["company_id"]: row["last"] for row in rows}
