"""Job orchestration in the services: creation and enqueueing, the compare-and-set claim, success,
typed failures, automatic retries, crashes, re-runs, the reaper, the dispatcher and retention.

`sii_bot.enroll` is replaced by a scripted fake here; the real bot against the sandbox is exercised
by the sandbox end-to-end tests."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

import sii_bot
from onboarding import services
from onboarding.models import (
    ArtifactKind,
    AuditAction,
    AuditEntry,
    Certificate,
    CompanyStage,
    EnrollmentJob,
    JobArtifact,
    JobStatus,
)
from sii_bot import errors

RECORD = sii_bot.SiiUserRecord(
    company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut="13322924-8",
    user_name="ALEX BRITO MARDONES", admin=True, sign=True, registry=True, authorized_by="MARIA JOSE SOTO",
)


class FakeBot:
    """Stands in for sii_bot.enroll: reports two steps, then returns or raises what it was told."""

    def __init__(self, outcome: Any = "created") -> None:
        self.outcome = outcome
        self.calls: list[tuple[Any, Any]] = []

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.calls.append((request, certificate))
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="started", message="Identificándose"))
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="done", message="Listo", screenshot=b"\x89PNG fake"))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return sii_bot.EnrollmentResult(outcome=self.outcome, record=RECORD)


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


def test_consent_creates_a_queued_job_enqueued_by_id_only(cast, job, enqueued) -> None:  # type: ignore[no-untyped-def]
    assert job.status == JobStatus.QUEUED and job.attempt == 1
    assert (job.user_rut, job.user_name) == ("13322924-8", "ALEX BRITO MARDONES")
    assert job.permissions == {"admin", "sign", "registry"}
    enqueued.assert_called_once_with(str(job.pk))  # the broker sees a UUID and nothing else
    job.refresh_from_db()
    assert job.enqueued_at is not None
    cast.company_a.refresh_from_db()
    assert cast.company_a.stage == CompanyStage.QUEUED
    with pytest.raises(services.ServiceError) as refused:
        services.enrollment_job_create(company=cast.company_a, certificate=job.certificate, created_by=cast.client_a)
    assert refused.value.code == "job_already_active"


def test_claim_is_a_compare_and_set(job) -> None:  # type: ignore[no-untyped-def]
    assert services.enrollment_job_claim(job_id=str(job.pk), worker="w1") is not None
    assert services.enrollment_job_claim(job_id=str(job.pk), worker="w2") is None
    assert EnrollmentJob.objects.get(pk=job.pk).worker == "w1"


def test_a_redelivered_message_runs_the_job_once(job, bot) -> None:  # type: ignore[no-untyped-def]
    assert services.enrollment_job_execute(job_id=str(job.pk)) is not None
    assert services.enrollment_job_execute(job_id=str(job.pk)) is None
    assert len(bot.calls) == 1


def test_success_records_steps_result_evidence_and_erases_the_key(cast, job, bot) -> None:  # type: ignore[no-untyped-def]
    done = services.enrollment_job_execute(job_id=str(job.pk), worker="w1")
    assert done.status == JobStatus.SUCCEEDED and done.outcome == "created"
    assert done.result == {**RECORD.to_dict(), "unavailable_permissions": []} and done.finished_at is not None
    request, material = bot.calls[0]
    assert request.company_rut == "76086428-5" and request.user_rut == "13322924-8"
    assert {p.value for p in request.permissions} == {"admin", "sign", "registry"}
    assert b"PRIVATE KEY" in material.key_pem  # decrypted only for the bot call
    steps = [(e.step, e.status) for e in done.events.all()]
    assert steps == [("queued", "info"), ("login", "started"), ("login", "done")]
    shot = JobArtifact.objects.get(job=done)
    assert shot.kind == ArtifactKind.SCREENSHOT and b"PNG" not in bytes(shot.sealed_content)
    assert services.job_artifact_open(artifact=shot) == b"\x89PNG fake"
    certificate = Certificate.objects.get(pk=job.certificate_id)
    assert not certificate.is_usable and certificate.destroy_reason == "job_succeeded"
    cast.company_a.refresh_from_db()
    assert cast.company_a.stage == CompanyStage.AUTHORIZED
    assert (cast.company_a.sii_user_rut, cast.company_a.sii_admin, cast.company_a.sii_sign) == ("13322924-8", True, True)
    assert AuditEntry.objects.filter(tenant=cast.tenant_a, action=AuditAction.JOB_FINISHED).exists()


def test_success_emails_the_client_and_the_firm(cast, job, bot, django_capture_on_commit_callbacks, settings) -> None:  # type: ignore[no-untyped-def]
    cast.tenant_a.notification_emails = "avisos@a.cl"
    cast.tenant_a.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.enrollment_job_execute(job_id=str(job.pk))
    # One email each: the client's links to the client status page, the firm's to the staff job page.
    client_mail, firm_mail = mail.outbox
    assert client_mail.to == ["cliente@empresa.cl"] and firm_mail.to == ["avisos@a.cl"]
    assert "Autorización completada" in client_mail.subject
    assert f"/trabajo/{job.pk}/" in client_mail.body
    assert f"/estudio/pyme/trabajos/{job.pk}/" in firm_mail.body


def test_a_final_failure_keeps_the_certificate_for_a_rerun(cast, job, bot) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.HolderNotAdministrator("holder is not admin", page_html="<HTML>no</HTML>", step="company")
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == "holder_not_administrator"
    assert done.failure_message == errors.HolderNotAdministrator.user_message and not done.failure_retryable
    assert Certificate.objects.get(pk=job.certificate_id).is_usable
    html = JobArtifact.objects.get(job=done, kind=ArtifactKind.PAGE_HTML)
    assert services.job_artifact_open(artifact=html) == b"<HTML>no</HTML>"
    cast.company_a.refresh_from_db()
    assert cast.company_a.stage == CompanyStage.FAILED


def test_a_failed_step_s_screenshot_is_stored_once(cast, job, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The bot sends the failed step's screenshot with its "failed" event and again with the failure:
    the job's page listed the same picture twice. A different picture of the same step is kept."""
    def failing(request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.COMPANY, status="started", message="Empresa"))
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.COMPANY, status="failed", message="No", screenshot=b"\x89PNG A"))
        raise errors.HolderNotAdministrator("holder is not admin", step="company", screenshot=b"\x89PNG A")

    monkeypatch.setattr(sii_bot, "enroll", failing)
    done = services.enrollment_job_execute(job_id=str(job.pk))
    shots = JobArtifact.objects.filter(job=done, kind=ArtifactKind.SCREENSHOT, step="company")
    assert [services.job_artifact_open(artifact=shot) for shot in shots] == [b"\x89PNG A"]
    assert services.job_artifact_store(
        job=done, kind=ArtifactKind.SCREENSHOT, step="company", content=b"\x89PNG B", unless_stored=True
    ) is not None


def test_a_certificate_the_sii_rejected_is_destroyed_and_not_offered_again(client, cast, job, bot) -> None:  # type: ignore[no-untyped-def]
    from django.urls import reverse

    bot.outcome = errors.CertificateRejected("tlsv1 alert unknown ca", step="login")
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == "certificate_rejected"
    certificate = Certificate.objects.get(pk=job.certificate_id)
    assert not certificate.is_usable and certificate.destroy_reason == "sii_rejected"
    assert certificate.sealed_material is None and certificate.wrapped_key is None
    entry = AuditEntry.objects.get(action=AuditAction.JOB_FINISHED)
    assert entry.details["certificate_destroyed"] is True
    with pytest.raises(services.ServiceError) as refused:  # a re-run would only be refused the same way
        services.enrollment_job_rerun(job=done, actor=cast.admin_a)
    assert refused.value.code == "certificate_missing"
    client.force_login(cast.client_a)
    page = client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})).content.decode()
    assert "Continuar con este certificado" not in page
    assert reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk}) in page
    status = client.get(reverse("client:job", kwargs={"job_id": done.pk})).content.decode()
    assert "lo eliminamos de nuestros sistemas. Suba otro certificado" in status


@pytest.mark.parametrize(
    "failure",
    [errors.HolderNotAdministrator("not admin"), errors.SiiUnavailable("HTTP 500"), errors.UnexpectedPage("layout")],
    ids=lambda failure: failure.code,
)
def test_other_final_failures_keep_the_certificate(job, bot, settings, failure) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 0
    bot.outcome = failure
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == failure.code
    assert Certificate.objects.get(pk=job.certificate_id).is_usable


def test_transient_failures_retry_with_backoff_then_fail(job, bot, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 2
    bot.outcome = errors.SiiUnavailable("HTTP 500")
    for expected_retry in (1, 2):
        retried = services.enrollment_job_execute(job_id=str(job.pk))
        assert retried.status == JobStatus.QUEUED and retried.retry_count == expected_retry
        assert retried.run_after > timezone.now()
        assert services.enrollment_job_execute(job_id=str(job.pk)) is None  # not due yet
        EnrollmentJob.objects.filter(pk=job.pk).update(run_after=timezone.now())
    failed = services.enrollment_job_execute(job_id=str(job.pk))
    assert failed.status == JobStatus.FAILED and failed.failure_code == "sii_unavailable" and failed.failure_retryable
    assert [e.step for e in failed.events.filter(step="retry")] == ["retry", "retry"]


def test_throttling_waits_at_least_what_the_sii_demands(job, bot) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.LoginThrottled("throttled")
    retried = services.enrollment_job_execute(job_id=str(job.pk))
    assert retried.status == JobStatus.QUEUED
    assert retried.run_after - timezone.now() >= timedelta(seconds=errors.LoginThrottled.retry_after_seconds - 5)


def test_a_crash_never_leaves_the_job_running(job, bot) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = RuntimeError("boom with details")
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == "internal_error"
    assert "boom" not in done.failure_message


def test_a_tampered_certificate_row_fails_cleanly(job, bot) -> None:  # type: ignore[no-untyped-def]
    other = Certificate.objects.get(pk=job.certificate_id)
    Certificate.objects.filter(pk=other.pk).update(sealed_material=bytes(other.sealed_material)[:-1] + b"\x00")
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == "certificate_unreadable"
    assert bot.calls == []


def test_rerun_is_a_new_linked_attempt_and_audited(cast, job, bot, enqueued) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.UnexpectedPage("layout changed")
    failed = services.enrollment_job_execute(job_id=str(job.pk))
    rerun = services.enrollment_job_rerun(job=failed, actor=cast.admin_a)
    assert rerun.attempt == 2 and rerun.rerun_of == failed and rerun.status == JobStatus.QUEUED
    assert EnrollmentJob.objects.get(pk=failed.pk).status == JobStatus.FAILED  # never a reset
    with pytest.raises(services.ServiceError) as again:
        services.enrollment_job_rerun(job=failed, actor=cast.admin_a)
    assert again.value.code == "already_rerun"
    entry = AuditEntry.objects.get(action=AuditAction.RERUN)
    assert entry.actor == cast.admin_a and entry.details["new_job"] == str(rerun.pk)


def test_rerun_refused_without_a_stored_certificate(cast, job, bot) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.UnexpectedPage("layout changed")
    failed = services.enrollment_job_execute(job_id=str(job.pk))
    services.certificate_destroy(certificate=failed.certificate, reason="client_deleted")
    with pytest.raises(services.ServiceError) as refused:
        services.enrollment_job_rerun(job=failed, actor=cast.admin_a)
    assert refused.value.code == "certificate_missing"


def test_reaper_fails_jobs_whose_worker_vanished(job) -> None:  # type: ignore[no-untyped-def]
    services.enrollment_job_claim(job_id=str(job.pk), worker="dead")
    assert services.enrollment_jobs_reap() == 0  # fresh heartbeat: alive
    EnrollmentJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.enrollment_jobs_reap() == 1
    reaped = EnrollmentJob.objects.get(pk=job.pk)
    assert reaped.status == JobStatus.FAILED and reaped.failure_code == "worker_lost" and reaped.failure_retryable


def test_dispatcher_resends_due_and_lost_jobs_only(job, enqueued) -> None:  # type: ignore[no-untyped-def]
    enqueued.reset_mock()
    assert services.enrollment_jobs_dispatch() == 0  # its message was sent a moment ago
    EnrollmentJob.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert services.enrollment_jobs_dispatch() == 1
    enqueued.assert_called_once_with(str(job.pk))
    EnrollmentJob.objects.filter(pk=job.pk).update(enqueued_at=None, run_after=timezone.now() + timedelta(minutes=5))
    assert services.enrollment_jobs_dispatch() == 1 - 1  # a scheduled retry waits for its time


def test_retention_erases_unused_certificates_but_not_ones_in_use(cast, job, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    idle = services.certificate_store(company=cast.company_b, bundle=certificate_bundle, uploaded_by=None)
    Certificate.objects.update(created_at=timezone.now() - timedelta(days=30))
    assert services.certificates_purge_expired() == 1
    assert not Certificate.objects.get(pk=idle.pk).is_usable
    assert Certificate.objects.get(pk=job.certificate_id).is_usable  # its job is still queued


class SavesThenFails(FakeBot):
    """First attempt: submits the save (through `confirm_status` on the confirmation step), then the
    attempt fails before SII's answer is read; later attempts find the user already as requested."""

    def __init__(self, confirm_status: str) -> None:
        super().__init__("already_authorized")
        self.confirm_status = confirm_status

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        if not self.calls:
            self.calls.append((request, certificate))
            on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.CONFIRM, status=self.confirm_status, message="…"))
            on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.SAVE, status="started", message="Grabando"))
            raise errors.SiiUnavailable("HTTP 500 after the save")
        return super().__call__(request, certificate, settings, on_progress)


@pytest.mark.parametrize(("confirm_status", "expected"), [("done", "created"), ("skipped", "updated")])
def test_a_save_an_earlier_attempt_submitted_is_reported_as_made_not_as_already_there(
    job, monkeypatch, confirm_status: str, expected: str
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sii_bot, "enroll", SavesThenFails(confirm_status))
    retried = services.enrollment_job_execute(job_id=str(job.pk))
    assert retried.status == JobStatus.QUEUED
    EnrollmentJob.objects.filter(pk=job.pk).update(run_after=timezone.now())
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.SUCCEEDED and done.outcome == expected


def test_already_authorized_stays_so_when_no_attempt_saved(job, bot) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = "already_authorized"
    assert services.enrollment_job_execute(job_id=str(job.pk)).outcome == "already_authorized"


@pytest.mark.parametrize(
    "failure",
    [errors.CertificateRevoked("…35"), errors.CertificateExpired("…36"),
     errors.CertificateIssuerNotAccepted("…37"), errors.CertificateInvalid("…38")],
    ids=lambda failure: failure.code,
)
def test_a_certificate_the_sii_revoked_expired_or_refused_is_erased_too(client, cast, job, bot, failure) -> None:  # type: ignore[no-untyped-def]
    from django.urls import reverse

    bot.outcome = failure
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == failure.code
    certificate = Certificate.objects.get(pk=job.certificate_id)
    assert not certificate.is_usable and certificate.destroy_reason == "sii_rejected"
    client.force_login(cast.client_a)
    page = client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})).content.decode()
    assert "Continuar con este certificado" not in page
    assert reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk}) in page
