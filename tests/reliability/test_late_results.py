"""Outcomes that arrive after the job stopped being its worker's: the reaper failed it as lost (its
heartbeat looked stale) and then the worker finished after all, or another process took it over.

The SII's answer is still the truth: the job and the company must agree with it, the late result is
marked and audited, and a re-run already queued for the job never runs a second save. A late failure
never overwrites a newer state. `sii_bot.enroll` is a scripted fake (as in test_jobs.py) that runs the
reaper (and an admin's re-run) while it "drives the SII"."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

import sii_bot
from onboarding import services
from onboarding.models import (
    AuditAction,
    AuditEntry,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobEvent,
    JobStatus,
)
from sii_bot import errors

RECORD = sii_bot.SiiUserRecord(
    company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut="13322924-8",
    user_name="ALEX BRITO MARDONES", admin=True, sign=True, registry=True, authorized_by="MARIA JOSE SOTO",
)


def reap_now(job_id: Any) -> None:
    """What the periodic reaper does once this job's heartbeat looks older than its threshold."""
    EnrollmentJob.objects.filter(pk=job_id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.enrollment_jobs_reap() == 1


class SlowBot:
    """Stands in for sii_bot.enroll: runs `meanwhile` (what happens elsewhere while the SII is slow),
    then saves the user (counted in `saves`) and answers, or raises `failure`."""

    def __init__(self) -> None:
        self.meanwhile: list[Callable[[], None]] = []
        self.failure: BaseException | None = None
        self.saves = 0
        self.calls = 0

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.calls += 1
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="started", message="Identificándose"))
        for action in self.meanwhile:
            action()
        self.meanwhile = []
        if self.failure is not None:
            raise self.failure
        self.saves += 1
        return sii_bot.EnrollmentResult(outcome="created", record=RECORD)


@pytest.fixture
def bot(monkeypatch):  # type: ignore[no-untyped-def]
    fake = SlowBot()
    monkeypatch.setattr(sii_bot, "enroll", fake)
    return fake


@pytest.fixture
def job(cast, certificate_bundle, enqueued):  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    return services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)


def run(job_id: Any, capture: Any) -> EnrollmentJob | None:
    with capture(execute=True):
        return services.enrollment_job_execute(job_id=str(job_id), worker="w1")


def late_audit(job: EnrollmentJob) -> AuditEntry:
    return AuditEntry.objects.get(action=AuditAction.JOB_FINISHED, details__job=str(job.pk), details__late=True)


def test_a_job_reaped_as_lost_that_then_succeeds_is_recorded_as_succeeded(  # type: ignore[no-untyped-def]
    cast, job, bot, django_capture_on_commit_callbacks
) -> None:
    bot.meanwhile = [lambda: reap_now(job.pk)]
    done = run(job.pk, django_capture_on_commit_callbacks)

    # The job and the company agree, with what the SII answered.
    assert done.status == JobStatus.SUCCEEDED and done.outcome == "created" and done.result == {**RECORD.to_dict(), "unavailable_permissions": []}
    assert (done.failure_code, done.failure_message, done.failure_retryable) == ("", "", False)
    company = ClientCompany.objects.get(pk=cast.company_a.pk)
    assert company.stage == CompanyStage.AUTHORIZED
    assert (company.sii_user_rut, company.sii_admin, company.sii_sign, company.sii_registry) == ("13322924-8", True, True, True)
    certificate = Certificate.objects.get(pk=job.certificate_id)
    assert not certificate.is_usable and certificate.destroy_reason == "job_succeeded"
    # Marked on the job and audited as late, with what it replaced.
    [note] = JobEvent.objects.filter(job=done, step="late_result")
    assert note.status == "info" and "se había dado por interrumpido" in note.message
    entry = late_audit(done)
    assert entry.details["previous"]["status"] == JobStatus.FAILED
    assert entry.details["previous"]["failure_code"] == "worker_lost"
    assert entry.details["superseded_reruns"] == []
    # The client hears of the failure (at the reap), then of the success.
    subjects = [message.subject for message in mail.outbox if message.to == ["cliente@empresa.cl"]]
    assert subjects == [
        "No se pudo completar la autorización en el SII: Comercial Demo SpA",
        "Autorización completada en el SII: Comercial Demo SpA",
    ]
    with pytest.raises(services.ServiceError) as refused:  # nothing left to re-run
        services.enrollment_job_rerun(job=done, actor=cast.admin_a)
    assert refused.value.code == "not_failed"


def test_a_rerun_queued_after_the_reap_never_saves_a_second_time(  # type: ignore[no-untyped-def]
    cast, job, bot, enqueued, django_capture_on_commit_callbacks
) -> None:
    reruns: list[EnrollmentJob] = []

    def admin_reruns() -> None:
        reruns.append(services.enrollment_job_rerun(job=EnrollmentJob.objects.get(pk=job.pk), actor=cast.admin_a))

    bot.meanwhile = [lambda: reap_now(job.pk), admin_reruns]
    done = run(job.pk, django_capture_on_commit_callbacks)
    [rerun] = reruns
    assert done.status == JobStatus.SUCCEEDED

    # The queued re-run is closed without running: it carries its predecessor's confirmation.
    rerun.refresh_from_db()
    assert rerun.status == JobStatus.SUCCEEDED and rerun.outcome == "created" and rerun.result == {**RECORD.to_dict(), "unavailable_permissions": []}
    assert rerun.started_at is None and rerun.worker == ""
    [superseded] = JobEvent.objects.filter(job=rerun, step="superseded")
    assert "el intento 1 ya había completado el trámite" in superseded.message
    assert late_audit(done).details["superseded_reruns"] == [str(rerun.pk)]
    # Its broker message finds nothing to run: one save in the SII, not two.
    assert run(rerun.pk, django_capture_on_commit_callbacks) is None
    assert bot.calls == 1 and bot.saves == 1
    company = ClientCompany.objects.get(pk=cast.company_a.pk)
    assert company.stage == CompanyStage.AUTHORIZED and company.sii_user_rut == "13322924-8"
    assert not EnrollmentJob.objects.filter(company=cast.company_a, status__in=("queued", "running")).exists()
    assert not Certificate.objects.get(pk=job.certificate_id).is_usable


def test_a_late_failure_does_not_overwrite_the_newer_state(  # type: ignore[no-untyped-def]
    cast, job, bot, django_capture_on_commit_callbacks
) -> None:
    reruns: list[EnrollmentJob] = []
    bot.meanwhile = [
        lambda: reap_now(job.pk),
        lambda: reruns.append(services.enrollment_job_rerun(job=EnrollmentJob.objects.get(pk=job.pk), actor=cast.admin_a)),
    ]
    bot.failure = errors.HolderNotAdministrator("holder is not admin", step="company", page_html="<HTML>no</HTML>")
    done = run(job.pk, django_capture_on_commit_callbacks)

    # Still what the reaper wrote; the re-run still queued; the company still waits for it.
    assert done.status == JobStatus.FAILED and done.failure_code == "worker_lost" and done.failure_retryable
    [rerun] = reruns
    assert EnrollmentJob.objects.get(pk=rerun.pk).status == JobStatus.QUEUED
    assert ClientCompany.objects.get(pk=cast.company_a.pk).stage == CompanyStage.QUEUED
    assert Certificate.objects.get(pk=job.certificate_id).is_usable  # the re-run needs it
    # ... but the late failure is on record.
    [note] = JobEvent.objects.filter(job=done, step="late_result")
    assert note.status == "failed" and errors.HolderNotAdministrator.user_message in note.message
    entry = late_audit(done)
    assert entry.details["failure_code"] == "holder_not_administrator"
    assert entry.details["previous"]["failure_code"] == "worker_lost"


def test_a_retry_is_not_scheduled_for_a_job_another_process_took_over(  # type: ignore[no-untyped-def]
    cast, job, bot, django_capture_on_commit_callbacks
) -> None:
    """The claim is the worker and its start: a worker that lost the job to a take-over cannot put it
    back in the queue under the new owner's feet."""
    def taken_over() -> None:
        EnrollmentJob.objects.filter(pk=job.pk).update(worker="w2", started_at=timezone.now() + timedelta(seconds=1))

    bot.meanwhile = [taken_over]
    bot.failure = errors.SiiUnavailable("HTTP 500")
    done = run(job.pk, django_capture_on_commit_callbacks)
    assert (done.status, done.worker, done.retry_count) == (JobStatus.RUNNING, "w2", 0)
    assert JobEvent.objects.filter(job=done, step="late_result", status="failed").count() == 1


def test_a_late_result_for_a_job_that_already_succeeded_is_only_noted(  # type: ignore[no-untyped-def]
    cast, job, bot, django_capture_on_commit_callbacks
) -> None:
    """Taken over by another process that finished first: the slower one's answer changes nothing and
    sends no second email."""
    def other_process_finishes() -> None:
        EnrollmentJob.objects.filter(pk=job.pk).update(
            worker="w2", status=JobStatus.SUCCEEDED, outcome="already_authorized", finished_at=timezone.now()
        )

    bot.meanwhile = [other_process_finishes]
    done = run(job.pk, django_capture_on_commit_callbacks)
    assert (done.status, done.outcome, done.worker) == (JobStatus.SUCCEEDED, "already_authorized", "w2")
    assert mail.outbox == []
    [note] = JobEvent.objects.filter(job=done, step="late_result")
    assert note.status == "info" and "ya estaba registrado" in note.message
    assert late_audit(done).details["previous"]["status"] == JobStatus.SUCCEEDED
