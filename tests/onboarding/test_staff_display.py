"""What a walk-through of the demo found (issue #19), and its fixes: a removal never reads
"Autorizado" to the firm; the dashboard says why a failed client cannot be retried and lets an admin
ask for a new certificate; an admin can run a waiting automatic retry now (within the SII's limits);
Spanish names instead of machine codes; one failure said once; the same step truth for client and
firm; per-kind attempt labels; dotted RUTs everywhere; one greeting; no client footer on firm pages."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from onboarding import services
from onboarding.domain import display
from onboarding.models import (
    AuditAction,
    AuditEntry,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobEvent,
    JobKind,
    JobStatus,
)
from tests.onboarding.staff_factories import certificate_make, job_make, staff_url

pytestmark = pytest.mark.django_db


def words(response) -> str:  # type: ignore[no-untyped-def]
    """The page's words as people read them: tags become spaces, whitespace collapses."""
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(response.content.decode())).split())


def job_url(job: EnrollmentJob) -> str:
    return staff_url("job_detail", job_id=job.pk)


# --- Defect 1: a removal reads as a removal, everywhere --------------------------------------------


@pytest.fixture
def fake_sii(monkeypatch):  # type: ignore[no-untyped-def]
    """sii_bot.revoke stand-in: logs in, then succeeds or raises `failure`."""
    import sii_bot

    class Fake:
        failure: BaseException | None = None

        def revoke(self, request, certificate, settings=None, on_progress=None):  # type: ignore[no-untyped-def]
            on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="started", message=""))
            if self.failure is not None:
                raise self.failure
            on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="done", message=""))
            return sii_bot.RevocationResult(outcome="revoked", company_rut=request.company_rut,
                                            user_rut=request.user_rut, final_entries={request.user_rut: None})

    fake = Fake()
    monkeypatch.setattr(sii_bot, "revoke", fake.revoke)
    return fake


def _removal(cast, certificate_bundle, fake_sii, django_capture_on_commit_callbacks, *, failure=None):  # type: ignore[no-untyped-def]
    """An authorization that succeeded (attempt 1), then "Terminar la relación" run by the worker."""
    first = job_make(cast.company_a, status=JobStatus.SUCCEEDED, result={"user_rut": "13322924-8"})
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        sii_user_rut="13322924-8", sii_admin=True, sii_sign=True, sii_registry=True, stage=CompanyStage.AUTHORIZED
    )
    cast.company_a.refresh_from_db()
    cast.tenant_a.notification_emails = "avisos@pyme.cl"
    cast.tenant_a.save()
    certificate_make(cast.company_a, certificate_bundle)
    fake_sii.failure = failure
    with django_capture_on_commit_callbacks(execute=True):
        job = services.company_relationship_end(company=cast.company_a, actor=cast.admin_a)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        job = services.enrollment_job_execute(job_id=str(job.pk))
    return first, job


def test_a_finished_removal_reads_retirado_on_every_staff_screen(  # type: ignore[no-untyped-def]
    client, cast, certificate_bundle, fake_sii, django_capture_on_commit_callbacks, enqueued
) -> None:
    _, job = _removal(cast, certificate_bundle, fake_sii, django_capture_on_commit_callbacks)
    assert (job.kind, job.status, job.attempt) == (JobKind.REVOKE, JobStatus.SUCCEEDED, 2)
    client.force_login(cast.owner_a)
    page = client.get(job_url(job))
    body = page.content.decode()
    # The status, and the attempts table: "Retirado", never the model's "Autorizado" for this job.
    assert 'Estado: <span class="badge tone-ok">Retirado</span>' in body
    assert re.search(r"Retiro, intento 1 \(este\).*?<span class=\"badge tone-ok\">Retirado</span>", body, re.DOTALL)
    assert re.search(r"Autorización, intento 1</a>.*?<span class=\"badge tone-ok\">Autorizado</span>", body, re.DOTALL)
    assert "Intento 2" not in words(page)  # attempts are counted per kind for people
    # The CSV's attempt columns.
    export = b"".join(client.get(staff_url("dashboard_export")).streaming_content).decode("utf-8-sig")
    row = next(csv.reader(io.StringIO(export.splitlines()[1]), delimiter=";"))
    assert row[7:9] == ["Retiro, intento 1", "Retirado"]
    # The audit log: the finished removal is a green "Retiro terminado".
    audit = client.get(staff_url("audit")).content.decode()
    assert '<span class="badge tone-ok">Retiro terminado</span>' in audit


def test_a_failed_removal_is_named_in_spanish_to_the_firm_by_mail_and_in_the_audit(  # type: ignore[no-untyped-def]
    client, cast, certificate_bundle, fake_sii, django_capture_on_commit_callbacks, enqueued
) -> None:
    from sii_bot import errors

    _, job = _removal(
        cast, certificate_bundle, fake_sii, django_capture_on_commit_callbacks,
        failure=errors.HolderNotAdministrator("not admin", step="login"),
    )
    assert job.status == JobStatus.FAILED
    (firm_mail,) = [message for message in mail.outbox if message.to == ["avisos@pyme.cl"]]
    assert "Motivo: El titular del certificado no administra la empresa." in firm_mail.body
    assert "holder_not_administrator" not in firm_mail.body
    client.force_login(cast.owner_a)
    audit = client.get(staff_url("audit"))
    body = audit.content.decode()
    # Red, named as a removal, the failure in Spanish (details included), no machine code anywhere.
    assert '<span class="badge tone-bad">Retiro con error</span>' in body
    assert "Falló el retiro en Comercial Demo SpA: El titular del certificado no administra la empresa" in words(audit)
    assert "holder_not_administrator" not in body


def test_job_status_badge_never_says_autorizado_for_other_kinds() -> None:
    for kind, label in ((JobKind.AUTHORIZE, "Autorizado"), (JobKind.REVOKE, "Retirado"), (JobKind.REPLACE, "Reemplazado")):
        assert display.job_status_badge(kind=kind, status=JobStatus.SUCCEEDED) == display.Badge(label, "ok")
    assert display.job_status_badge(kind=JobKind.AUTHORIZE, status=JobStatus.SUCCEEDED, outcome="updated").label == "Permisos actualizados"
    assert display.job_status_badge(kind=JobKind.REVOKE, status=JobStatus.QUEUED, retrying=True) == display.Badge("Reintento programado", "wait")
    assert display.job_status_badge(kind=JobKind.REVOKE, status=JobStatus.FAILED) == display.Badge("Con error", "bad")


def test_every_failure_code_has_a_spanish_name() -> None:
    from sii_bot.errors import FAILURE_CODES

    for code in FAILURE_CODES:
        assert display.FAILURE_LABELS[code] and "_" not in display.FAILURE_LABELS[code]
    assert display.failure_label("") == ""
    assert display.failure_label("nunca-visto") == "Error no clasificado"


# --- Defect 2: a failed client without certificate -------------------------------------------------


@pytest.fixture
def certificate_gone(cast, certificate_bundle):  # type: ignore[no-untyped-def]
    """company_a failed with the SII's rejection of its certificate, which was then destroyed."""
    certificate = certificate_make(cast.company_a, certificate_bundle)
    job = job_make(cast.company_a, status=JobStatus.FAILED, certificate=certificate, failure_code="certificate_rejected",
                   failure_message="El SII rechazó el certificado digital.")
    services.certificate_destroy(certificate=certificate, reason="sii_rejected")
    return job


def test_the_dashboard_says_why_a_failed_client_cannot_be_retried(client, cast, certificate_gone) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    response = client.get(staff_url("dashboard"))
    body = response.content.decode()
    row = re.search(rf'<tr id="company-{cast.company_a.pk}"[^>]*>.*?</tr>', body, re.DOTALL).group(0)
    assert "data-rerun-blocked" in row and "rerun-pick" not in row
    assert "Sin certificado: el cliente debe subir uno nuevo" in row
    assert "Pedir nuevo certificado" in row
    assert staff_url("company_certificate_request", company_id=cast.company_a.pk) in row
    # The counter says "1 Con error"; the hint agrees instead of "no hay clientes con error".
    assert '<span class="muted small" id="selected-count" aria-live="polite">1 cliente con error no se puede reintentar: falta su certificado.</span>' in body
    assert "No hay clientes con error en esta página" not in body
    # The job's page says it too, with the same button.
    page = client.get(job_url(certificate_gone))
    assert "Sin certificado: el cliente debe subir uno nuevo" in words(page) and "Pedir nuevo certificado" in words(page)
    # Staff (no re-run role) read why, without the button.
    client.force_login(cast.staff_a)
    assert "Pedir nuevo certificado" not in client.get(staff_url("dashboard")).content.decode()


def test_asking_for_a_new_certificate_emails_the_client_once_per_period(  # type: ignore[no-untyped-def]
    client, cast, certificate_gone, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    url = staff_url("company_certificate_request", company_id=cast.company_a.pk)
    client.force_login(cast.staff_a)
    assert client.post(url).status_code == 404  # admins and owners only
    client.force_login(cast.admin_a)
    assert client.get(url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"trabajo": str(certificate_gone.pk)})
    assert response.status_code == 302 and response["Location"] == job_url(certificate_gone)
    (message,) = mail.outbox
    assert message.to == ["cliente@empresa.cl"] and message.subject == "Se necesita un nuevo certificado digital: Comercial Demo SpA"
    assert message.body.startswith("Hola María:\n")
    assert "Comercial Demo SpA (RUT 76.086.428-5)" in message.body
    assert reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk}) in message.body
    entry = AuditEntry.objects.get(tenant=cast.tenant_a, action=AuditAction.INVITATION)
    assert entry.actor == cast.admin_a and entry.details[display.CERTIFICATE_REQUEST_MARKER] is True
    # A second click is refused with when it may be asked again; nothing is sent.
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(url, follow=True)
    assert "Ya le pedimos un nuevo certificado a este cliente" in words(again) and "puede volver a pedirlo desde" in words(again)
    assert len(mail.outbox) == 1 and AuditEntry.objects.filter(action=AuditAction.INVITATION).count() == 1
    # After the period it may be asked again.
    later = timezone.now() + timedelta(hours=services.CERTIFICATE_REQUEST_EVERY_HOURS, minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with django_capture_on_commit_callbacks(execute=True):
        services.company_certificate_request(company=cast.company_a, actor=cast.admin_a)
    monkeypatch.undo()
    assert len(mail.outbox) == 2
    # The audit log names it in Spanish.
    client.force_login(cast.owner_a)
    assert "Pedido de certificado" in client.get(staff_url("audit")).content.decode()


def test_asking_another_firms_client_for_a_certificate_is_404(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_b)
    assert client.post(staff_url("company_certificate_request", company_id=cast.company_a.pk)).status_code == 404
    client.force_login(cast.admin_a)
    other = reverse("staff:company_certificate_request", kwargs={"tenant_slug": "pyme", "company_id": cast.company_b.pk})
    assert client.post(other).status_code == 404
    assert not mail.outbox


# --- Defect 4: "Reintentar ahora" ----------------------------------------------------------------


def _waiting_retry(cast, certificate_bundle, *, code: str = "sii_unavailable", failed_ago: timedelta = timedelta(minutes=1),
                   wait: timedelta = timedelta(minutes=29)) -> EnrollmentJob:
    """A job queued again after a transient failure, its automatic retry `wait` from now."""
    job = job_make(cast.company_a, status=JobStatus.QUEUED, certificate=certificate_make(cast.company_a, certificate_bundle))
    sentence = "El sitio del SII no está disponible en este momento. Reintentaremos automáticamente en unos minutos."
    EnrollmentJob.objects.filter(pk=job.pk).update(
        retry_count=1, run_after=timezone.now() + wait, failure_code=code, failure_message=sentence,
        failure_retryable=True, worker="web-1 pid=12345 start=678 ns=4026531836 boot=0b1c",
    )
    JobEvent.objects.create(tenant=cast.tenant_a, job=job, step="retry", status="info",
                            message=f"{sentence} (Reintento 1 de 3, en unos 30 min.)", created_at=timezone.now() - failed_ago)
    job.refresh_from_db()
    return job


def test_an_admin_runs_a_waiting_retry_now(client, cast, certificate_bundle, enqueued, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    job = _waiting_retry(cast, certificate_bundle)
    url = staff_url("job_retry_now", job_id=job.pk)
    client.force_login(cast.staff_a)
    assert "Reintentar ahora" not in client.get(job_url(job)).content.decode()
    assert client.post(url).status_code == 404
    client.force_login(cast.admin_a)
    page = client.get(job_url(job)).content.decode()
    assert f'action="{url}"' in page and "Reintentar ahora" in page
    assert f'action="{url}"' in client.get(staff_url("dashboard")).content.decode()  # the row has it too
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, follow=True)
    assert "Reintentando ahora la autorización de Comercial Demo SpA." in words(response)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.run_after <= timezone.now() and job.enqueued_at is not None
    enqueued.assert_called_once_with(str(job.pk))  # sent as the dispatcher sends due jobs
    entry = AuditEntry.objects.get(tenant=cast.tenant_a, action=AuditAction.RERUN)
    assert entry.actor == cast.admin_a and entry.details["retry_now"] is True
    assert entry.summary == "Reintento inmediato de Autorización, intento 1 de Comercial Demo SpA"
    # Not waiting any more: refused, nothing sent again.
    again = client.post(url, follow=True)
    assert "no está esperando un reintento automático" in words(again)
    assert enqueued.call_count == 1


def test_retry_now_respects_the_sii_minimum_wait(client, cast, certificate_bundle, enqueued, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    job = _waiting_retry(cast, certificate_bundle, code="too_many_sessions", failed_ago=timedelta(minutes=10))
    client.force_login(cast.admin_a)
    earliest = timezone.localtime(EnrollmentJob.objects.get(pk=job.pk).events.get(step="retry").created_at + timedelta(hours=1))
    page = words(client.get(job_url(job)))
    assert "Reintentar ahora" not in page and f"Se puede reintentar desde las {earliest:%H:%M}" in page
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(staff_url("job_retry_now", job_id=job.pk), follow=True)
    assert "El SII exige esperar" in words(refused) and f"desde las {earliest:%H:%M}" in words(refused)
    assert EnrollmentJob.objects.get(pk=job.pk).run_after == job.run_after and not enqueued.called
    # An hour after the failure the SII allows it.
    JobEvent.objects.filter(job=job, step="retry").update(created_at=timezone.now() - timedelta(minutes=61))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(staff_url("job_retry_now", job_id=job.pk))
    enqueued.assert_called_once_with(str(job.pk))


# --- Rough edges ----------------------------------------------------------------------------------


def test_the_job_page_says_the_failure_once_by_name_with_the_code_as_a_reference(client, cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    job = _waiting_retry(cast, certificate_bundle, code="waf_rejected")
    JobEvent.objects.create(tenant=cast.tenant_a, job=job, step="retry", status="info",
                            message=f"{job.failure_message} (Reintento 2 de 3, en unos 30 min.)")
    client.force_login(cast.staff_a)
    page = client.get(job_url(job))
    text, body = words(page), page.content.decode()
    assert text.count(job.failure_message) == 1
    assert "Reintento 1 de 3, en unos 30 min." in text and "Reintento 2 de 3, en unos 30 min." in text
    assert "El SII rechazó la conexión por seguridad." in text
    assert body.count("waf_rejected") == 1 and '<p class="code-ref">código: <code>waf_rejected</code>' in body
    # The worker's identity is internal: not on the page.
    assert "pid=" not in body and "Proceso" not in text
    assert 'Estado: <span class="badge tone-wait">Reintento programado</span>' in body


def test_an_old_failed_attempt_points_to_the_later_one_that_succeeded(client, cast) -> None:  # type: ignore[no-untyped-def]
    first = job_make(cast.company_a, status=JobStatus.FAILED)
    second = job_make(cast.company_a, status=JobStatus.SUCCEEDED, rerun_of=first, result={"user_rut": "13322924-8"})
    client.force_login(cast.staff_a)
    page = client.get(job_url(first))
    assert "Un intento posterior terminó bien: Autorización, intento 2" in words(page)
    assert f'href="{job_url(second)}"' in page.content.decode()
    assert "Un intento posterior" not in words(client.get(job_url(second)))


def test_the_audit_badge_follows_the_outcome_and_ruts_are_dotted(client, cast) -> None:  # type: ignore[no-untyped-def]
    job = job_make(cast.company_a, status=JobStatus.FAILED, failure_code="waf_rejected")
    services.audit_record(tenant=cast.tenant_a, actor=None, action=AuditAction.JOB_FINISHED, company=cast.company_a,
                          summary="Falló la autorización en Comercial Demo SpA: waf_rejected",
                          details={"job": str(job.pk), "failure_code": "waf_rejected"})
    services.audit_record(tenant=cast.tenant_a, actor=None, action=AuditAction.SETTINGS,
                          summary="Representante Alex (13322924-8) desactivado", details={"rut": "13322924-8"})
    services.representative_create(tenant=cast.tenant_a, rut="11111111-1", name="Uno", actor=cast.owner_a)
    client.force_login(cast.owner_a)
    audit = client.get(staff_url("audit"))
    body, text = audit.content.decode(), words(audit)
    assert '<span class="badge tone-bad">Autorización con error</span>' in body
    assert "Falló la autorización en Comercial Demo SpA: El SII rechazó la conexión por seguridad" in text
    assert "Código de error El SII rechazó la conexión por seguridad" in text and "waf_rejected" not in body
    assert "Representante Alex (13.322.924-8) desactivado" in text and "13322924-8" not in body
    assert "Representante UNO (11.111.111-1)" in text
    assert "Re-ejecución" not in body and ">Reintento<" in body  # the filter's choices


def test_firm_pages_do_not_carry_the_clients_footer(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    assert "Autoriza usa su certificado digital una sola vez" not in client.get(staff_url("dashboard")).content.decode()
    client.force_login(cast.client_a)
    company = reverse("client:company", kwargs={"company_id": cast.company_a.pk})
    assert "Autoriza usa su certificado digital una sola vez" in client.get(company).content.decode()


def test_a_rut_never_breaks_across_lines(client, cast) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from django.contrib.staticfiles import finders

    css = Path(finders.find("css/autoriza.css")).read_text(encoding="utf-8")
    assert ".rut { white-space:nowrap; }" in css
    assert re.search(r"\.wizard-steps li \{[^}]*white-space:nowrap", css)
    job = job_make(cast.company_a, status=JobStatus.FAILED)
    client.force_login(cast.staff_a)
    assert 'RUT <span class="rut">76.086.428-5</span>' in client.get(job_url(job)).content.decode()
    client.force_login(cast.client_a)
    company = client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})).content.decode()
    assert 'RUT <span class="rut">76.086.428-5</span>' in company


def test_no_screen_says_re_ejecutar() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for folder, pattern in (("templates", "**/*.html"), ("static", "**/*.js"), ("onboarding", "**/*.py")):
        for path in (root / folder).glob(pattern):
            if "migrations" in path.parts:
                continue
            assert not re.search(r"[Rr]e-ejecu", path.read_text(encoding="utf-8")), path


def test_the_password_similarity_message_names_fields_the_form_has(client, cast) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    probe = type(cast.client_a)(username="mariasoto@empresa.cl", email="mariasoto@empresa.cl", first_name="María Soto")
    with pytest.raises(ValidationError) as refused:
        validate_password("mariasoto@empresa", user=probe)
    assert "La contraseña se parece demasiado a su correo o nombre." in refused.value.messages
    assert not any("nombre de usuario" in message for message in refused.value.messages)


def test_a_refused_upload_says_the_file_must_be_chosen_again(client, cast) -> None:  # type: ignore[no-untyped-def]
    from tests.onboarding.test_client_wizard import make_pfx, upload

    client.force_login(cast.client_a)
    fresh = client.get(reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk}))
    assert "Vuelva a elegir el archivo" not in words(fresh)
    refused = upload(client, cast.company_a, make_pfx(), password="otra-clave")
    body = words(refused)
    assert "Vuelva a elegir el archivo del certificado: por seguridad, el navegador no lo conserva después de un error." in body


def test_message_once_strips_what_was_already_said() -> None:
    shown = {"El SII no responde."}
    assert display.message_once("El SII no responde. (Reintento 1 de 3, en unos 2 min.)", shown) == "Reintento 1 de 3, en unos 2 min."
    assert display.message_once("El SII no responde.", shown) == ""
    assert display.message_once("Otra cosa. (Reintento 2 de 3, en unos 4 min.)", shown) == "Otra cosa. (Reintento 2 de 3, en unos 4 min.)"
    assert display.message_once("Otra cosa. (Reintento 3 de 3, en unos 8 min.)", shown) == "Reintento 3 de 3, en unos 8 min."
    assert display.greeting("José Peña") == "Hola José:" and display.greeting("") == "Hola:"
    assert display.ruts_in_text_display("Empresa (76086428-5) y 1234-5678") == "Empresa (76.086.428-5) y 1234-5678"


def test_a_failure_whose_sentence_starts_with_its_name_is_said_once(client, cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    """"El SII rechazó el certificado. El SII rechazó el certificado digital. Verifique…" said it twice."""
    sentence = "El SII rechazó el certificado digital. Verifique que esté vigente."
    job = job_make(cast.company_a, status=JobStatus.FAILED, failure_code="certificate_rejected", failure_message=sentence)
    client.force_login(cast.admin_a)
    row = re.search(rf'<tr id="company-{cast.company_a.pk}"[^>]*>.*?</tr>', client.get(staff_url("dashboard")).content.decode(),
                    re.DOTALL).group(0)
    assert " ".join(re.sub(r"<[^>]+>", " ", html.unescape(row)).split()).count("El SII rechazó el certificado") == 1
    live = re.search(r'<div class="failure-box".*?</p>', client.get(job_url(job)).content.decode(), re.DOTALL).group(0)
    assert " ".join(re.sub(r"<[^>]+>", " ", html.unescape(live)).split()) == f"Falló: {sentence}"
    # A name the sentence does not begin with still leads it; e-mails use the same rule.
    assert display.failure_reason("certificate_rejected", sentence) == sentence
    assert display.failure_reason("waf_rejected", "Reintentaremos.") == "El SII rechazó la conexión por seguridad. Reintentaremos."
    assert display.failure_reason("", "") == "sin clasificar"


def test_while_a_retry_waits_the_step_cut_short_reads_failed_to_the_firm_as_to_the_client(  # type: ignore[no-untyped-def]
    client, cast, certificate_bundle
) -> None:
    job = _waiting_retry(cast, certificate_bundle, failed_ago=timedelta(seconds=5))
    JobEvent.objects.create(tenant=cast.tenant_a, job=job, step="login", status="started",
                            created_at=timezone.now() - timedelta(seconds=20))
    client.force_login(cast.staff_a)
    staff = client.get(job_url(job)).content.decode()
    step = re.search(r'<li class="(\w+)">\s*<div class="tl-head">\s*<span class="tl-step">Identificarse con el certificado digital</span>'
                     r'\s*<span class="tl-status small">([^<]*)</span>', staff)
    assert step is not None and step.groups() == ("failed", "Con error")
    assert "En curso" not in words(client.get(job_url(job)))
    client.force_login(cast.client_a)
    mine = words(client.get(reverse("client:job", kwargs={"job_id": job.pk})))
    assert "En curso" not in mine and "Con error" in mine


def test_a_name_ending_a_sentence_gets_one_period(client, cast, certificate_bundle, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    """"…un nuevo certificado para Ferretería Ltda.." and "registramos Invitada Ltda.. Ahora…"."""
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(legal_name="Comercial Demo Ltda.")
    certificate = certificate_make(cast.company_a, certificate_bundle)
    job_make(cast.company_a, status=JobStatus.FAILED, certificate=certificate, failure_code="certificate_rejected")
    services.certificate_destroy(certificate=certificate, reason="sii_rejected")
    client.force_login(cast.admin_a)
    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(staff_url("company_certificate_request", company_id=cast.company_a.pk), follow=True)
    assert "un nuevo certificado para Comercial Demo Ltda." in words(asked) and "Ltda.." not in words(asked)
    client.logout()
    signup = client.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}), {
        "email": "nueva@empresa.cl", "password": "Clave-Segura-De-Prueba-2026", "company_rut": "96.874.030-K",
        "legal_name": "Invitada Ltda.", "owner_name": "Jorge Invitado",
    }, follow=True)
    assert "Listo: registramos Invitada Ltda. Ahora suba su certificado digital." in words(signup)
    assert display.sentence_end("Ferretería Ltda.") == "Ferretería Ltda." and display.sentence_end("Demo SpA") == "Demo SpA."


def test_after_holder_not_administrator_the_same_certificate_is_not_offered_again(  # type: ignore[no-untyped-def]
    client, cast, certificate_bundle, enqueued, monkeypatch
) -> None:
    import sii_bot
    from sii_bot import errors

    def enroll(request, certificate, settings=None, on_progress=None):  # type: ignore[no-untyped-def]
        raise errors.HolderNotAdministrator("not admin", step="login")

    monkeypatch.setattr(sii_bot, "enroll", enroll)
    certificate = certificate_make(cast.company_a, certificate_bundle)
    job = services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert (done.status, done.failure_code) == (JobStatus.FAILED, "holder_not_administrator")
    client.force_login(cast.client_a)
    for page in (reverse("client:company", kwargs={"company_id": cast.company_a.pk}),
                 reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk}),
                 reverse("client:job", kwargs={"job_id": done.pk})):
        assert "Continuar con este certificado" not in words(client.get(page)), page


def test_a_name_ending_a_sentence_on_a_page_gets_one_period(client, cast) -> None:  # type: ignore[no-untyped-def]
    invitation = services.invitation_create(tenant=cast.tenant_a, rut="96.874.030-K", legal_name="Invitada Ltda.",
                                            contact_name="Jorge", email="invitada@empresa.cl", actor=cast.admin_a)
    url = reverse("client:signup", kwargs={"tenant_slug": "pyme"}) + f"?invitacion={services.invitation_token(invitation=invitation)}"
    assert "Invitación de PyME Contadores para Invitada Ltda. Revise sus datos" in words(client.get(url))
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(legal_name="Comercial Demo Ltda.")
    job_make(cast.company_a, status=JobStatus.SUCCEEDED, result={"user_rut": "13322924-8"})
    EnrollmentJob.objects.filter(company=cast.company_a).update(kind=JobKind.REPLACE, old_user_rut="12531909-2",
                                                                old_user_name="BEA RIVAS")
    client.force_login(cast.staff_a)
    page = words(client.get(job_url(EnrollmentJob.objects.get(company=cast.company_a))))
    assert "en Comercial Demo Ltda." in page and "Ltda.." not in page


def test_once_asked_the_row_and_the_job_page_say_when_instead_of_offering_it_again(  # type: ignore[no-untyped-def]
    client, cast, certificate_gone, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    client.force_login(cast.admin_a)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(staff_url("company_certificate_request", company_id=cast.company_a.pk))
    asked = timezone.localtime(AuditEntry.objects.get(action=AuditAction.INVITATION).created_at)

    def row() -> str:
        body = client.get(staff_url("dashboard")).content.decode()
        found = re.search(rf'<tr id="company-{cast.company_a.pk}"[^>]*>.*?</tr>', body, re.DOTALL).group(0)
        return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(found)).split())

    assert f"Nuevo certificado pedido a las {asked:%H:%M}" in row() and "Pedir nuevo certificado" not in row()
    page = words(client.get(job_url(certificate_gone)))
    assert "Nuevo certificado pedido el" in page and "Pedir nuevo certificado" not in page
    # Once it may be asked again, the button is back.
    monkeypatch.setattr(services, "CERTIFICATE_REQUEST_EVERY_HOURS", 0)  # (the audit log cannot be back-dated)
    assert "Pedir nuevo certificado" in row() and "Nuevo certificado pedido" not in row()
    assert "Pedir nuevo certificado" in words(client.get(job_url(certificate_gone)))
