"""With REDIS_URL and DATABASE_URL set (as .ci/run sets them): a real Celery task goes through Redis,
a real `celery worker` process consumes it and writes PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set: no Redis to test against"),
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="DATABASE_URL is not a PostgreSQL URL: no PostgreSQL to test against",
    ),
]


def database_url_of_test_db() -> str:
    """The URL of the test database pytest-django created, for a worker in another process."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_task_through_redis_is_consumed_by_a_real_worker_that_writes_postgres(cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    from onboarding import services
    from onboarding.models import Certificate
    from onboarding.tasks import certificates_purge_expired

    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert connection.vendor == "postgresql"
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    Certificate.objects.filter(pk=certificate.pk).update(created_at=timezone.now() - timedelta(days=30))

    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_db(),
        "AUTORIZA_MASTER_KEYS": settings.AUTORIZA_MASTER_KEYS,
        "DJANGO_DEBUG": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "default", "-c", "1", "--pool=solo",
         "-n", f"services-test-{os.getpid()}@%h", "--loglevel", "INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        certificates_purge_expired.delay()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            certificate.refresh_from_db()
            if certificate.destroyed_at is not None:
                break
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            time.sleep(0.25)
        assert certificate.destroyed_at is not None, "the worker did not run the task within 60 s"
        assert certificate.destroy_reason == "retention" and certificate.sealed_material is None
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
    assert "certificates_purge_expired" in output and "succeeded" in output
