"""Keeping jobs moving when a message or a worker is lost: the dispatcher (sends due and lost QUEUED
jobs: live ones at once, background ones through the fair feeder), the reaper (fails RUNNING jobs whose heartbeat stopped), the take-over and the start-up recovery
of jobs whose worker process provably died, and the worker identity that makes "provably" possible.

A claimed job records the claiming process as "host pid=N start=T ns=I boot=B" (see
`worker_identity`). Another process on the same host can then tell for certain that the claimer is
dead: same host name, same boot, same PID namespace, and no process with that PID and start time.
Anything else (another host or container, an unparsable or old-style value, /proc unreadable) counts
as "maybe alive", and only the heartbeat reaper may end the job.
"""
from __future__ import annotations

import heapq
import logging
import os
import re
import socket
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from onboarding.models import CompanyStage, EnrollmentJob, JobEvent, JobLane, JobStatus
from onboarding.services.jobs.lifecycle import (
    enrollment_job_enqueue,
    enrollment_job_fail_lost,
    enrollment_job_send,
)
from onboarding.services.tenants import company_stage_set

logger = logging.getLogger(__name__)

__all__ = [
    "enrollment_job_take_over",
    "enrollment_jobs_dispatch",
    "enrollment_jobs_feed",
    "enrollment_jobs_reap",
    "enrollment_jobs_recover_orphans",
    "worker_identity",
    "worker_is_dead",
]

_IDENTITY = re.compile(
    r"^(?P<host>\S+) pid=(?P<pid>\d+) start=(?P<start>\d+) ns=(?P<ns>\d+) boot=(?P<boot>[0-9a-f-]+)$"
)
_RESUMED_MESSAGE = (
    "El proceso que ejecutaba la autorización se interrumpió; la retomamos automáticamente "
    "(reintento {retry} de {budget})."
)


# --- Worker identity --------------------------------------------------------------------------------


def _proc_start_ticks(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live process, None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent: dead all the same
        return None
    return fields[19]


def _host_facts() -> tuple[str, str, str] | None:
    """(host name, PID namespace inode, boot id) of this process, or None where /proc is missing."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return socket.gethostname(), namespace, boot


def worker_identity() -> str:
    """How a claiming process names itself on the job row (readable on the staff job page too)."""
    facts = _host_facts()
    start = _proc_start_ticks(os.getpid()) if facts else None
    if facts is None or start is None:
        return socket.gethostname()
    host, namespace, boot = facts
    return f"{host} pid={os.getpid()} start={start} ns={namespace} boot={boot}"


def worker_is_dead(recorded: str) -> bool:
    """True only if `recorded` (a job's `worker`) names a process of this host that no longer runs."""
    match = _IDENTITY.match(recorded or "")
    facts = _host_facts()
    if match is None or facts is None:
        return False
    if (match["host"], match["ns"], match["boot"]) != facts:
        return False
    try:
        return _proc_start_ticks(int(match["pid"])) != match["start"]
    except (OSError, IndexError, ValueError):
        return False  # cannot tell: leave it to the reaper


# --- Jobs whose worker process died -----------------------------------------------------------------


def enrollment_job_take_over(*, job_id: str, worker: str) -> EnrollmentJob | None:
    """Resume, for `worker`, a RUNNING job whose claiming process is dead (compare-and-set on the
    recorded worker). A message redelivered after its worker process died (acks_late +
    reject_on_worker_lost requeue it at once) thus resumes the job instead of leaving it to the reaper;
    the bot is idempotent (it reads the user list first), so resuming never saves twice.

    Counts as an automatic retry: past AUTORIZA_JOB_MAX_RETRIES the job is failed as `worker_lost`
    instead, so a job that kills its worker every time cannot loop. Returns the job or None.
    """
    row = EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).values_list("worker", "retry_count").first()
    if row is None or not worker_is_dead(row[0]):
        return None
    recorded, retry_count = row
    job = EnrollmentJob.objects.select_related("tenant", "company", "certificate", "representative").get(pk=job_id)
    if job.worker != recorded:
        return None  # another process took it over between the two reads
    if retry_count >= settings.AUTORIZA_JOB_MAX_RETRIES:
        enrollment_job_fail_lost(job=job, detail=f"worker process died ({recorded}); retry budget exhausted")
        return None
    now = timezone.now()
    with transaction.atomic():
        taken = EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, worker=recorded).update(
            worker=worker[:200], started_at=now, heartbeat_at=now, retry_count=retry_count + 1
        )
        if not taken:
            return None  # another process took it over first
        JobEvent.objects.create(
            tenant_id=job.tenant_id, job=job, step="retry", status="info",
            message=_RESUMED_MESSAGE.format(retry=retry_count + 1, budget=settings.AUTORIZA_JOB_MAX_RETRIES),
        )
    logger.warning("job %s taken over from dead worker %s", job_id, recorded)
    job.refresh_from_db()
    return job


def enrollment_jobs_recover_orphans() -> int:
    """At worker start: put back in the queue the RUNNING jobs whose claiming process on this host
    died (a whole worker killed: its message may be gone with it, e.g. the filesystem broker, or come
    back only after Redis' visibility timeout). Past the retry budget they fail as `worker_lost`.

    Returns how many jobs were re-queued.
    """
    requeued = 0
    for job in EnrollmentJob.objects.filter(status=JobStatus.RUNNING).select_related("tenant", "company", "certificate"):
        if not worker_is_dead(job.worker):
            continue
        if job.retry_count >= settings.AUTORIZA_JOB_MAX_RETRIES:
            enrollment_job_fail_lost(job=job, detail=f"worker process died ({job.worker}); retry budget exhausted")
            continue
        with transaction.atomic():
            moved = EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, worker=job.worker).update(
                status=JobStatus.QUEUED, retry_count=job.retry_count + 1, run_after=None, enqueued_at=None
            )
            if not moved:
                continue
            JobEvent.objects.create(
                tenant_id=job.tenant_id, job=job, step="retry", status="info",
                message=_RESUMED_MESSAGE.format(retry=job.retry_count + 1, budget=settings.AUTORIZA_JOB_MAX_RETRIES),
            )
            company_stage_set(company=job.company, stage=CompanyStage.QUEUED)
            enrollment_job_enqueue(job=job)
        logger.warning("job %s re-queued: its worker %s died", job.pk, job.worker)
        requeued += 1
    return requeued


# --- The periodic dispatcher and reaper -------------------------------------------------------------


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


def enrollment_jobs_reap(*, stale_after: timedelta | None = None) -> int:
    """End RUNNING jobs whose worker stopped reporting (killed, lost) as FAILED and re-runnable.

    Returns how many jobs were reaped. A live job reports at every step and the engine gives up on a
    job after SII_JOB_TIMEOUT plus its grace; the threshold (AUTORIZA_JOB_REAP_AFTER_SECONDS) is
    validated at start to exceed that bound for the configured pool (portal/settings.py), so a live job
    is never reaped. Each reap is a compare-and-set on the claim and the stale heartbeat: a job that
    reported meanwhile is left alone; if its worker finishes after all, its result is recorded late.
    """
    stale_after = stale_after or timedelta(seconds=settings.AUTORIZA_JOB_REAP_AFTER_SECONDS)
    cutoff = timezone.now() - stale_after
    reaped = 0
    stale = EnrollmentJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    for job in stale.select_related("tenant", "company", "certificate"):
        done = enrollment_job_fail_lost(
            job=job,
            detail="no heartbeat since " + (job.heartbeat_at.isoformat() if job.heartbeat_at else "start"),
            stale_before=cutoff,
        )
        reaped += done is not None
    return reaped
