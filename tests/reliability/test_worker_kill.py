"""kill -9 in the middle of a job: the job ends exactly once and the SII shows exactly one authorization.

Real pieces: `celery worker` processes on the test database and broker, Chromium, the SII sandbox.
Three ways a worker dies:
- the whole worker (process group, Chromium included) before "Grabar Usuario": a restarted worker
  finds the job RUNNING under a process of this host that no longer exists and re-queues it
  (`enrollment_jobs_recover_orphans`, on `worker_ready`); the job then runs and succeeds;
- the whole worker right AFTER the SII saved the user but before our database knew: the resumed job
  reads the user list first, finds the user as requested and saves nothing — the SII log still shows
  one save — and the job reports "created": the killed attempt's save, not "already authorized";
- only the pool process (prefork): Celery requeues the message at once (acks_late +
  reject_on_worker_lost) and the redelivered message takes the job over (`enrollment_job_take_over`).
Without those changes the job stayed RUNNING until the reaper failed it minutes later.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from onboarding.models import EnrollmentJob, JobEvent, JobStatus
from tests.reliability.support import (
    REPRESENTATIVE_RUT,
    figures_record,
    firm_create,
    jobs_create,
    jobs_drain,
    python_children,
    rut_with_dv,
    saves_of,
    wait_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(300)]

# A little latency on every SII page widens the windows the kills aim at.
LATENCY_MS = 120


def _one_job(sandbox, demo_bundle, slug: str, body: int):  # type: ignore[no-untyped-def]
    rut = rut_with_dv(body)
    sandbox.add_companies([{"rut": rut, "name": f"EMPRESA {rut}", "admins": [sandbox.pki["demo"].holder_rut]}])
    sandbox.configure(latency_ms=LATENCY_MS)
    tenant = firm_create(slug)
    return rut, jobs_create(tenant, [rut], demo_bundle)[0]


def _assert_ended_once(job_id, rut: str, sandbox, *, outcome: str) -> EnrollmentJob:  # type: ignore[no-untyped-def]
    job = EnrollmentJob.objects.get(pk=job_id)
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.failure_code, job.failure_detail)
    assert job.outcome == outcome
    assert job.retry_count == 1, "the resumption counts against the retry budget"
    assert JobEvent.objects.filter(job=job, step="retry", message__contains="se interrumpió").count() == 1
    # Exactly one authorization on the SII side: one save in its log, the user listed once.
    assert len(saves_of(sandbox.state(), rut)) == 1
    users = [u for u in sandbox.users(rut) if u["rut"] == REPRESENTATIVE_RUT]
    assert len(users) == 1 and users[0]["admin"] and users[0]["sign"] and users[0]["registry"]
    assert not EnrollmentJob.objects.filter(status=JobStatus.RUNNING).exists()
    return job


@pytest.mark.parametrize("moment", ["before_save", "after_save"])
def test_whole_worker_killed_mid_job_is_resumed_once_by_the_restarted_worker(  # type: ignore[no-untyped-def]
    start_worker, worker_env, sandbox, demo_bundle, fast_jobs, moment
) -> None:
    rut, job = _one_job(sandbox, demo_bundle, f"kill-{moment.replace('_', '-')}", 79100001 if moment == "before_save" else 79100011)
    worker = start_worker(env=worker_env)
    if moment == "before_save":
        wait_for(lambda: JobEvent.objects.filter(job=job, step__in=("company", "user_list")).exists(),
                 timeout=90, interval=0.05, what="the job to reach the company step")
    else:
        wait_for(lambda: saves_of(sandbox.state(), rut), timeout=90, interval=0.02, what="the SII to save the user")
    worker.kill(signal.SIGKILL)
    worker.process.wait(timeout=10)
    killed_at = time.monotonic()

    at_kill = EnrollmentJob.objects.get(pk=job.pk)
    # The kill really happened mid-job: still RUNNING, some steps recorded, the SII in the expected state.
    assert at_kill.status == JobStatus.RUNNING, at_kill.status
    events_at_kill = JobEvent.objects.filter(job=job).count()
    assert events_at_kill >= 3
    assert len(saves_of(sandbox.state(), rut)) == (0 if moment == "before_save" else 1)

    restarted = start_worker(env=worker_env)  # what the supervisor (compose: restart) does
    jobs_drain([job.pk], timeout=150, workers=[restarted])
    recovered_in = time.monotonic() - killed_at
    done = _assert_ended_once(job.pk, rut, sandbox, outcome="created")
    assert "re-queued" in restarted.log()
    figures_record(f"worker_kill_{moment}", {
        "kill": "SIGKILL to the whole worker process group (worker + Chromium)",
        "moment": moment, "events_before_kill": events_at_kill, "recovered_in_seconds": round(recovered_in, 1),
        "outcome": done.outcome, "retry_count": done.retry_count, "sii_saves": len(saves_of(sandbox.state(), rut)),
    })


def test_pool_process_killed_mid_job_is_taken_over_by_the_redelivered_message(  # type: ignore[no-untyped-def]
    start_worker, worker_env, sandbox, demo_bundle, fast_jobs
) -> None:
    rut, job = _one_job(sandbox, demo_bundle, "kill-pool", 79100021)
    worker = start_worker(concurrency=1, pool="prefork", env=worker_env)
    wait_for(lambda: JobEvent.objects.filter(job=job, step__in=("company", "user_list")).exists(),
             timeout=90, interval=0.05, what="the job to reach the company step")
    [pool_process] = python_children(worker.pid)
    claimed_by = EnrollmentJob.objects.get(pk=job.pk).worker
    assert f"pid={pool_process} " in claimed_by
    os.kill(pool_process, signal.SIGKILL)
    killed_at = time.monotonic()

    jobs_drain([job.pk], timeout=150, workers=[worker])
    recovered_in = time.monotonic() - killed_at
    assert worker.poll() is None, "the worker itself survives; only its pool process died"
    done = _assert_ended_once(job.pk, rut, sandbox, outcome="created")
    assert done.worker != claimed_by
    assert "taken over from dead worker" in worker.log()
    figures_record("worker_kill_pool_process", {
        "kill": "SIGKILL to the prefork pool process running the job",
        "recovered_in_seconds": round(recovered_in, 1), "outcome": done.outcome,
        "retry_count": done.retry_count, "sii_saves": len(saves_of(sandbox.state(), rut)),
    })
