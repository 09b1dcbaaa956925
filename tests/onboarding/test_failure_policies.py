"""The job system honours each failure's retry policy, on a clock the test moves
(`tests.fixtures.clock.shifted_now`): the SII's session limit (…27) is never retried within the
hour (not by the dispatcher, a worker, nor "retry now"); an SII outage is retried with backoff (1×,
2×, 4× of its minimum, then a clear failure); failures only a person can fix (…33, …35, …36, …37,
…41, locks) fail at once, never retried, saying so.

`sii_bot.enroll` is a scripted fake (`FakeBot`, as in test_jobs.py); the real bot meets each of these
SII answers in tests/sii_bot/test_bot_auth_errors.py and the sandbox suites."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

import sii_bot
from onboarding import services
from onboarding.domain.rules import job_needs_person
from onboarding.models import EnrollmentJob, JobStatus
from sii_bot import errors
from tests.fixtures.clock import shifted_now
from tests.onboarding.test_jobs import FakeBot

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    return shifted_now(monkeypatch)


@pytest.fixture
def bot(monkeypatch):  # type: ignore[no-untyped-def]
    fake = FakeBot()
    monkeypatch.setattr(sii_bot, "enroll", fake)
    return fake


@pytest.fixture
def job(cast, certificate_bundle, enqueued, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    with django_capture_on_commit_callbacks(execute=True):
        return services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)


def run(job: Any) -> EnrollmentJob | None:
    return services.enrollment_job_execute(job_id=str(job.pk))


def wait_seconds(job: EnrollmentJob) -> float:
    assert job.run_after is not None
    return (job.run_after - timezone.now()).total_seconds()


def test_session_limit_is_never_retried_within_the_hour(job, bot, clock, enqueued, cast) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.TooManySessions("máximo de sesiones", sii_text="01.01.190.500.720.27")
    retried = run(job)
    assert retried.status == JobStatus.QUEUED and retried.retry_count == 1
    assert wait_seconds(retried) >= 3600 - 5
    for step in (60, 29 * 60, 29 * 60):  # 1, 30 and 59 minutes after the failure
        clock.advance(step)
        enqueued.reset_mock()
        assert services.enrollment_jobs_dispatch() == 0  # the dispatcher does not send it
        assert services.enrollment_jobs_dispatch(early=True) == 0  # nor a worker that just freed a slot
        assert run(job) is None  # nor a worker holding a stray message: the claim refuses it
        with pytest.raises(services.ServiceError) as refused:  # nor an admin's "retry now"
            services.enrollment_job_retry_now(job=EnrollmentJob.objects.get(pk=job.pk), actor=cast.admin_a)
        assert refused.value.code == "sii_minimum_wait"
        enqueued.assert_not_called()
    assert len(bot.calls) == 1  # the SII saw no login in that hour
    clock.advance(2 * 60)  # 61 minutes after the failure
    assert services.enrollment_jobs_dispatch() == 1
    bot.outcome = "created"
    assert run(job).status == JobStatus.SUCCEEDED and len(bot.calls) == 2


def test_outage_is_retried_with_backoff_then_fails_clearly(job, bot, clock, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 3
    bot.outcome = errors.SiiOutage("/ayudas/900.html")
    minimum = errors.SiiOutage.retry_after_seconds
    waits = []
    for retry in (1, 2, 3):
        retried = run(job)
        assert retried.status == JobStatus.QUEUED and retried.retry_count == retry
        waits.append(wait_seconds(retried))
        clock.advance(waits[-1] - 10)
        assert run(job) is None  # 10 s early: not yet
        clock.advance(11)
    assert [round(w / minimum) for w in waits] == [1, 2, 4]  # 5, 10, 20 minutes
    assert all(abs(w - minimum * f) < 5 for w, f in zip(waits, (1, 2, 4)))
    failed = run(job)
    assert failed.status == JobStatus.FAILED and failed.failure_code == "sii_outage"
    assert failed.failure_retryable  # an admin may re-run it when the SII is back
    assert not job_needs_person(failed)
    assert len(bot.calls) == 4
    assert failed.events.filter(step="retry").count() == 3


NOT_RETRYABLE = [
    errors.CertificateLoginDisabled,  # …33
    errors.CertificateRevoked,  # …35
    errors.CertificateExpired,  # …36
    errors.CertificateIssuerNotAccepted,  # …37
    errors.LegalRepresentativeMismatch,  # …41
    errors.AuthenticationLocked,  # …9 / …19 / …49 / …55
]


@pytest.mark.parametrize("failure", NOT_RETRYABLE, ids=lambda f: f.code)
def test_failures_only_a_person_can_fix_fail_at_once(job, bot, clock, enqueued, failure) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = failure("SII said so")
    failed = run(job)
    assert failed.status == JobStatus.FAILED and failed.retry_count == 0 and failed.run_after is None
    assert failed.failure_code == failure.code and failed.failure_message == failure.user_message
    assert not failed.failure_retryable
    assert job_needs_person(failed)
    assert not failed.events.filter(step="retry").exists()
    clock.advance(24 * 3600)  # a day later nothing has tried again
    enqueued.reset_mock()
    assert services.enrollment_jobs_dispatch() == 0 and run(job) is None
    assert len(bot.calls) == 1


def test_a_needs_person_failure_is_not_retried_even_if_marked_retryable(job, bot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The `needs_person` flag wins over `retryable`: a lock that a retry would only extend."""
    monkeypatch.setattr(errors.AuthenticationLocked, "retryable", True)
    bot.outcome = errors.AuthenticationLocked("locked")
    failed = run(job)
    assert failed.status == JobStatus.FAILED and failed.retry_count == 0


def test_the_backoff_never_goes_below_the_failure_s_minimum(job, bot, clock) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.SessionExpired("login page again")
    retried = run(job)
    assert wait_seconds(retried) >= errors.SessionExpired.retry_after_seconds - 5
    assert wait_seconds(retried) <= timedelta(minutes=2).total_seconds()
