"""A job whose worker vanished for good (killed, never restarted, or restarted on another host) is
found by the periodic reaper of the real scheduler (`celery worker -B`, as the compose `scheduler`
service runs it) and ends FAILED, re-runnable (certificate kept, an admin's re-run queues a linked
attempt), within a bounded time. No job is ever left RUNNING. A live job, meanwhile, is never reaped:
one that runs for well past the reaper's threshold (reporting at every step) ends SUCCEEDED."""
from __future__ import annotations

import signal
import time

import pytest
from django.contrib.auth import get_user_model

from onboarding import services
from onboarding.models import Certificate, CompanyStage, EnrollmentJob, JobEvent, JobStatus
from tests.reliability.support import (
    figures_record,
    firm_create,
    jobs_create,
    rut_with_dv,
    saves_of,
    wait_for,
)

REAP_EVERY = 0.5  # production: 60 s
REAP_AFTER = 10  # production: the larger of the live-job bound (285 s) and the hard time limit (300 s) + 60 s
# Slow SII pages for the live job: every step still reports within seconds (a few pages each), but
# the whole job lasts several times the threshold, so a reaper that measured anything but the
# heartbeat (the start, the claim) or ignored the threshold would fail it.
LIVE_LATENCY_MS = 2000


@pytest.mark.faults
@pytest.mark.browser
@pytest.mark.sandbox
@pytest.mark.timeout(300)
def test_periodic_reaper_fails_a_job_whose_worker_vanished_and_it_can_be_rerun(  # type: ignore[no-untyped-def]
    start_worker, start_scheduler, worker_env, sandbox, demo_bundle, fast_jobs
) -> None:
    live_rut, rut = rut_with_dv(79200002), rut_with_dv(79200001)
    admins = [sandbox.pki["demo"].holder_rut]
    sandbox.add_companies([{"rut": r, "name": f"EMPRESA {r}", "admins": admins} for r in (live_rut, rut)])
    # The scheduler runs all along, as in production (it started before the jobs, so its own start-up
    # recovery of orphaned jobs plays no part: only its periodic reaper can end a job).
    scheduler = start_scheduler(
        AUTORIZA_REAP_EVERY_SECONDS=str(REAP_EVERY), AUTORIZA_JOB_REAP_AFTER_SECONDS=str(REAP_AFTER),
        AUTORIZA_DISPATCH_EVERY_SECONDS="3600",
    )
    tenant = firm_create("reaper")
    worker = start_worker(env=worker_env)

    # A live job is not reaped, however long it runs past the threshold: only its silence counts.
    sandbox.configure(latency_ms=LIVE_LATENCY_MS)
    [live] = jobs_create(tenant, [live_rut], demo_bundle)
    live = wait_for(lambda: EnrollmentJob.objects.filter(pk=live.pk, status__in=("succeeded", "failed")).first(),
                    timeout=150, interval=0.2, what="the slow live job to finish")
    live_seconds = (live.finished_at - live.started_at).total_seconds()
    reported = [e.created_at for e in JobEvent.objects.filter(job=live, created_at__gte=live.started_at)]
    longest_silence = max((b - a).total_seconds() for a, b in zip([live.started_at, *reported], reported))
    assert live.status == JobStatus.SUCCEEDED and live.retry_count == 0, (live.failure_code, live.failure_detail)
    assert live_seconds > REAP_AFTER + 2 * REAP_EVERY + 3, live_seconds  # well past where a wrong reaper reaps
    assert longest_silence < REAP_AFTER, longest_silence  # ... while it reported all along
    assert not JobEvent.objects.filter(job=live, step__in=("finished", "late_result")).exists()
    assert len(saves_of(sandbox.state(), live_rut)) == 1

    sandbox.configure(latency_ms=120)
    [job] = jobs_create(tenant, [rut], demo_bundle)
    wait_for(lambda: JobEvent.objects.filter(job=job, step__in=("company", "user_list")).exists(),
             timeout=90, interval=0.05, what="the job to reach the company step")
    worker.kill(signal.SIGKILL)
    worker.process.wait(timeout=10)
    killed_at = time.monotonic()

    # No worker comes back (or one does, on another host): only the periodic reaper can end the job.
    bound = REAP_AFTER + 2 * REAP_EVERY + 20  # threshold + two periods + process start and load slack
    failed = wait_for(
        lambda: EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.FAILED).first(),
        timeout=bound, interval=0.2, what="the reaper to fail the job",
    )
    detected_in = time.monotonic() - killed_at
    scheduler.stop()  # its short threshold is for dead jobs only; live ones report less often under load
    assert "enrollment_jobs_reap" in scheduler.log() and "succeeded" in scheduler.log()
    assert failed.failure_code == "worker_lost" and failed.failure_retryable
    assert failed.company.stage == CompanyStage.FAILED
    assert saves_of(sandbox.state(), rut) == []  # killed before "Grabar Usuario": nothing was saved
    assert Certificate.objects.get(pk=failed.certificate_id).is_usable  # kept: the job is re-runnable

    # Re-runnable: an admin's re-run is a new attempt, linked, queued with the kept certificate (running
    # it is the ordinary path, covered by the other suites); the failed row stays as history.
    admin = get_user_model().objects.create_user(username="admin@reaper.cl", password="x-Clave-Larga-1")
    rerun = services.enrollment_job_rerun(job=failed, actor=admin)
    assert rerun.status == JobStatus.QUEUED and rerun.rerun_of_id == failed.pk and rerun.certificate_id == failed.certificate_id
    assert EnrollmentJob.objects.get(pk=failed.pk).status == JobStatus.FAILED  # history kept, never reset
    assert not EnrollmentJob.objects.filter(status=JobStatus.RUNNING).exists()
    figures_record("reaper", {
        "reap_every_seconds": REAP_EVERY, "reap_after_seconds": REAP_AFTER, "bound_seconds": bound,
        "detected_in_seconds": round(detected_in, 1), "failure_code": failed.failure_code,
        "rerun": rerun.status, "sii_saves": len(saves_of(sandbox.state(), rut)),
        "live_job_seconds": round(live_seconds, 1), "live_job_longest_silence_seconds": round(longest_silence, 1),
        "live_job_outcome": live.status,
        "production_reap_after_seconds": 300 + 60, "production_reap_every_seconds": 60,
    })


def test_production_refuses_a_reaper_threshold_below_the_hard_time_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Reaping a job before its hard time limit could fail one that is still running."""
    from tests.portal.test_settings import PRODUCTION, run

    result = run(["manage.py", "check"], {**PRODUCTION, "AUTORIZA_JOB_REAP_AFTER_SECONDS": "120"}, tmp_path)
    assert result.returncode != 0 and "AUTORIZA_JOB_REAP_AFTER_SECONDS must exceed" in result.stderr
    assert run(["manage.py", "check"], PRODUCTION, tmp_path).returncode == 0


def test_threads_pool_refuses_a_reaper_threshold_a_live_job_can_outlast(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With the threads pool (the default) Celery enforces no time limit: a live job is bounded by the
    engine (SII_JOB_TIMEOUT + its 30 s grace, + 15 s to record the outcome), not by AUTORIZA_JOB_TIME_LIMIT.
    A threshold above the hard limit but below that bound would reap jobs that are still running."""
    from tests.portal.test_settings import PRODUCTION, run

    env = {**PRODUCTION, "AUTORIZA_WORKER_POOL": "threads", "SII_JOB_TIMEOUT": "600", "AUTORIZA_JOB_REAP_AFTER_SECONDS": "400"}
    result = run(["manage.py", "check"], env, tmp_path)
    assert result.returncode == 1
    assert (
        "AUTORIZA_JOB_REAP_AFTER_SECONDS must exceed the longest a live job can go without reporting: with "
        "AUTORIZA_WORKER_POOL=threads, where Celery enforces no time limit, SII_JOB_TIMEOUT (600 s) + the engine's "
        "grace (30 s) + 15 s to record the outcome = 645 s. It is 400 s, so the reaper could fail a job that is "
        "still running. Set it above 645 (e.g. 705) or lower SII_JOB_TIMEOUT."
    ) in result.stderr
    # The same threshold is fine where the prefork pool's hard time limit (300 s) ends every job first.
    assert run(["manage.py", "check"], {**env, "AUTORIZA_WORKER_POOL": "prefork"}, tmp_path).returncode == 0


def test_the_default_reaper_threshold_is_derived_from_the_bound_that_applies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.portal.test_settings import PRODUCTION, run

    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CELERY_WORKER_POOL, s.JOB_SILENCE_BOUND_SECONDS, s.AUTORIZA_JOB_REAP_AFTER_SECONDS)"
    )
    code = ["-c", probe]
    assert run(["manage.py", "check"], PRODUCTION, tmp_path).returncode == 0
    assert run(code, PRODUCTION, tmp_path).stdout.split() == ["threads", "285.0", "360"]
    # A longer SII budget moves the default with it: never a configuration that reaps live jobs.
    longer = {**PRODUCTION, "SII_JOB_TIMEOUT": "600"}
    assert run(["manage.py", "check"], longer, tmp_path).returncode == 0
    assert run(code, longer, tmp_path).stdout.split() == ["threads", "645.0", "705"]
