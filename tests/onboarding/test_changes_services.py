"""Revocation, change of representative and permission changes in the services, with a scripted bot
(like test_jobs.py's FakeBot): kind selection, affected clients, certificate usable vs. email, emails,
audit, the company's state after each outcome and the partial replacement failure."""
from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

import sii_bot
from onboarding import selectors, services
from onboarding.models import (
    AuditAction,
    AuditEntry,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobKind,
    JobStatus,
    Relationship,
    Representative,
)
from sii_bot import errors

OLD_RUT, OLD_NAME = "13322924-8", "ALEX BRITO MARDONES"  # the cast's representative
NEW_RUT, NEW_NAME = "14567890-0", "MARCELA IGNACIA ROJAS DIAZ"


def record(user_rut: str, *, admin: bool = True, sign: bool = True, registry: bool = True) -> sii_bot.SiiUserRecord:
    return sii_bot.SiiUserRecord(
        company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut=user_rut, user_name="X",
        admin=admin, sign=sign, registry=registry, authorized_by="MARIA JOSE SOTO",
    )


class ChangeBot:
    """Stands in for sii_bot.enroll / revoke / replace; `failure` (if set) is raised instead."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.failure: BaseException | None = None
        self.enroll_outcome = "updated"

    def _progress(self, on_progress: Any, step: sii_bot.Step) -> None:
        on_progress(sii_bot.ProgressEvent(step=step, status="started", message="…"))
        on_progress(sii_bot.ProgressEvent(step=step, status="done", message="Listo"))

    def enroll(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.calls.append(("enroll", request))
        self._progress(on_progress, sii_bot.Step.SAVE)
        if self.failure:
            raise self.failure
        return sii_bot.EnrollmentResult(
            outcome=self.enroll_outcome,
            record=record(request.user_rut, admin=request.admin, sign=request.sign, registry=request.registry),
        )

    def revoke(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.calls.append(("revoke", request))
        self._progress(on_progress, sii_bot.Step.DELETE)
        if self.failure:
            raise self.failure
        return sii_bot.RevocationResult(outcome="revoked", company_rut=request.company_rut, user_rut=request.user_rut,
                                        final_entries={request.user_rut: None})

    def replace(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.calls.append(("replace", request))
        self._progress(on_progress, sii_bot.Step.SAVE)
        addition = sii_bot.EnrollmentResult(
            outcome="already_authorized" if len([c for c in self.calls if c[0] == "replace"]) > 1 else "created",
            record=record(request.new_user_rut, admin=request.addition.admin, sign=request.addition.sign,
                          registry=request.addition.registry),
        )
        if self.failure:
            failure, self.failure = self.failure, None
            if isinstance(failure, errors.EnrollmentFailure) and failure.step == "delete":
                raise errors.ReplacementIncomplete.after(failure, addition, request.old_user_rut) from failure
            raise failure
        self._progress(on_progress, sii_bot.Step.DELETE)
        removal = sii_bot.RevocationResult(outcome="revoked", company_rut=request.company_rut,
                                           user_rut=request.old_user_rut)
        return sii_bot.ReplacementResult(outcome="replaced", addition=addition, removal=removal)


@pytest.fixture
def bot(monkeypatch):  # type: ignore[no-untyped-def]
    fake = ChangeBot()
    monkeypatch.setattr(sii_bot, "enroll", fake.enroll)
    monkeypatch.setattr(sii_bot, "revoke", fake.revoke)
    monkeypatch.setattr(sii_bot, "replace", fake.replace)
    return fake


# Jobs these services create are enqueued to a mock (the fake SII above runs them when asked).
pytestmark = pytest.mark.usefixtures("enqueued")


def authorized(company: Any, rut: str = OLD_RUT, **flags: bool) -> ClientCompany:
    """Mark `company` as holding `rut` in the SII (as a succeeded job would)."""
    values = {"admin": True, "sign": True, "registry": True, **flags}
    ClientCompany.objects.filter(pk=company.pk).update(
        sii_user_rut=rut, sii_admin=values["admin"], sii_sign=values["sign"], sii_registry=values["registry"],
        stage=CompanyStage.AUTHORIZED,
    )
    company.refresh_from_db()
    return company


def stored_certificate(cast: Any, bundle: Any, company: Any = None) -> Certificate:
    return services.certificate_store(company=company or cast.company_a, bundle=bundle, uploaded_by=cast.client_a)


def run(job: EnrollmentJob, capture: Any) -> EnrollmentJob:
    with capture(execute=True):
        return services.enrollment_job_execute(job_id=str(job.pk))


def second_company(cast: Any, *, rut: str = "76.354.771-K", email: str = "otra@empresa.cl") -> ClientCompany:
    return services.client_company_create(
        tenant=cast.tenant_a, rut=rut, legal_name="Otra Empresa SpA", owner_name="Juan Pérez", owner_email=email,
    )


# --- Revoke ------------------------------------------------------------------------------------


def test_ending_with_a_stored_certificate_revokes_at_once(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    cast.tenant_a.notification_emails = "avisos@a.cl"
    cast.tenant_a.save()
    authorized(cast.company_a)
    certificate = stored_certificate(cast, certificate_bundle)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.company_relationship_end(company=cast.company_a, actor=cast.admin_a)
    assert job is not None and job.kind == JobKind.REVOKE and job.user_rut == OLD_RUT
    assert job.certificate_id == certificate.pk
    cast.company_a.refresh_from_db()
    assert cast.company_a.relationship == Relationship.ENDING and cast.company_a.stage == CompanyStage.QUEUED
    assert AuditEntry.objects.filter(company=cast.company_a, action=AuditAction.SETTINGS,
                                     summary__startswith="Término de la relación", actor=cast.admin_a).exists()
    assert mail.outbox == []

    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED and done.outcome == "revoked"
    assert bot.calls == [("revoke", sii_bot.RevocationRequest("76086428-5", OLD_RUT))]
    cast.company_a.refresh_from_db()
    assert (cast.company_a.relationship, cast.company_a.stage, cast.company_a.sii_user_rut) == (
        Relationship.ENDED, CompanyStage.REVOKED, "")
    assert not (cast.company_a.sii_admin or cast.company_a.sii_sign or cast.company_a.sii_registry)
    assert not Certificate.objects.get(pk=certificate.pk).is_usable
    assert AuditEntry.objects.filter(company=cast.company_a, action=AuditAction.JOB_FINISHED,
                                     summary__contains="eliminado").exists()
    client_mail, firm_mail = mail.outbox
    assert client_mail.to == ["cliente@empresa.cl"] and firm_mail.to == ["avisos@a.cl"]
    assert "ya no es usuario autorizado" in client_mail.body and "Representante eliminado" in client_mail.subject


def test_ending_without_a_certificate_asks_for_it_and_consent_revokes(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.company_relationship_end(company=cast.company_a, actor=cast.admin_a) is None
    (asked,) = mail.outbox
    assert asked.to == ["cliente@empresa.cl"]
    assert f"/empresa/{cast.company_a.pk}/certificado/" in asked.body and "Quitar a ALEX BRITO MARDONES" in asked.body
    cast.company_a.refresh_from_db()
    assert cast.company_a.relationship == Relationship.ENDING and not EnrollmentJob.objects.exists()

    terms = selectors.change_consent_terms(company=cast.company_a)
    assert terms.kind == JobKind.REVOKE and terms.remove_rut == "13.322.924-8" and terms.add_rut == ""
    assert "QUITAR a ALEX BRITO MARDONES" in terms.summary
    certificate = stored_certificate(cast, certificate_bundle)
    with pytest.raises(services.ServiceError) as stale:
        services.change_consent_give(company=cast.company_a, certificate=certificate, user=cast.client_a,
                                     terms_version="otra")
    assert stale.value.code == "terms_changed"
    job = services.change_consent_give(company=cast.company_a, certificate=certificate, user=cast.client_a,
                                       terms_version=terms.version)
    assert job.kind == JobKind.REVOKE and job.user_rut == OLD_RUT
    consent = AuditEntry.objects.get(action=AuditAction.CONSENT, company=cast.company_a)
    assert consent.details["kind"] == "revoke" and consent.details["remove_rut"] == "13.322.924-8"
    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED
    cast.company_a.refresh_from_db()
    assert cast.company_a.relationship == Relationship.ENDED and cast.company_a.sii_user_rut == ""


def test_ending_again_while_waiting_for_the_certificate_is_refused_and_emails_once(
    cast, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """Each click used to email the client again and add an audit entry (QA: 4 clicks, 4 emails)."""
    authorized(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        services.company_relationship_end(company=cast.company_a, actor=cast.admin_a)
        for _ in range(3):
            with pytest.raises(services.ServiceError) as again:
                services.company_relationship_end(company=cast.company_a, actor=cast.admin_a)
            assert again.value.code == "relationship_ending" and "Ya le pedimos" in again.value.message
    assert len(mail.outbox) == 1
    assert AuditEntry.objects.filter(company=cast.company_a, summary__startswith="Término de la relación").count() == 1


def test_ending_when_nobody_is_authorized_ends_at_once(cast) -> None:  # type: ignore[no-untyped-def]
    assert services.company_relationship_end(company=cast.company_a, actor=cast.owner_a) is None
    cast.company_a.refresh_from_db()
    assert (cast.company_a.relationship, cast.company_a.stage) == (Relationship.ENDED, CompanyStage.REVOKED)
    with pytest.raises(services.ServiceError) as again:
        services.company_relationship_end(company=cast.company_a, actor=cast.owner_a)
    assert again.value.code == "relationship_ended"


def test_a_failed_revoke_keeps_the_relationship_ending_and_is_rerunnable(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 0
    authorized(cast.company_a)
    stored_certificate(cast, certificate_bundle)
    job = services.company_relationship_end(company=cast.company_a, actor=cast.owner_a)
    bot.failure = errors.SiiUnavailable("down", step="delete")
    failed = run(job, django_capture_on_commit_callbacks)
    assert failed.status == JobStatus.FAILED and failed.failure_retryable
    cast.company_a.refresh_from_db()
    assert cast.company_a.relationship == Relationship.ENDING and cast.company_a.sii_user_rut == OLD_RUT
    assert "No pudimos completar el cambio" in mail.outbox[0].body
    bot.failure = None
    again = services.enrollment_job_rerun(job=failed, actor=cast.owner_a)
    assert again.kind == JobKind.REVOKE and again.user_rut == OLD_RUT and again.attempt == 2
    assert run(again, django_capture_on_commit_callbacks).status == JobStatus.SUCCEEDED
    cast.company_a.refresh_from_db()
    assert cast.company_a.relationship == Relationship.ENDED


# --- Change of representative -----------------------------------------------------------------


def test_replacing_the_representative_jobs_or_emails_each_affected_client(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)
    authorized(cast.company_a)
    certificate = stored_certificate(cast, certificate_bundle)
    no_cert = authorized(second_company(cast))
    other_rep = authorized(second_company(cast, rut="77.879.240-0", email="x@y.cl"), rut="7880442-4")
    ended = authorized(second_company(cast, rut="76.192.083-9", email="e@y.cl"))
    ClientCompany.objects.filter(pk=ended.pk).update(relationship=Relationship.ENDED)
    # Tenant B's company holding the same RUT is never touched.
    authorized(cast.company_b)

    affected = list(selectors.companies_affected_by_representative(tenant=cast.tenant_a, representative=old))
    assert affected == [cast.company_a, no_cert] or set(affected) == {cast.company_a, no_cert}
    with django_capture_on_commit_callbacks(execute=True):
        report = services.representative_replace(
            tenant=cast.tenant_a, old=old, new_rut="14.567.890-0", new_name="Marcela Ignacia Rojas Díaz",
            actor=cast.owner_a,
        )
    (job,) = report.jobs
    assert report.emailed == [no_cert] and report.skipped == []
    assert (job.kind, job.company_id, job.user_rut, job.old_user_rut, job.old_user_name) == (
        JobKind.REPLACE, cast.company_a.pk, NEW_RUT, OLD_RUT, OLD_NAME)
    assert job.certificate_id == certificate.pk
    (asked,) = mail.outbox
    assert asked.to == ["otra@empresa.cl"] and "quitar a ALEX BRITO MARDONES" in asked.body
    assert f"/empresa/{no_cert.pk}/certificado/" in asked.body
    old.refresh_from_db()
    new = Representative.objects.get(tenant=cast.tenant_a, rut=NEW_RUT)
    assert not old.is_active and new.is_active
    assert AuditEntry.objects.filter(tenant=cast.tenant_a, action=AuditAction.SETTINGS,
                                     summary__startswith="Representante reemplazado", actor=cast.owner_a).exists()
    assert not EnrollmentJob.objects.filter(company__in=[other_rep, ended, cast.company_b]).exists()

    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED and done.outcome == "replaced"
    ((name, request),) = bot.calls
    assert name == "replace" and (request.new_user_rut, request.old_user_rut) == (NEW_RUT, OLD_RUT)
    cast.company_a.refresh_from_db()
    assert (cast.company_a.sii_user_rut, cast.company_a.stage) == (NEW_RUT, CompanyStage.AUTHORIZED)
    assert "Representante reemplazado" in mail.outbox[-1].subject and "eliminó a ALEX" in mail.outbox[-1].body


def test_a_later_consent_for_a_stale_company_replaces(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)
    authorized(cast.company_a)
    services.representative_replace(tenant=cast.tenant_a, old=old, new_rut=NEW_RUT, new_name=NEW_NAME,
                                    actor=cast.owner_a)
    assert not EnrollmentJob.objects.exists()  # no certificate: the client was emailed
    terms = selectors.change_consent_terms(company=cast.company_a)
    assert terms.kind == JobKind.REPLACE
    assert (terms.add_rut, terms.remove_rut, terms.remove_name) == ("14.567.890-0", "13.322.924-8", OLD_NAME)
    assert terms.permission_labels == ("Usuario Administrador", "Firmar Documentos", "Consulta/Registro")
    certificate = stored_certificate(cast, certificate_bundle)
    job = services.change_consent_give(company=cast.company_a, certificate=certificate, user=cast.client_a,
                                       terms_version=terms.version)
    assert (job.kind, job.user_rut, job.old_user_rut) == (JobKind.REPLACE, NEW_RUT, OLD_RUT)
    assert run(job, django_capture_on_commit_callbacks).status == JobStatus.SUCCEEDED
    cast.company_a.refresh_from_db()
    assert cast.company_a.sii_user_rut == NEW_RUT
    # Nothing stale any more: the next consent is an ordinary authorization.
    assert selectors.change_consent_terms(company=cast.company_a) is None


def test_a_first_consent_is_an_ordinary_authorization(cast, certificate_bundle, bot) -> None:  # type: ignore[no-untyped-def]
    assert selectors.change_consent_terms(company=cast.company_a) is None
    terms = selectors.consent_terms(company=cast.company_a, retention_days=30)
    certificate = stored_certificate(cast, certificate_bundle)
    job = services.change_consent_give(company=cast.company_a, certificate=certificate, user=cast.client_a,
                                       terms_version=terms.version)
    assert job.kind == JobKind.AUTHORIZE and job.old_user_rut == ""


def test_partial_replacement_failure_is_clear_true_and_completed_by_a_rerun(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 0
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)
    authorized(cast.company_a)
    stored_certificate(cast, certificate_bundle)
    (job,) = services.representative_replace(
        tenant=cast.tenant_a, old=old, new_rut=NEW_RUT, new_name=NEW_NAME, actor=cast.owner_a).jobs
    bot.failure = errors.SiiUnavailable("HTTP 500 on delete", step="delete")
    failed = run(job, django_capture_on_commit_callbacks)
    assert failed.status == JobStatus.FAILED and failed.failure_code == "replacement_incomplete"
    assert failed.failure_retryable
    assert "YA QUEDÓ AUTORIZADO" in failed.failure_message and NEW_NAME in failed.failure_message
    assert f"no pudimos quitar a {OLD_NAME}" in failed.failure_message and "sigue autorizado" in failed.failure_message
    cast.company_a.refresh_from_db()
    assert cast.company_a.sii_user_rut == NEW_RUT  # what the SII holds for the firm's current representative
    assert cast.company_a.stage == CompanyStage.FAILED
    assert Certificate.objects.get(pk=job.certificate_id).is_usable  # kept for the re-run

    # A fresh consent (instead of a re-run) would finish the removal too.
    terms = selectors.change_consent_terms(company=cast.company_a)
    assert terms.kind == JobKind.REPLACE and terms.remove_rut == "13.322.924-8"

    again = services.enrollment_job_rerun(job=failed, actor=cast.owner_a)
    assert (again.kind, again.user_rut, again.old_user_rut, again.rerun_of_id) == (
        JobKind.REPLACE, NEW_RUT, OLD_RUT, failed.pk)
    done = run(again, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED
    assert done.result["add_outcome"] == "already_authorized" and done.result["remove_outcome"] == "revoked"
    cast.company_a.refresh_from_db()
    assert (cast.company_a.sii_user_rut, cast.company_a.stage) == (NEW_RUT, CompanyStage.AUTHORIZED)


def test_a_retryable_partial_failure_is_retried_automatically(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 2
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)
    authorized(cast.company_a)
    stored_certificate(cast, certificate_bundle)
    (job,) = services.representative_replace(
        tenant=cast.tenant_a, old=old, new_rut=NEW_RUT, new_name=NEW_NAME, actor=cast.owner_a).jobs
    bot.failure = errors.SiiUnavailable("HTTP 500 on delete", step="delete")
    queued = run(job, django_capture_on_commit_callbacks)
    assert queued.status == JobStatus.QUEUED and queued.retry_count == 1
    cast.company_a.refresh_from_db()
    assert cast.company_a.sii_user_rut == NEW_RUT


def test_replacing_with_the_same_person_or_another_tenants_is_refused(cast) -> None:  # type: ignore[no-untyped-def]
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)
    foreign = Representative.objects.get(tenant=cast.tenant_b)
    with pytest.raises(services.ServiceError) as same:
        services.representative_replace(tenant=cast.tenant_a, old=old, new=old, actor=cast.owner_a)
    assert same.value.code == "same_representative"
    with pytest.raises(services.ServiceError):
        services.representative_replace(tenant=cast.tenant_a, old=old, new=foreign, actor=cast.owner_a)
    with pytest.raises(services.ServiceError):
        services.representative_replace(tenant=cast.tenant_b, old=old, new=foreign, actor=cast.owner_a)
    old.refresh_from_db()
    assert old.is_active


# --- Permission changes ------------------------------------------------------------------------


def test_permission_change_updates_or_emails_the_affected_clients(
    cast, certificate_bundle, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    stored_certificate(cast, certificate_bundle)
    no_cert = authorized(second_company(cast))
    in_sync = authorized(second_company(cast, rut="77.879.240-0", email="x@y.cl"), registry=False)
    cast.tenant_a.grant_registry = False
    cast.tenant_a.save()
    affected = list(selectors.companies_with_stale_permissions(tenant=cast.tenant_a))
    assert set(affected) == {cast.company_a, no_cert} and in_sync not in affected

    with django_capture_on_commit_callbacks(execute=True):
        report = services.permissions_sync(tenant=cast.tenant_a, actor=cast.owner_a)
    (job,) = report.jobs
    assert job.kind == JobKind.AUTHORIZE and job.company_id == cast.company_a.pk
    assert job.permissions == {"admin", "sign"}
    assert report.emailed == [no_cert] and "Actualizar los permisos" in mail.outbox[0].body
    assert AuditEntry.objects.filter(action=AuditAction.SETTINGS, summary__startswith="Actualización de permisos").exists()
    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED and done.outcome == "updated"
    cast.company_a.refresh_from_db()
    assert (cast.company_a.sii_admin, cast.company_a.sii_sign, cast.company_a.sii_registry) == (True, True, False)
    assert cast.company_a not in selectors.companies_with_stale_permissions(tenant=cast.tenant_a)


def test_step_flows_per_kind() -> None:
    assert [v for v, _ in selectors.job_step_flow(kind=JobKind.AUTHORIZE)][-1] == "logout"
    revoke = [v for v, _ in selectors.job_step_flow(kind=JobKind.REVOKE)]
    assert "delete" in revoke and "save" not in revoke
    replace = [v for v, _ in selectors.job_step_flow(kind=JobKind.REPLACE)]
    assert replace.index("save") < replace.index("delete")
