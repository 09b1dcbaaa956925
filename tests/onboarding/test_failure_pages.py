"""Each SII case as people read it: the typed outcome and its Spanish message on the client's job
page and on the staff job page, rendered for every failure code of the SII readiness work (each
certificate-login refusal, the session limit and throttling, outage, expiry), an edit that saved
("updated") and a page that offered none of the requested attributes.

The job is run by the real services with `sii_bot.enroll` scripted to answer each case (the bot's
own reading of those SII pages is tested in tests/sii_bot/test_bot_auth_errors.py and the sandbox
suites)."""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import escape

import sii_bot
from onboarding import services
from onboarding.domain.display import failure_label
from onboarding.models import EnrollmentJob, JobStatus
from sii_bot import errors

pytestmark = pytest.mark.django_db

NEEDS_PERSON = [
    errors.CertificateLoginDisabled,  # …33
    errors.CertificateNotRead,  # …34, twice
    errors.CertificateRevoked,  # …35
    errors.CertificateExpired,  # …36
    errors.CertificateIssuerNotAccepted,  # …37
    errors.CertificateInvalid,  # …38, twice
    errors.LegalRepresentativeMismatch,  # …41
    errors.AuthenticationLocked,  # …9 / …19 / …49 / …55
    errors.PermissionsUnavailable,  # none of the requested attributes offered
]
RETRIED = [
    errors.TooManySessions,  # …27
    errors.LoginThrottled,
    errors.SiiOutage,  # /ayudas/900.html
    errors.SiiUnavailable,
    errors.SessionExpired,  # …28 / …29, after the bot's own new login
    errors.WafRejected,
]
CLIENT_NEEDS_PERSON = "Necesita la acción de una persona"
STAFF_NEEDS_PERSON = "Requiere acción de una persona"


class Bot:
    def __init__(self) -> None:
        self.outcome: Any = None

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.fixture
def bot(monkeypatch):  # type: ignore[no-untyped-def]
    fake = Bot()
    monkeypatch.setattr(sii_bot, "enroll", fake)
    return fake


@pytest.fixture
def job(cast, certificate_bundle, enqueued, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    with django_capture_on_commit_callbacks(execute=True):
        return services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)


def pages(client: Any, cast: Any, job: EnrollmentJob) -> tuple[str, str]:
    """(the client's job page, the staff job page) as their readers get them."""
    client.force_login(cast.client_a)
    mine = client.get(reverse("client:job", kwargs={"job_id": job.pk}))
    client.force_login(cast.staff_a)
    staff = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": cast.tenant_a.slug, "job_id": job.pk}))
    assert mine.status_code == 200 and staff.status_code == 200
    return mine.content.decode(), staff.content.decode()


@pytest.mark.parametrize("failure", NEEDS_PERSON, ids=lambda f: f.code)
def test_failures_only_a_person_can_fix_read_the_same_on_both_pages(client, cast, job, bot, failure) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = failure("SII said so", sii_text="01.01.190.500.720.xx")
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == failure.code
    mine, staff = pages(client, cast, done)
    message = escape(failure.user_message)
    assert message in mine and message in staff
    assert CLIENT_NEEDS_PERSON in mine and STAFF_NEEDS_PERSON in staff
    assert escape(failure_label(failure.code)) in staff  # the typed outcome, in Spanish
    assert f"<code>{failure.code}</code>" in staff and failure.code not in mine  # codes are for staff only
    assert "SII said so" in staff and "SII said so" not in mine  # the English detail too


def test_the_certificate_login_advice_says_how_to_enable_it_step_by_step(client, cast, job, bot) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.CertificateLoginDisabled("…33")
    mine, _ = pages(client, cast, services.enrollment_job_execute(job_id=str(job.pk)))
    for fragment in ("1) ingrese a sii.cl", "Cambiar clave y datos de Autenticación", "3) en la última sección"):
        assert escape(fragment) in mine


@pytest.mark.parametrize("failure", RETRIED, ids=lambda f: f.code)
def test_failures_the_system_retries_read_the_same_on_both_pages(client, cast, job, bot, failure) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = failure("transient")
    waiting = services.enrollment_job_execute(job_id=str(job.pk))
    assert waiting.status == JobStatus.QUEUED and waiting.retry_count == 1
    mine, staff = pages(client, cast, waiting)
    message = escape(failure.user_message)
    assert message in mine and message in staff
    assert "No necesita hacer nada" in mine and "Último error (se reintentará)" in staff
    assert CLIENT_NEEDS_PERSON not in mine and STAFF_NEEDS_PERSON not in staff


def test_an_unexpected_page_fails_without_saving_and_keeps_its_evidence(client, cast, job, bot) -> None:  # type: ignore[no-untyped-def]
    bot.outcome = errors.UnexpectedPage("no form1", page_html="<html>otra cosa</html>", step="company")
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.artifacts.filter(kind="page_html").exists()
    mine, staff = pages(client, cast, done)
    assert escape(errors.UnexpectedPage.user_message) in mine and escape(errors.UnexpectedPage.user_message) in staff
    assert "Página inesperada del SII" in staff


def test_an_edit_that_saved_reads_updated_on_both_pages(client, cast, job, bot) -> None:  # type: ignore[no-untyped-def]
    record = sii_bot.SiiUserRecord(
        company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut="13322924-8",
        user_name="ALEX BRITO MARDONES", admin=True, sign=True, registry=True, authorized_by="MARIA JOSE SOTO",
    )
    bot.outcome = sii_bot.EnrollmentResult(outcome="updated", record=record)
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.SUCCEEDED and done.outcome == "updated"
    mine, staff = pages(client, cast, done)
    assert "Permisos actualizados" in mine
    assert "MODIFICACION DE USUARIOS AUTORIZADOS" in staff and "Se ha modificado satisfactoriamente" in staff
