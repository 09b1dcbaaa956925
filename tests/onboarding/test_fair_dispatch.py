"""Fair scheduling in the dispatcher (`services/jobs/dispatch.py`): live jobs are sent at once to the
browser queue; background jobs are fed to their own queue a few at a time, tenants in turn, never
more of one certificate holder than its SII session cap. And the broker serves a worker's live queue
before its background queue (`portal.broker`, the embedded default's transport)."""
from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from kombu import Connection, Consumer, Exchange, Producer, Queue

from onboarding import services
from onboarding.models import EnrollmentJob, JobLane, JobStatus
from onboarding.services.jobs.lanes import JOB_KIND_LANES, background_queue, live_queue
from tests.reliability.support import company_ruts

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy(settings):  # type: ignore[no-untyped-def]
    settings.AUTORIZA_BACKGROUND_IN_FLIGHT = 4
    settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT = 100  # these tests' certificates all have one holder
    return settings


def background_jobs(tenant: Any, count: int, bundle: Any, start: int, django_capture_on_commit_callbacks: Any) -> list[Any]:
    """`count` background jobs of `tenant`, oldest first, not fed yet (their on-commit feed is dropped)."""
    jobs = []
    with django_capture_on_commit_callbacks(execute=False):
        for rut in company_ruts(count, start):
            company = services.client_company_create(tenant=tenant, rut=rut, legal_name=f"EMPRESA {rut}")
            certificate = services.certificate_store(company=company, bundle=bundle, uploaded_by=None)
            jobs.append(services.enrollment_job_create(
                company=company, certificate=certificate, created_by=None, lane=JobLane.BACKGROUND))
    return jobs


def sent_ids(enqueued: Any) -> list[str]:
    return [call.args[0] for call in enqueued.call_args_list]


def test_kinds_declare_their_lane_and_reruns_and_retries_are_background(cast, certificate_bundle, enqueued) -> None:  # type: ignore[no-untyped-def]
    assert set(JOB_KIND_LANES) == {"authorize", "revoke", "replace"}
    assert set(JOB_KIND_LANES.values()) == {JobLane.LIVE}
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=None)
    job = services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)
    assert job.lane == JobLane.LIVE
    EnrollmentJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    job.refresh_from_db()
    rerun = services.enrollment_job_rerun(job=job, actor=cast.admin_a)
    assert rerun.lane == JobLane.BACKGROUND
    assert background_queue() == live_queue() + "-background"


def test_a_small_tenant_is_fed_in_the_first_round_beside_a_bulk_one(  # type: ignore[no-untyped-def]
    cast, certificate_bundle, enqueued, policy, django_capture_on_commit_callbacks
) -> None:
    bulk = background_jobs(cast.tenant_a, 50, certificate_bundle, 61_000_000, django_capture_on_commit_callbacks)
    small = background_jobs(cast.tenant_b, 2, certificate_bundle, 62_000_000, django_capture_on_commit_callbacks)
    enqueued.reset_mock()

    assert services.enrollment_jobs_feed() == 4  # AUTORIZA_BACKGROUND_IN_FLIGHT places
    # Turns: the bulk tenant's oldest, then the small tenant's, and so on; each tenant oldest first.
    assert sent_ids(enqueued) == [str(bulk[0].pk), str(small[0].pk), str(bulk[1].pk), str(small[1].pk)]
    assert enqueued.queues == [background_queue()] * 4
    assert services.enrollment_jobs_feed() == 0  # every place is taken until one of them ends

    # One ends: its place goes to the bulk tenant, the only one still waiting.
    EnrollmentJob.objects.filter(pk=small[0].pk).update(status=JobStatus.SUCCEEDED)
    enqueued.reset_mock()
    assert services.enrollment_jobs_feed() == 1
    assert sent_ids(enqueued) == [str(bulk[2].pk)]


def test_the_tenant_with_fewer_jobs_in_flight_gets_the_free_place(  # type: ignore[no-untyped-def]
    cast, certificate_bundle, enqueued, policy, django_capture_on_commit_callbacks
) -> None:
    bulk = background_jobs(cast.tenant_a, 6, certificate_bundle, 63_000_000, django_capture_on_commit_callbacks)
    EnrollmentJob.objects.filter(pk__in=[j.pk for j in bulk[:3]]).update(status=JobStatus.RUNNING, started_at=timezone.now())
    late = background_jobs(cast.tenant_b, 3, certificate_bundle, 64_000_000, django_capture_on_commit_callbacks)
    enqueued.reset_mock()
    assert services.enrollment_jobs_feed() == 1  # 3 running, 1 place
    assert sent_ids(enqueued) == [str(late[0].pk)]  # the bulk tenant is older but has 3 in flight


def test_live_jobs_go_first_and_straight_to_the_live_queue(  # type: ignore[no-untyped-def]
    cast, certificate_bundle, enqueued, policy, django_capture_on_commit_callbacks
) -> None:
    bulk = background_jobs(cast.tenant_a, 5, certificate_bundle, 65_000_000, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        certificate = services.certificate_store(company=cast.company_b, bundle=certificate_bundle, uploaded_by=None)
        live = services.enrollment_job_create(company=cast.company_b, certificate=certificate, created_by=None)
    enqueued.reset_mock()
    assert services.enrollment_jobs_dispatch() == 5
    assert sent_ids(enqueued) == [str(live.pk), *[str(j.pk) for j in bulk[:4]]]
    assert enqueued.queues == [background_queue()] * 4  # the live one went through `delay` (its route)


def test_a_holder_at_its_session_cap_gets_nothing_more_sent(  # type: ignore[no-untyped-def]
    cast, certificate_bundle, enqueued, policy, django_capture_on_commit_callbacks
) -> None:
    policy.AUTORIZA_SII_MAX_SESSIONS_PER_RUT = 2  # every job here has the same certificate holder
    bulk = background_jobs(cast.tenant_a, 5, certificate_bundle, 66_000_000, django_capture_on_commit_callbacks)
    enqueued.reset_mock()
    assert services.enrollment_jobs_feed() == 2
    assert sent_ids(enqueued) == [str(bulk[0].pk), str(bulk[1].pk)]


def test_a_job_back_from_waiting_for_leases_is_due_early_when_a_job_ends(  # type: ignore[no-untyped-def]
    cast, certificate_bundle, enqueued, policy, django_capture_on_commit_callbacks
) -> None:
    policy.AUTORIZA_SII_LEASE_WAIT_SECONDS = 2.0
    [waiting] = background_jobs(cast.tenant_a, 1, certificate_bundle, 67_000_000, django_capture_on_commit_callbacks)
    EnrollmentJob.objects.filter(pk=waiting.pk).update(run_after=timezone.now() + timedelta(seconds=1.5))
    enqueued.reset_mock()
    assert services.enrollment_jobs_dispatch() == 0  # the periodic dispatcher waits for its time
    assert services.enrollment_jobs_dispatch(early=True) == 1  # a job just ended: its leases are free
    waiting.refresh_from_db()
    assert waiting.run_after <= timezone.now()  # claimable now


@pytest.mark.parametrize("broker", ["filesystem", pytest.param("redis", marks=pytest.mark.services)])
def test_the_broker_serves_the_live_queue_before_the_background_one(broker: str, tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """The embedded default's transport (portal.broker) and Redis with the settings' transport options
    ("sorted") both hand a free consumer the live queue's messages first."""
    name = f"browser-{uuid.uuid4().hex[:8]}"
    if broker == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("REDIS_URL is not set: no Redis to test against")
        # The production transport options (portal/settings.py), whatever they say.
        url, transport, options = settings.CELERY_BROKER_URL, None, dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    else:
        folders = {folder: tmp_path / folder for folder in ("queue", "processed", "control")}
        for folder in folders.values():
            folder.mkdir()
        url, transport = "filesystem://localhost/", "portal.broker:Transport"
        options = {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
                   "processed_folder": str(folders["processed"]), "control_folder": str(folders["control"])}
    live = Queue(name, Exchange(name), name)
    background = Queue(name + "-background", Exchange(name + "-background"), name + "-background")
    received: list[str] = []
    with Connection(url, transport=transport, transport_options=options) as conn:
        producer = Producer(conn.channel())
        for queue, body in ((background, "b1"), (background, "b2"), (live, "l1"), (background, "b3"), (live, "l2")):
            producer.publish(body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])
            time.sleep(0.005)  # the filesystem transport orders a queue's messages by the millisecond sent
        channel = conn.channel()
        channel.basic_qos(0, 1, False)

        def on_message(body: str, message: Any) -> None:
            received.append(body)
            message.ack()

        with Consumer(channel, [background, live], callbacks=[on_message]):
            for _ in range(5):
                conn.drain_events(timeout=5)
    assert received == ["l1", "l2", "b1", "b2", "b3"]
