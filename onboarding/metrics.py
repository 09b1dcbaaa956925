"""Job metrics for Prometheus, read from the database at scrape time.

The database is the cluster's truth: every web process and every worker on every machine writes the
same job rows, so any web process that is scraped reports the same platform-wide numbers. Nothing is
counted in process memory here (a worker's in-memory counter would be lost at every restart, and each
of N workers would report only its own share).

Totals that only grow (finished jobs, their durations, failures by code, retries) are exported as
Prometheus counters and a cumulative histogram computed over every finished job row: finished jobs are
final (a re-run is a new row), so these values are monotonic, and `rate()`, `increase()` and
`histogram_quantile(0.95, rate(autoriza_job_duration_seconds_bucket[1h]))` work exactly as on
in-process metrics, whichever web process answers the scrape. Deleting job rows would lower them;
Prometheus reads that as a counter reset.

Cost: five aggregate queries (GROUP BY / conditional COUNT) per scrape. The finished-jobs ones scan
the job table; scrape every 30–60 s. Labels carry only bounded codes (job kind and status, failure
code) and, for jobs in flight, the firm's slug: never a name, a RUT, an e-mail or a secret.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from onboarding.models import ACTIVE_JOB_STATUSES, EnrollmentJob, JobKind, JobStatus

logger = logging.getLogger(__name__)

# Upper bounds (seconds) of the job duration histogram: a job takes tens of seconds to a few minutes
# (SII_JOB_TIMEOUT is 240 s, the hard limit 300 s); the last buckets catch the stuck ones.
DURATION_BUCKETS: tuple[float, ...] = (5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 600)
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass
class DurationSeries:
    """One (kind, status) series of the job duration histogram: cumulative bucket counts, in the
    order of DURATION_BUCKETS, the total count and the sum of durations in seconds."""

    buckets: list[int]
    count: int
    sum_seconds: float


@dataclass
class JobsSnapshot:
    """Platform-wide job figures, as read in one scrape (see `jobs_snapshot`)."""

    by_kind_status: dict[tuple[str, str], int] = field(default_factory=dict)
    retries_by_kind: dict[str, int] = field(default_factory=dict)
    retried_jobs_by_kind: dict[str, int] = field(default_factory=dict)
    durations: dict[tuple[str, str], DurationSeries] = field(default_factory=dict)
    failures_by_code: dict[str, int] = field(default_factory=dict)
    queued_due: int = 0
    queued_scheduled: int = 0
    oldest_due_age_seconds: float = 0.0
    active_by_tenant: dict[tuple[str, str], int] = field(default_factory=dict)


def jobs_snapshot() -> JobsSnapshot:
    """Read every job figure the metrics export, across all tenants, in five aggregate queries.

    Raises DatabaseError when the database does not answer (the collector reports it as a gauge).
    """
    snapshot = JobsSnapshot()
    now = timezone.now()
    jobs = EnrollmentJob.objects.order_by()  # no default ordering may leak into the GROUP BY

    for row in jobs.values("kind", "status").annotate(
        n=Count("pk"), retries=Coalesce(Sum("retry_count"), 0), retried=Count("pk", filter=Q(retry_count__gt=0))
    ):
        snapshot.by_kind_status[(row["kind"], row["status"])] = row["n"]
        snapshot.retries_by_kind[row["kind"]] = snapshot.retries_by_kind.get(row["kind"], 0) + row["retries"]
        snapshot.retried_jobs_by_kind[row["kind"]] = snapshot.retried_jobs_by_kind.get(row["kind"], 0) + row["retried"]

    # The duration of a finished job's last run: a retry or a take-over claims the job again and
    # restarts `started_at`, so the backoff wait between attempts is not counted as work.
    finished = jobs.filter(status__in=FINISHED_STATUSES, started_at__isnull=False, finished_at__isnull=False).annotate(
        duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    )
    bucket_counts = {
        f"le_{index}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(DURATION_BUCKETS)
    }
    for row in finished.values("kind", "status").annotate(n=Count("pk"), total=Sum("duration"), **bucket_counts):
        total = row["total"]
        snapshot.durations[(row["kind"], row["status"])] = DurationSeries(
            buckets=[row[f"le_{index}"] for index in range(len(DURATION_BUCKETS))],
            count=row["n"],
            sum_seconds=total.total_seconds() if total is not None else 0.0,
        )

    for row in jobs.filter(status=JobStatus.FAILED).values("failure_code").annotate(n=Count("pk")):
        snapshot.failures_by_code[row["failure_code"] or "unknown"] = row["n"]

    # A QUEUED job is due (waiting for a worker) unless it is a scheduled retry still in its backoff.
    # It has waited since it became due: its retry time, or its creation for a first run.
    due = Q(run_after__isnull=True) | Q(run_after__lte=now)
    queue = jobs.filter(status=JobStatus.QUEUED).aggregate(
        due=Count("pk", filter=due),
        scheduled=Count("pk", filter=~due),
        oldest=Min(Coalesce("run_after", "created_at"), filter=due),
    )
    snapshot.queued_due = queue["due"]
    snapshot.queued_scheduled = queue["scheduled"]
    snapshot.oldest_due_age_seconds = max(0.0, (now - queue["oldest"]).total_seconds()) if queue["oldest"] else 0.0

    for row in jobs.filter(status__in=ACTIVE_JOB_STATUSES).values("tenant__slug", "status").annotate(n=Count("pk")):
        snapshot.active_by_tenant[(row["tenant__slug"], row["status"])] = row["n"]
    return snapshot


class JobsCollector(Collector):
    """A prometheus_client collector that reads `jobs_snapshot()` at every scrape.

    Register it on a registry built for the scrape (portal.metrics), not on the global one, so that
    importing this module never queries the database.
    """

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "autoriza_metrics_database_up", "1 if the job figures below were read from the database in this scrape, else 0."
        )
        try:
            snapshot = jobs_snapshot()
        except DatabaseError:
            logger.exception("metrics: the database did not answer")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _families(snapshot)
        spent = GaugeMetricFamily(
            "autoriza_metrics_database_seconds", "Time spent reading the job figures from the database in this scrape."
        )
        spent.add_metric([], time.perf_counter() - started)
        yield spent


def _families(snapshot: JobsSnapshot) -> Iterator[Metric]:
    kinds = sorted({str(k) for k in JobKind.values} | {k for k, _ in snapshot.by_kind_status})
    statuses = sorted({str(s) for s in JobStatus.values} | {s for _, s in snapshot.by_kind_status})

    jobs = GaugeMetricFamily(
        "autoriza_jobs",
        "Enrollment jobs in the database, by kind and current status (all tenants, all time).",
        labels=["kind", "status"],
    )
    for kind in kinds:
        for status in statuses:
            jobs.add_metric([kind, status], snapshot.by_kind_status.get((kind, status), 0))
    yield jobs

    durations = HistogramMetricFamily(
        "autoriza_job_duration_seconds",
        "Duration of finished jobs' last run (claim to finish), by kind and final status; cumulative over "
        "every finished job in the database.",
        labels=["kind", "status"],
    )
    for kind in kinds:
        for status in (str(s) for s in FINISHED_STATUSES):
            series = snapshot.durations.get((kind, status), DurationSeries([0] * len(DURATION_BUCKETS), 0, 0.0))
            buckets = [(_bound(b), c) for b, c in zip(DURATION_BUCKETS, series.buckets)] + [("+Inf", series.count)]
            durations.add_metric([kind, status], buckets=buckets, sum_value=series.sum_seconds)
    yield durations

    failures = CounterMetricFamily(
        "autoriza_job_failures",
        "Jobs that ended FAILED, by failure code (SII refusals, SII faults after the retries, worker "
        "lost, internal errors).",
        labels=["code"],
    )
    for code, count in sorted(snapshot.failures_by_code.items()):
        failures.add_metric([code], count)
    yield failures

    retries = CounterMetricFamily(
        "autoriza_job_retries", "Automatic retries of jobs (sum of every job's retry count), by kind.", labels=["kind"]
    )
    retried = CounterMetricFamily(
        "autoriza_jobs_retried", "Jobs that were retried automatically at least once, by kind.", labels=["kind"]
    )
    for kind in kinds:
        retries.add_metric([kind], snapshot.retries_by_kind.get(kind, 0))
        retried.add_metric([kind], snapshot.retried_jobs_by_kind.get(kind, 0))
    yield retries
    yield retried

    depth = GaugeMetricFamily(
        "autoriza_queue_depth",
        "QUEUED jobs: 'due' wait for a free worker now, 'scheduled' are automatic retries still in their backoff.",
        labels=["state"],
    )
    depth.add_metric(["due"], snapshot.queued_due)
    depth.add_metric(["scheduled"], snapshot.queued_scheduled)
    yield depth

    oldest = GaugeMetricFamily(
        "autoriza_queue_oldest_due_age_seconds",
        "How long the longest-waiting due QUEUED job has waited since it became due (0 when none waits).",
    )
    oldest.add_metric([], snapshot.oldest_due_age_seconds)
    yield oldest

    per_tenant = GaugeMetricFamily(
        "autoriza_tenant_jobs_active",
        "QUEUED and RUNNING jobs per firm (tenant slug); firms with none are not listed.",
        labels=["tenant", "status"],
    )
    for (tenant, status), count in sorted(snapshot.active_by_tenant.items()):
        per_tenant.add_metric([tenant, status], count)
    yield per_tenant


def _bound(seconds: float) -> str:
    """A bucket's `le` label as prometheus_client writes it for its own histograms ("5.0")."""
    return str(float(seconds))
