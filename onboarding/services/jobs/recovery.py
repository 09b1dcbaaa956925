"""Keeping jobs moving when a worker is lost: the reaper (fails RUNNING jobs whose heartbeat stopped),
the take-over and the start-up recovery of jobs whose worker process provably died, and the worker
identity that makes "provably" possible. Lost messages are sent again by the dispatcher
(`jobs.dispatch`).

A claimed job records the claiming process as "host pid=N start=T ns=I boot=B" (see
`worker_identity`). Another process on the same host can then tell for certain that the claimer is
dead: same host name, same boot, same PID namespace, and no process with that PID and start time.
Anything else (another host or container, an unparsable or old-style value, /proc unreadable) counts
as "maybe alive", and only the heartbeat reaper may end the job.
"""
from __future__ import annotations

import logging
import os
import re
import socket
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from onboarding.models import CompanyStage, EnrollmentJob, JobEvent, JobStatus
from onboarding.services.jobs.lifecycle import enrollment_job_enqueue, enrollment_job_fail_lost
from onboarding.services.tenants import company_stage_set

logger = logging.getLogger(__name__)

__all__ = [
    "enrollment_job_take_over",
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
