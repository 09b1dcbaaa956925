"""Cluster-wide SII session limits (`services.jobs.leases`), on both backends: the database (the
embedded default) and Redis (with REDIS_URL; skipped otherwise). Caps are respected, all of a job's
places or none are taken, a dead holder's places free themselves at expiry, renewal keeps a living
holder's, release is idempotent. Then through the executor: a job with no room goes back to the queue
without reaching the SII, and a job that runs holds its places only while the bot runs."""
from __future__ import annotations

import os
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

import sii_bot
from onboarding import services
from onboarding.models import CompanyStage, EnrollmentJob, JobEvent, JobStatus, SiiLease
from onboarding.services.jobs import leases as lease_module
from onboarding.services.jobs.leases import (
    sii_lease_keys,
    sii_leases_acquire,
    sii_leases_held,
    sii_leases_kept,
    sii_leases_release,
    sii_leases_renew,
)

REDIS_URL = os.environ.get("REDIS_URL", "")


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):  # type: ignore[no-untyped-def]
    """Each test on the database backend, then on Redis (services) when REDIS_URL is set."""
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("REDIS_URL is not set: no Redis to test the Redis leases against")
        request.applymarker(pytest.mark.services)
        settings.REDIS_URL = REDIS_URL
    else:
        settings.REDIS_URL = ""
        request.getfixturevalue("db")
    settings.AUTORIZA_SII_MAX_SESSIONS_PER_HOST = 3
    settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT = 2
    settings.AUTORIZA_SII_LEASE_TTL_SECONDS = 60
    return request.param


@pytest.fixture
def host(monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """A host of this test's own (sandbox tenants take it from SII_ENROLL_URL): nothing else counts on it."""
    name = f"sii-{uuid.uuid4().hex[:10]}.test"
    monkeypatch.setenv("SII_ENROLL_URL", f"https://{name}/cvc_cgi/dte/eu_enrola_usuarios")
    return name


def fake_job(holder_rut: str | None) -> Any:
    """What the lease module reads of a job: its id, its tenant's SII environment, its certificate (or
    the firm key it runs with: none here)."""
    return SimpleNamespace(
        pk=uuid.uuid4(),
        tenant=SimpleNamespace(sii_environment="sandbox"),
        certificate=SimpleNamespace(holder_rut=holder_rut) if holder_rut else None,
        firm_key=None,
    )


def a_rut() -> str:
    return f"{uuid.uuid4().int % 10**8}-K"


def test_keys_are_the_enrolment_host_and_the_certificate_holder(backend, host) -> None:  # type: ignore[no-untyped-def]
    assert sii_lease_keys(job=fake_job("10345678-9")) == [(f"host:{host}", 3), ("rut:10345678-9", 2)]
    assert sii_lease_keys(job=fake_job(None)) == [(f"host:{host}", 3)]
    production = SimpleNamespace(
        pk=1, tenant=SimpleNamespace(sii_environment="production"), certificate=None, firm_key=None
    )
    assert sii_lease_keys(job=production) == [("host:palena.sii.cl", 3)]
    # A change the firm makes with its own keys: the first key's holder, and the new representative
    # (whose own key removes the old one) for a replacement.
    firm = SimpleNamespace(
        pk=2, tenant=SimpleNamespace(sii_environment="sandbox"), certificate=None, kind="replace",
        user_rut="14567890-0", firm_key=SimpleNamespace(holder_rut="13322924-8"),
    )
    assert sii_lease_keys(job=firm) == [(f"host:{host}", 3), ("rut:13322924-8", 2), ("rut:14567890-0", 2)]


def test_the_per_rut_cap_holds_and_a_refusal_takes_nothing(backend, host) -> None:  # type: ignore[no-untyped-def]
    rut = a_rut()
    first, second = sii_leases_acquire(job=fake_job(rut)), sii_leases_acquire(job=fake_job(rut))
    assert first is not None and second is not None
    assert sii_leases_acquire(job=fake_job(rut)) is None  # a third session of the same holder
    # The refused job took no place of the host either: all or nothing.
    assert sii_leases_held(f"host:{host}") == 2
    assert sii_leases_held(f"rut:{rut}") == 2
    other = sii_leases_acquire(job=fake_job(a_rut()))  # another holder still fits on the host
    assert other is not None
    for leases in (first, second, other):
        sii_leases_release(leases=leases)
    assert (sii_leases_held(f"host:{host}"), sii_leases_held(f"rut:{rut}")) == (0, 0)


def test_the_per_host_cap_holds_across_holders(backend, host) -> None:  # type: ignore[no-untyped-def]
    held = [sii_leases_acquire(job=fake_job(a_rut())) for _ in range(3)]
    assert all(leases is not None for leases in held)
    assert sii_leases_acquire(job=fake_job(a_rut())) is None
    sii_leases_release(leases=held[0])
    again = sii_leases_acquire(job=fake_job(a_rut()))
    assert again is not None
    for leases in [*held[1:], again]:
        sii_leases_release(leases=leases)


def test_a_dead_holders_places_expire_and_a_living_holder_keeps_its_own(backend, host, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_SII_LEASE_TTL_SECONDS = 1.0
    rut = a_rut()
    dead = sii_leases_acquire(job=fake_job(rut))  # its worker is killed: never renewed, never released
    alive = sii_leases_acquire(job=fake_job(rut))
    assert dead is not None and alive is not None
    assert sii_leases_acquire(job=fake_job(rut)) is None
    for _ in range(3):  # the living holder renews (every third of the TTL, as sii_leases_kept does)
        time.sleep(0.4)
        assert sii_leases_renew(leases=alive) is True
    # 1.2 s after its last renewal the dead holder's place is free; the living one's is not.
    newcomer = sii_leases_acquire(job=fake_job(rut))
    assert newcomer is not None
    assert sii_leases_acquire(job=fake_job(rut)) is None
    assert sii_leases_renew(leases=dead) is False  # lost: its place is the newcomer's now
    assert sii_leases_held(f"rut:{rut}") == 2
    for leases in (alive, newcomer):
        sii_leases_release(leases=leases)


def test_release_is_idempotent_and_never_frees_someone_elses_place(backend, host) -> None:  # type: ignore[no-untyped-def]
    rut = a_rut()
    mine = sii_leases_acquire(job=fake_job(rut))
    theirs = sii_leases_acquire(job=fake_job(rut))
    assert mine is not None and theirs is not None
    sii_leases_release(leases=mine)
    sii_leases_release(leases=mine)
    assert sii_leases_held(f"rut:{rut}") == 1
    assert sii_leases_renew(leases=theirs) is True
    sii_leases_release(leases=theirs)
    assert sii_leases_held(f"rut:{rut}") == 0


def test_kept_renews_while_the_block_runs_and_releases_however_it_ends(backend, host, settings) -> None:  # type: ignore[no-untyped-def]
    if backend == "database":
        pytest.skip("the database's renewing thread: test_kept_renews_from_its_own_thread_on_the_database_too")
    settings.AUTORIZA_SII_LEASE_TTL_SECONDS = 0.6
    rut = a_rut()
    leases = sii_leases_acquire(job=fake_job(rut))
    assert leases is not None
    with pytest.raises(RuntimeError), sii_leases_kept(leases):
        time.sleep(1.5)  # 2.5 TTLs: only the renewals keep it
        assert sii_leases_held(f"rut:{rut}") == 1
        raise RuntimeError("the bot crashed")
    assert sii_leases_held(f"rut:{rut}") == 0


@pytest.mark.django_db(transaction=True)
def test_kept_renews_from_its_own_thread_on_the_database_too(host, settings) -> None:  # type: ignore[no-untyped-def]
    """The renewing thread opens its own database connection (committed rows, as between workers)."""
    settings.REDIS_URL = ""
    settings.AUTORIZA_SII_LEASE_TTL_SECONDS = 0.6
    rut = a_rut()
    leases = sii_leases_acquire(job=fake_job(rut))
    assert leases is not None
    with sii_leases_kept(leases):
        time.sleep(1.5)
        assert sii_leases_held(f"rut:{rut}") == 1
        assert sii_leases_acquire(job=fake_job(rut)) is not None  # the second place
        assert sii_leases_acquire(job=fake_job(rut)) is None
    assert sii_leases_held(f"rut:{rut}") == 1  # only the other holder's, which nobody renews


def test_database_places_are_rows_reused_by_compare_and_set(db, host, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = ""
    settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT = 2
    rut = a_rut()
    for _ in range(3):
        leases = sii_leases_acquire(job=fake_job(rut))
        assert leases is not None
        sii_leases_release(leases=leases)
    # Taken and released three times: still one row per place ever used, none held.
    assert sorted(SiiLease.objects.filter(key=f"rut:{rut}").values_list("slot", "token")) == [(0, "")]


# --- Through the executor ---------------------------------------------------------------------------


class HeldDuringBot:
    """Stands in for sii_bot.enroll and records how many places its holder's limit had while it ran."""

    def __init__(self, rut: str) -> None:
        self.rut = rut
        self.held: list[int] = []

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.held.append(sii_leases_held(f"rut:{self.rut}"))
        record = sii_bot.SiiUserRecord(
            company_name="X", company_rut=request.company_rut, user_rut=request.user_rut, user_name="ALEX",
            admin=True, sign=True, registry=True, authorized_by="MARIA",
        )
        return sii_bot.EnrollmentResult(outcome="created", record=record)


@pytest.fixture
def queued_job(cast, certificate_bundle, enqueued, settings, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    settings.REDIS_URL = ""
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    with django_capture_on_commit_callbacks(execute=True):
        return services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)


def test_a_job_whose_holder_has_no_free_session_waits_in_the_queue_without_reaching_the_sii(  # type: ignore[no-untyped-def]
    queued_job, monkeypatch, settings
) -> None:
    settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT = 1
    settings.AUTORIZA_SII_LEASE_WAIT_SECONDS = 2.0
    holder = queued_job.certificate.holder_rut
    bot = HeldDuringBot(holder)
    monkeypatch.setattr(sii_bot, "enroll", bot)
    elsewhere = sii_leases_acquire(job=fake_job(holder))  # another worker holds the holder's only session
    assert elsewhere is not None

    before = timezone.now()
    waited = services.enrollment_job_execute(job_id=str(queued_job.pk), worker="w1")
    assert bot.held == []  # never logged in
    assert waited.status == JobStatus.QUEUED
    assert (waited.retry_count, waited.started_at, waited.enqueued_at, waited.lane) == (0, None, None, "live")
    assert 1.0 <= (waited.run_after - before).total_seconds() <= 2.5
    assert waited.company.stage == CompanyStage.QUEUED
    assert list(JobEvent.objects.filter(job=waited, step="waiting").values_list("status", flat=True)) == ["info"]

    # Its turn comes once the other session ends: it runs, holding the holder's session only meanwhile.
    sii_leases_release(leases=elsewhere)
    EnrollmentJob.objects.filter(pk=queued_job.pk).update(run_after=timezone.now())
    done = services.enrollment_job_execute(job_id=str(queued_job.pk), worker="w1")
    assert done.status == JobStatus.SUCCEEDED
    assert bot.held == [1]
    assert sii_leases_held(f"rut:{holder}") == 0
    assert JobEvent.objects.filter(job=done, step="waiting").count() == 1


def test_leases_are_released_when_the_bot_fails(queued_job, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise sii_bot.errors.UnexpectedPage("layout changed")

    monkeypatch.setattr(sii_bot, "enroll", crash)
    failed = services.enrollment_job_execute(job_id=str(queued_job.pk), worker="w1")
    assert failed.status == JobStatus.FAILED
    assert sii_leases_held(f"rut:{queued_job.certificate.holder_rut}") == 0
    assert lease_module.SiiLease.objects.exclude(token="").count() == 0
