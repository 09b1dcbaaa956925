"""Fixtures shared by the reliability and security suites (imported by their conftest.py files):
real worker processes come from tests/fixtures/worker.py; these add the routing fix, the workers'
fast job policy, the demo certificate and the production scheduler."""
from __future__ import annotations

import pytest

from tests.reliability.support import MAX_RETRIES, RETRY_SCALE

# Every worker of this suite: no screenshots (speed; the secrets scan keeps them on), retry delays at
# 1/500 of production (one hour of SII throttling → 7.2 s), the production retry budget, and the
# bot's in-attempt page retries (HTTP 5xx, SII's generic error) after 1/10 of its backoff: the
# production 0.5 + 1 + 2 s would keep a worker idle 3.5 s on every attempt that meets a burst.
FAST_ENV = {
    "SII_SCREENSHOTS": "0",
    "AUTORIZA_JOB_RETRY_DELAY_SCALE": str(RETRY_SCALE),
    "AUTORIZA_JOB_MAX_RETRIES": str(MAX_RETRIES),
    "SII_TRANSIENT_BACKOFF": "0.05,0.1,0.2",
}


def _flush_celery_routes() -> None:
    """Make the in-process Celery app route by the current `task_routes`.

    The `broker` fixture (tests/fixtures/worker.py) changes `app.conf.task_routes` per test, but
    Celery caches its router on first use: without this, every test after the first in a session
    sends its jobs to the FIRST test's queue, where no worker listens.
    """
    from portal.celery import app

    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)


@pytest.fixture
def routed_broker(broker):  # type: ignore[no-untyped-def]
    _flush_celery_routes()
    yield broker
    _flush_celery_routes()


@pytest.fixture
def worker_env(routed_broker) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """FAST_ENV plus the test's queue: what a worker enqueues itself (a job it re-queues at start, a
    retry the dispatcher re-sends) must reach the test's workers, not the production "browser" queue."""
    return {**FAST_ENV, "AUTORIZA_BROWSER_QUEUE": routed_broker["queue"]}


@pytest.fixture
def fast_jobs(settings):  # type: ignore[no-untyped-def]
    """The test process (which creates jobs and runs the dispatcher) uses the workers' policy."""
    settings.AUTORIZA_JOB_RETRY_DELAY_SCALE = RETRY_SCALE
    settings.AUTORIZA_JOB_MAX_RETRIES = MAX_RETRIES
    return settings


@pytest.fixture(scope="session")
def demo_bundle(sandbox_pki_dir):  # type: ignore[no-untyped-def]
    """The sandbox's demo certificate, opened once (holder 10.345.678-9, administrator of every
    company the tests add with `admins=[holder]`)."""
    from sii_bot.certificates import open_pkcs12
    from sii_sandbox.pki import load_pki

    demo = load_pki(sandbox_pki_dir)["demo"]
    return open_pkcs12(demo.path.read_bytes(), demo.password)


@pytest.fixture
def start_scheduler(routed_broker, transactional_db, tmp_path):  # type: ignore[no-untyped-def]
    """Factory of the production scheduler (`celery worker -B` on the default queue, as the compose
    `scheduler` service runs it) on a queue of this test's own, with intervals given as settings."""
    import os
    import subprocess
    import sys
    import time
    import uuid

    from django.conf import settings as django_settings

    from tests.fixtures.worker import BASE_DIR, WorkerProcess, database_url

    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        queue = f"default-test-{uuid.uuid4().hex[:8]}"
        full_env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "AUTORIZA_MASTER_KEYS": django_settings.AUTORIZA_MASTER_KEYS,
            "AUTORIZA_VAR_DIR": routed_broker["var_dir"],
            "AUTORIZA_DEFAULT_QUEUE": queue,
            "AUTORIZA_BROWSER_QUEUE": routed_broker["queue"],
            "DJANGO_DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        log_path = tmp_path / f"scheduler-{len(started)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "-B", "-Q", queue, "-c", "1", "--pool=solo",
             "-s", str(tmp_path / f"beat-{len(started)}"), "--loglevel=INFO", "-n", f"{queue}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=BASE_DIR, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        scheduler = WorkerProcess(process=process, log_path=log_path, _log=log)
        started.append(scheduler)
        deadline = time.monotonic() + 60
        while b" ready." not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the scheduler did not start:\n{scheduler.log()[-4000:]}")
            time.sleep(0.2)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.stop()
