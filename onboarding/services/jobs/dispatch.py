"""The dispatcher: which QUEUED jobs are sent to the broker, and when (docs/architecture.md, "Fair
scheduling"). Live jobs go at once, oldest first; background jobs through the fair feeder, tenants
in turn, at most AUTORIZA_BACKGROUND_IN_FLIGHT in flight; a certificate holder with as many jobs in
flight as its SII session cap gets nothing more. A message the broker lost is sent again.

The lifecycle runs the feeder when a background job is created; the periodic task and the worker
(right after each job) run the whole dispatch.
"""
from __future__ import annotations

import heapq
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from onboarding.models import EnrollmentJob, JobLane, JobStatus
from onboarding.services.jobs.lanes import enrollment_job_send

__all__ = ["enrollment_jobs_dispatch", "enrollment_jobs_feed"]


def _sendable(now: datetime, lost_after: timedelta, horizon: datetime) -> Q:
    """QUEUED jobs due now, or by `horizon` when they only wait for their SII leases, whose message was
    never sent, or was sent so long ago that the broker lost it. A scheduled retry (it carries its
    failure's code) is never sent before its time: its wait is the SII's minimum, not a lease's."""
    return (
        Q(status=JobStatus.QUEUED)
        & (Q(run_after__isnull=True) | Q(run_after__lte=now) | Q(run_after__lte=horizon, failure_code=""))
        & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - lost_after))
    )


def _in_flight(now: datetime, lost_after: timedelta) -> Q:
    """Jobs running, or sent and (presumably) waiting in the broker."""
    return Q(status=JobStatus.RUNNING) | Q(status=JobStatus.QUEUED, enqueued_at__gte=now - lost_after)


def _holder_rut() -> Coalesce:
    """Whose SII sessions a job counts against: its certificate's holder, or its firm key's."""
    return Coalesce("certificate__holder_rut", "firm_key__holder_rut")


def _busy_ruts(now: datetime, lost_after: timedelta) -> Counter[str]:
    """Jobs in flight per certificate holder RUT, every tenant and lane: a holder with as many as
    AUTORIZA_SII_MAX_SESSIONS_PER_RUT gets nothing more sent (it would only go back to wait for its
    lease, `jobs.leases`), so a tenant's bulk work for one holder cannot churn the slots."""
    rows = (
        EnrollmentJob.objects.filter(_in_flight(now, lost_after))
        .filter(Q(certificate__isnull=False) | Q(firm_key__isnull=False))
        .values_list(_holder_rut())
        .annotate(n=Count("pk"))
    )
    return Counter({rut: n for rut, n in rows if rut})


def _mark_sent(job_id: object, lane: str, now: datetime, lost_after: timedelta, horizon: datetime) -> bool:
    """Stamp `enqueued_at` (compare-and-set: still sendable), making it due now if it was due only
    by `horizon`; True if this process is the one to send it."""
    return bool(
        EnrollmentJob.objects.filter(_sendable(now, lost_after, horizon), pk=job_id, lane=lane).update(
            enqueued_at=now, run_after=now
        )
    )


def enrollment_jobs_dispatch(*, lost_after: timedelta | None = None, early: bool = False) -> int:
    """Send the QUEUED jobs that are due and have no live message (new background jobs, scheduled
    retries, jobs back from waiting for their SII leases, lost messages); returns how many were sent.

    Live jobs first, every one of them, oldest first, to the browser queue; then background jobs
    through the fair feeder (`enrollment_jobs_feed`). A job whose certificate holder already has
    AUTORIZA_SII_MAX_SESSIONS_PER_RUT jobs in flight is left for later. Run periodically, and by a
    worker as soon as a job ends (`early`: that job's leases were just released, so jobs due within
    AUTORIZA_SII_LEASE_WAIT_SECONDS are due now).

    The database is the source of truth; a message the broker lost is sent again. Duplicates are
    harmless: the claim is a compare-and-set.
    """
    # The threshold is a setting (AUTORIZA_JOB_LOST_AFTER_SECONDS, default 10 min) so the broker-crash
    # tests can prove the recovery in seconds.
    lost_after = lost_after if lost_after is not None else timedelta(seconds=settings.AUTORIZA_JOB_LOST_AFTER_SECONDS)
    now = timezone.now()
    horizon = now + timedelta(seconds=settings.AUTORIZA_SII_LEASE_WAIT_SECONDS) if early else now
    busy = _busy_ruts(now, lost_after)
    cap = settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT
    live = (
        EnrollmentJob.objects.filter(_sendable(now, lost_after, horizon), lane=JobLane.LIVE)
        .order_by("created_at", "pk")
        .values_list("pk", _holder_rut())
    )
    count = 0
    for job_id, rut in live[:500]:
        if rut and busy[rut] >= cap:
            continue
        if _mark_sent(job_id, JobLane.LIVE, now, lost_after, horizon):
            enrollment_job_send(job_id=str(job_id), lane=JobLane.LIVE)
            busy[rut] += 1
            count += 1
    return count + enrollment_jobs_feed(lost_after=lost_after, horizon=horizon, busy=busy)


def enrollment_jobs_feed(
    *, lost_after: timedelta | None = None, horizon: datetime | None = None, busy: Counter[str] | None = None
) -> int:
    """Send due background jobs to the background queue while fewer than AUTORIZA_BACKGROUND_IN_FLIGHT
    are in flight (running, or sent and waiting in the broker), tenants in turn: each place goes to the
    tenant with the fewest background jobs in flight (ties: the one waiting longest), and within a
    tenant to its oldest job. Returns how many were sent.

    One tenant's 300-job bulk re-run thus never holds the broker ahead of another tenant's jobs, and
    never ahead of live jobs (their queue is served first). A job whose certificate holder has
    AUTORIZA_SII_MAX_SESSIONS_PER_RUT jobs in flight (`busy`, counted if not given) is skipped.
    Concurrent feeders may overshoot the limit by a job or two; never send a job twice (compare-and-set).
    """
    lost_after = lost_after if lost_after is not None else timedelta(seconds=settings.AUTORIZA_JOB_LOST_AFTER_SECONDS)
    now = timezone.now()
    horizon = horizon or now
    busy = busy if busy is not None else _busy_ruts(now, lost_after)
    cap = settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT
    background = EnrollmentJob.objects.filter(lane=JobLane.BACKGROUND)
    per_tenant = Counter(background.filter(_in_flight(now, lost_after)).values_list("tenant_id", flat=True))
    free = settings.AUTORIZA_BACKGROUND_IN_FLIGHT - sum(per_tenant.values())
    if free <= 0:
        return 0
    waiting = background.filter(_sendable(now, lost_after, horizon))
    turns = [
        (per_tenant[row["tenant_id"]], row["oldest"], row["tenant_id"])
        for row in waiting.values("tenant_id").annotate(oldest=Min("created_at")).order_by()
    ]
    heapq.heapify(turns)
    candidates: dict[int, list[tuple[object, str]]] = {}
    sent = 0
    while free > 0 and turns:
        in_flight, oldest, tenant_id = heapq.heappop(turns)
        if tenant_id not in candidates:
            # Enough of its oldest jobs for every place even if many share a busy holder.
            rows = waiting.filter(tenant_id=tenant_id).order_by("created_at", "pk")
            candidates[tenant_id] = list(rows.values_list("pk", _holder_rut())[: free + 200])
        queue = candidates[tenant_id]
        while queue:
            job_id, rut = queue.pop(0)
            if rut and busy[rut] >= cap:
                continue
            if _mark_sent(job_id, JobLane.BACKGROUND, now, lost_after, horizon):
                enrollment_job_send(job_id=str(job_id), lane=JobLane.BACKGROUND)
                busy[rut] += 1
                free -= 1
                sent += 1
                heapq.heappush(turns, (in_flight + 1, oldest, tenant_id))
                break
    return sent
