"""Celery tasks: thin interfaces that take ids (never secrets) and call services.

Task arguments travel through the broker, so they carry only the job's UUID; the certificate is
loaded and decrypted inside the worker by the service.
"""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown
from django.conf import settings
from django.utils import timezone

import sii_bot
from onboarding import selectors, services

logger = logging.getLogger(__name__)


@shared_task(name="onboarding.tasks.enrollment_job_run", acks_late=True, reject_on_worker_lost=True)
def enrollment_job_run(job_id: str) -> None:
    """Run one enrollment job (a redelivered message for a job already claimed does nothing, unless
    the process that claimed it provably died: then it resumes the job; see `enrollment_job_take_over`)."""
    # The full process identity (host, pid, start time, PID namespace, boot), not just the host name,
    # so that another process can tell for certain whether the claimer is still alive.
    job = services.enrollment_job_execute(job_id=job_id, worker=services.worker_identity())
    if job is not None and job.started_at is not None:
        # This slot and the job's SII leases are free: send what is next now, not at the dispatcher's
        # next tick (the fair feeder refills the background lane). Not after a job that only went back
        # to wait for its leases (`started_at` cleared): nothing was freed, it would be sent right back.
        try:
            services.enrollment_jobs_dispatch(early=True)
        except Exception:  # the job is recorded; the periodic dispatcher sends the rest
            logger.exception("dispatching after job %s failed", job_id)


@shared_task(name="onboarding.tasks.enrollment_jobs_dispatch")
def enrollment_jobs_dispatch() -> int:
    """Periodic: enqueue due retries and jobs whose broker message was lost."""
    return services.enrollment_jobs_dispatch()


@shared_task(name="onboarding.tasks.enrollment_jobs_reap")
def enrollment_jobs_reap() -> int:
    """Periodic: fail jobs whose worker vanished, so no job stays RUNNING."""
    return services.enrollment_jobs_reap()


@shared_task(name="onboarding.tasks.certificates_purge_expired")
def certificates_purge_expired() -> int:
    """Periodic: erase key material past the retention period."""
    return services.certificates_purge_expired()


@shared_task(name="onboarding.tasks.firm_keys_expiry_warn")
def firm_keys_expiry_warn() -> int:
    """Periodic (daily): e-mail the firms' admins 30 and 7 days before a firm key expires (each once)."""
    return services.firm_keys_expiry_warn()


@shared_task(
    name="onboarding.tasks.access_check_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.AUTORIZA_ACCESS_CHECK_SOFT_TIME_LIMIT,
    time_limit=settings.AUTORIZA_ACCESS_CHECK_TIME_LIMIT,
)
def access_check_run(run_id: str) -> None:
    """Run one access check (one SII session with a firm key over many companies). Routed to the
    access-check queue (AUTORIZA_ACCESS_CHECK_QUEUE), never the browser queue of live authorizations.
    A redelivered message for a run already claimed does nothing."""
    services.access_check_execute(run_id=run_id, worker=services.worker_identity())


@shared_task(name="onboarding.tasks.access_checks_schedule")
def access_checks_schedule() -> int:
    """Periodic: reap runs whose worker died, create the checks that are due, send due runs, and
    e-mail new problems no finishing run reported. Returns the runs created."""
    now = timezone.now()
    services.access_check_runs_reap(now=now)
    created = services.access_checks_schedule(now=now)
    services.access_check_runs_dispatch(now=now)
    for tenant in selectors.tenants_with_unreported_access_problems():
        if not services.access_check_runs_pending_exist(tenant=tenant):
            services.access_problems_notify(tenant=tenant)
    return created


@worker_ready.connect
def _recover_orphaned_jobs(**kwargs: object) -> None:
    """At worker start, re-queue the jobs a killed worker of this host left RUNNING (its message may
    be lost with it), instead of waiting for the reaper to fail them minutes later."""
    try:
        count = services.enrollment_jobs_recover_orphans()
    except Exception:  # never keep a worker from starting: the reaper still covers these jobs
        logger.exception("recovering orphaned jobs failed")
        return
    if count:
        logger.warning("re-queued %s job(s) left running by a dead worker", count)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_browser(**kwargs: object) -> None:
    """Close the worker's Chromium (kept across jobs, shared by its slots) when the worker stops, or
    a prefork pool process's own when that process exits."""
    sii_bot.close_default_engine()
