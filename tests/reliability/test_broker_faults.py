"""The broker may lose messages; the database, not the broker, is the source of truth.

Each test starts a redis-server of its own on a free port (never the shared one CI uses), points
this process and a real worker at it, and crashes it with jobs queued and one running:
- without persistence (`redis-cli shutdown nosave`): the queued messages are gone; nothing runs them
  until the dispatcher (the scheduler's `enrollment_jobs_dispatch`) sends again every QUEUED job whose
  message is older than AUTORIZA_JOB_LOST_AFTER_SECONDS; every job then ends once, one SII save each;
- with the production configuration (docker-compose.yml: `--appendonly yes --appendfsync everysec`),
  killed with SIGKILL: the queued messages survive the restart and every job runs once, with no help
  from the dispatcher.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from onboarding.models import EnrollmentJob, JobEvent, JobStatus
from tests.fixtures.worker import _reset_producer_pool
from tests.reliability.support import (
    PrivateRedis,
    company_ruts,
    figures_record,
    firm_create,
    jobs_create,
    jobs_drain,
    saves_of,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
JOBS = 3

pytestmark = [
    pytest.mark.faults,
    pytest.mark.browser,
    pytest.mark.sandbox,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not PrivateRedis.available(), reason="redis-server/redis-cli are not installed"),
]


def compose_redis_flags() -> dict[str, str]:
    """The persistence flags production Redis runs with (docker-compose.yml's redis command)."""
    command = [str(part) for part in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]["command"]]
    return {command[i].lstrip("-"): command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}


@pytest.fixture
def private_broker(routed_broker, settings, tmp_path):  # type: ignore[no-untyped-def]
    """Factory: start a private Redis and make it this process's broker; stopped at teardown."""
    from portal.celery import app

    servers: list[PrivateRedis] = []
    saved = (app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options)

    def start(*, appendonly: bool) -> PrivateRedis:
        redis = PrivateRedis(tmp_path / "redis", appendonly=appendonly).start()
        servers.append(redis)
        app.conf.broker_url = redis.url
        # The embedded default names its transport (portal.broker), which wins over the URL's scheme:
        # without clearing it, this process would keep sending to the filesystem broker.
        app.conf.broker_transport = None
        app.conf.broker_transport_options = {"visibility_timeout": 3600}
        settings.CELERY_BROKER_URL = redis.url
        _reset_producer_pool(app)
        return redis

    yield start
    app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options = saved
    _reset_producer_pool(app)
    for redis in servers:
        redis.stop()


def _start_jobs(sandbox, demo_bundle, slug: str, first_body: int):  # type: ignore[no-untyped-def]
    ruts = company_ruts(JOBS, first_body)
    sandbox.add_companies([{"rut": r, "name": f"EMPRESA {r}", "admins": [sandbox.pki["demo"].holder_rut]} for r in ruts])
    sandbox.configure(latency_ms=150)  # each job takes a couple of seconds: the others wait in the broker
    return ruts, jobs_create(firm_create(slug), ruts, demo_bundle)


# While the test counts the queue and crashes Redis, the running job must not end: its slot would take
# the next message and the count would change under the test (seen in CI with any fixed latency that
# was merely long enough most of the time). Its remaining pages (at least four after its third event)
# are held HOLD_MS each, then it goes on at the normal pace once Redis is back.
HOLD_MS = 4000


def _hold_running_job(sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure(latency_ms=HOLD_MS)


def _release_running_job(sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure(latency_ms=150)


def _one_running_others_queued(job_ids: list[object]) -> bool:
    statuses = list(EnrollmentJob.objects.filter(pk__in=job_ids).values_list("status", flat=True))
    running = EnrollmentJob.objects.filter(pk__in=job_ids, status=JobStatus.RUNNING).first()
    return (
        running is not None
        and JobEvent.objects.filter(job=running).count() >= 3
        and statuses.count(JobStatus.QUEUED) == JOBS - 1
    )


def _assert_each_once(job_ids: list[object], ruts: list[str], sandbox) -> None:  # type: ignore[no-untyped-def]
    jobs = list(EnrollmentJob.objects.filter(pk__in=job_ids))
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * len(ruts), [(j.status, j.failure_code) for j in jobs]
    state = sandbox.state()
    assert {rut: len(saves_of(state, rut)) for rut in ruts} == {rut: 1 for rut in ruts}  # none lost, none twice


def test_redis_crash_without_persistence_loses_messages_and_the_dispatcher_sends_them_again(  # type: ignore[no-untyped-def]
    private_broker, routed_broker, start_worker, worker_env, sandbox, demo_bundle, fast_jobs, settings
) -> None:
    redis = private_broker(appendonly=False)
    ruts, jobs = _start_jobs(sandbox, demo_bundle, "redis-nosave", 79300001)
    ids = [j.pk for j in jobs]
    worker = start_worker(env={**worker_env, "REDIS_URL": redis.url})
    wait_for(lambda: _one_running_others_queued(ids), timeout=90, interval=0.05, what="one job running, others queued")
    _hold_running_job(sandbox)
    queued_at_crash = EnrollmentJob.objects.filter(pk__in=ids, status=JobStatus.QUEUED).count()
    assert int(redis.cli("llen", routed_broker["queue"]) or 0) == JOBS - 1

    redis.crash_without_saving()
    redis.start()  # same port, empty
    assert int(redis.cli("llen", routed_broker["queue"]) or 0) == 0  # the queued messages are gone
    _release_running_job(sandbox)

    # The job that was running finishes (the worker reconnects); the queued ones do not move: lost.
    wait_for(lambda: EnrollmentJob.objects.filter(pk__in=ids, status=JobStatus.RUNNING).count() == 0
             and EnrollmentJob.objects.filter(pk__in=ids, status=JobStatus.SUCCEEDED).exists(),
             timeout=90, what="the running job to finish after the crash")
    time.sleep(4)
    stuck = EnrollmentJob.objects.filter(pk__in=ids, status=JobStatus.QUEUED).count()
    assert stuck == queued_at_crash, "without the dispatcher nothing runs the jobs whose messages were lost"

    settings.AUTORIZA_JOB_LOST_AFTER_SECONDS = 2  # production: 600 s
    elapsed = jobs_drain(ids, timeout=150, dispatch=True, workers=[worker])
    _assert_each_once(ids, ruts, sandbox)
    figures_record("redis_crash_nosave", {
        "jobs": JOBS, "queued_at_crash": queued_at_crash, "messages_lost": stuck,
        "resent_and_finished_in_seconds": round(elapsed, 1), "lost_after_seconds": 2,
        "production_lost_after_seconds": 600, "sii_saves_per_company": 1,
    })


def test_redis_killed_with_production_persistence_keeps_every_queued_job(  # type: ignore[no-untyped-def]
    private_broker, routed_broker, start_worker, worker_env, sandbox, demo_bundle, fast_jobs
) -> None:
    flags = compose_redis_flags()
    assert flags.get("appendonly") == "yes", "production Redis must persist (docker-compose.yml)"
    assert flags.get("appendfsync") in ("always", "everysec")
    redis = private_broker(appendonly=True)
    assert redis.cli("config", "get", "appendonly").split() == ["appendonly", "yes"]
    ruts, jobs = _start_jobs(sandbox, demo_bundle, "redis-aof", 79300011)
    ids = [j.pk for j in jobs]
    worker = start_worker(env={**worker_env, "REDIS_URL": redis.url})
    wait_for(lambda: _one_running_others_queued(ids), timeout=90, interval=0.05, what="one job running, others queued")
    _hold_running_job(sandbox)
    time.sleep(1.5)  # appendfsync everysec: what was written more than a second ago is on disk
    queued_before = int(redis.cli("llen", routed_broker["queue"]) or 0)
    assert queued_before == JOBS - 1
    assert _messages_held(redis, routed_broker["queue"]) == JOBS  # queued + the running job's (unacked)

    redis.kill()  # SIGKILL: no chance to save anything more
    redis.start()  # same port, same directory: the append-only file is replayed
    # Every message is back: in the queue, or taken by the worker (which may reconnect and take one
    # before this line runs; kombu keeps a taken message in its "unacked" hash until the ack).
    assert _messages_held(redis, routed_broker["queue"]) == JOBS
    _release_running_job(sandbox)

    elapsed = jobs_drain(ids, timeout=150, dispatch=False, workers=[worker])  # no dispatcher: nothing was lost
    _assert_each_once(ids, ruts, sandbox)
    figures_record("redis_kill_aof", {
        "jobs": JOBS, "messages_in_queue_at_kill": queued_before, "messages_after_restart": queued_before,
        "finished_in_seconds": round(elapsed, 1), "redis_flags": flags, "sii_saves_per_company": 1,
    })


def _messages_held(redis, queue: str) -> int:  # type: ignore[no-untyped-def]
    """Messages Redis holds for `queue`: waiting in the list, plus delivered and not yet acknowledged
    (kombu's "unacked" hash, which is how a taken message survives its worker)."""
    return int(redis.cli("llen", queue) or 0) + int(redis.cli("hlen", "unacked") or 0)
