"""The company page and the live status page: every job state, polling only while unfinished,
304 on unchanged polls, a constant number of queries, and 404 for everyone but the owner."""
from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from onboarding import services
from onboarding.models import CompanyStage, EnrollmentJob, JobEvent, JobStatus
from sii_bot.certificates import CertificateBundle

POLL_TRIGGER = 'hx-trigger="every 2s"'
STEPS = ["open_page", "login", "company", "user_list", "new_user", "fill_form", "confirm", "save", "result", "logout"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def store_certificate(company, user):  # type: ignore[no-untyped-def]
    """A stored certificate without generating keys (the service seals whatever PEM it is given)."""
    now = datetime.now(dt_timezone.utc)
    bundle = CertificateBundle(
        holder_rut="13322924-8", holder_name="ALEX BRITO MARDONES", issuer="CA de Prueba",
        not_before=now - timedelta(days=10), not_after=now + timedelta(days=300),
        fingerprint_sha256=":".join(["AB"] * 32), serial_number="1",
        cert_pem=b"-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n",
        key_pem=b"-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n",
    )
    return services.certificate_store(company=company, bundle=bundle, uploaded_by=user)


@pytest.fixture
def job(cast):  # type: ignore[no-untyped-def]
    certificate = store_certificate(cast.company_a, cast.client_a)
    return services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)


def event(job, step: str, status: str, message: str = "") -> JobEvent:  # type: ignore[no-untyped-def]
    return JobEvent.objects.create(tenant_id=job.tenant_id, job=job, step=step, status=status, message=message)


def run(job) -> EnrollmentJob:  # type: ignore[no-untyped-def]
    claimed = services.enrollment_job_claim(job_id=str(job.pk), worker="test")
    assert claimed is not None
    return claimed


def succeed(job, outcome: str = "created") -> None:  # type: ignore[no-untyped-def]
    for step in STEPS:
        event(job, step, "started")
        event(job, step, "done")
    EnrollmentJob.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now(), outcome=outcome,
        result={"company_name": "COMERCIAL DEMO SPA", "company_rut": "76086428-5", "user_rut": "13322924-8",
                "user_name": "ALEX BRITO MARDONES", "admin": True, "sign": True, "registry": False,
                "authorized_by": "13322924-8"},
    )


def fail(job, code: str, message: str, *, retryable: bool = False) -> None:  # type: ignore[no-untyped-def]
    event(job, "open_page", "started")
    event(job, "open_page", "done")
    event(job, "login", "started")
    event(job, "login", "failed", message)
    EnrollmentJob.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED, finished_at=timezone.now(), failure_code=code, failure_message=message,
        failure_retryable=retryable,
    )
    event(job, "finished", "failed", message)


def status_urls(job) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    return reverse("client:job", kwargs={"job_id": job.pk}), reverse("client:job_status", kwargs={"job_id": job.pk})


# --- States ---------------------------------------------------------------------------------------


def test_queued_job_polls_and_shows_every_step_pending(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    page_url, partial_url = status_urls(job)
    page = client.get(page_url)
    body = text(page)
    assert page.status_code == 200
    assert POLL_TRIGGER in body and f'hx-get="{partial_url}"' in body and 'hx-swap="outerHTML"' in body
    assert "En cola" in body and "Solicitud recibida; en cola para el SII." in body
    for label in ("Abrir Mantención de usuarios autorizados", "Identificarse con el certificado digital",
                  "Ingresar el RUT de la empresa", "Revisar los usuarios autorizados", "Ingresar Nuevo Usuario",
                  "Ingresar el RUT del usuario y sus permisos", "Revisar la confirmación", "Grabar Usuario",
                  "Leer el resultado", "Cerrar la sesión"):
        assert label in body
    assert body.count("Pendiente") == 10
    assert "ALEX BRITO MARDONES" in body and "Comercial Demo SpA" in body and "76.086.428-5" in body
    partial = client.get(partial_url)
    assert partial.status_code == 200 and POLL_TRIGGER in partial.content.decode()
    assert "<html" not in partial.content.decode()  # only the fragment


def test_running_job_shows_step_states(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    job = run(job)
    event(job, "open_page", "started")
    event(job, "open_page", "done")
    event(job, "login", "started")
    event(job, "login", "done")
    event(job, "company", "started")
    client.force_login(cast.client_a)
    response = client.get(status_urls(job)[1])
    body = text(response)
    assert POLL_TRIGGER in body
    assert body.count(">Listo") == 2
    assert "Paso 3 de 10: Ingresar el RUT de la empresa." in body
    assert 'aria-current="step"' in body and "En curso" in body
    assert "2 de 10 pasos listos" in body


def test_a_waiting_retry_shows_the_failed_run_and_when_it_retries(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    """While the automatic retry waits, the client sees the steps of the run that failed (as the firm
    does), not ten "Pendiente", and when the retry runs; the failure's sentence is said once."""
    job = run(job)
    event(job, "open_page", "started")
    event(job, "open_page", "done")
    event(job, "login", "started")
    sentence = "El sitio del SII no está disponible en este momento. Reintentaremos automáticamente en unos minutos."
    run_after = timezone.now() + timedelta(minutes=2)
    EnrollmentJob.objects.filter(pk=job.pk).update(
        status=JobStatus.QUEUED, retry_count=1, run_after=run_after,
        failure_code="sii_unavailable", failure_message=sentence,
    )
    event(job, "retry", "info", f"{sentence} (Reintento 1 de 3, en unos 2 min.)")
    client.force_login(cast.client_a)
    body = text(client.get(status_urls(job)[1]))
    assert POLL_TRIGGER in body
    at = timezone.localtime(run_after).strftime("%H:%M")
    assert f'data-announce="Reintento programado a las {at}."' in body
    assert body.count(">Listo") == 1 and body.count(">Con error") == 1  # open_page done, login where it stopped
    assert body.count("Pendiente") == 8
    assert body.count(sentence) == 1 and "Reintento 1 de 3, en unos 2 min." in body
    # Once the retry runs, its steps start over.
    EnrollmentJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    event(job, "open_page", "started")
    body = text(client.get(status_urls(job)[1]))
    assert body.count("Pendiente") == 9 and body.count(">Con error") == 0


def test_a_finished_job_ends_its_news_with_how_it_ended(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    job = run(job)
    fail(job, "confirmation_mismatch", "La confirmación del SII no coincidía.")
    client.force_login(cast.client_a)
    body = text(client.get(status_urls(job)[1]))
    notes = body[body.index("Novedades"):]
    assert "La autorización no se pudo completar." in notes
    assert body.count("La confirmación del SII no coincidía.") == 1  # said once, in the failure block


def test_succeeded_job_shows_sii_confirmation_and_stops_polling(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    job = run(job)
    succeed(job)
    client.force_login(cast.client_a)
    for url in status_urls(job):
        response = client.get(url)
        body = text(response)
        assert response.status_code == 200
        assert POLL_TRIGGER not in body and "hx-get" not in body
        assert "Usuario autorizado" in body
        for header in ("Rut Usuario", "Nombre Usuario", "Usuario-Administrador", "Firmar Documentos", "Registro", "Autorizado por"):
            assert f'<th scope="col">{header}</th>' in body
        assert 'data-label="Rut Usuario">13.322.924-8<' in body
        assert 'data-label="Usuario-Administrador" class="flag si">SI<' in body
        assert 'data-label="Registro" class="flag no">NO<' in body
        assert "COMERCIAL DEMO SPA" in body and "76.086.428-5" in body


@pytest.mark.parametrize(
    ("outcome", "label"),
    [("updated", "Permisos actualizados"), ("already_authorized", "Ya estaba autorizado; no se hizo ningún cambio")],
)
def test_succeeded_outcomes(client, cast, job, outcome: str, label: str) -> None:  # type: ignore[no-untyped-def]
    succeed(run(job), outcome=outcome)
    client.force_login(cast.client_a)
    assert label in text(client.get(status_urls(job)[1]))


@pytest.mark.parametrize(
    ("code", "retryable", "advice", "upload_link"),
    [
        ("certificate_rejected", False, "Suba otro certificado digital vigente", True),
        ("holder_not_administrator", False, "representante legal de la empresa o de un usuario que ya sea administrador", True),
        ("company_not_authorized", False, "Consulte al SII", False),
        ("sii_unavailable", True, "lo reintentaremos", False),
        ("confirmation_mismatch", False, "PyME Contadores fue notificado y revisará el caso", False),
    ],
)
def test_failed_job_explains_what_to_do(client, cast, job, code: str, retryable: bool, advice: str, upload_link: bool) -> None:  # type: ignore[no-untyped-def]
    job = run(job)
    fail(job, code, "El SII rechazó algo concreto.", retryable=retryable)
    client.force_login(cast.client_a)
    for url in status_urls(job):
        body = text(client.get(url))
        assert POLL_TRIGGER not in body
        assert "No se pudo completar la autorización" in body and "El SII rechazó algo concreto." in body
        assert advice in body
        upload_url = reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk})
        assert (f'href="{upload_url}"' in body) is upload_link
        assert "Con error" in body  # the failed step
    company_page = text(client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})))
    assert "La última autorización no se pudo completar" in company_page


# --- Cheap polling --------------------------------------------------------------------------------


def test_unchanged_poll_is_304_and_changes_are_seen(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    partial_url = status_urls(job)[1]
    first = client.get(partial_url)
    etag = first["ETag"]
    assert etag and "no-cache" in first["Cache-Control"] and "private" in first["Cache-Control"]
    again = client.get(partial_url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag and again.content == b""
    job = run(job)
    claimed = client.get(partial_url, HTTP_IF_NONE_MATCH=etag)
    assert claimed.status_code == 200 and claimed["ETag"] != etag
    etag = claimed["ETag"]
    event(job, "open_page", "started")
    moved = client.get(partial_url, HTTP_IF_NONE_MATCH=etag)
    assert moved.status_code == 200 and "Abrir Mantención de usuarios autorizados" in text(moved)
    assert client.get(partial_url, HTTP_IF_NONE_MATCH=moved["ETag"]).status_code == 304


def test_partial_runs_a_constant_number_of_queries(client, cast, job, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    partial_url = status_urls(job)[1]
    job = run(job)
    for step in STEPS[:3]:
        event(job, step, "started")
        event(job, step, "done")
    with django_assert_max_num_queries(5):
        few = client.get(partial_url)
    for step in STEPS[3:]:
        event(job, step, "started")
        event(job, step, "done")
    for n in range(20):
        event(job, "retry", "info", f"aviso {n}")
    with django_assert_max_num_queries(5):
        many = client.get(partial_url)
    assert few.status_code == many.status_code == 200
    with django_assert_max_num_queries(4):
        assert client.get(partial_url, HTTP_IF_NONE_MATCH=many["ETag"]).status_code == 304


# --- The company page -----------------------------------------------------------------------------


def test_company_page_without_job_leads_to_the_wizard(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    body = text(client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})))
    assert "Comercial Demo SpA" in body and "76.086.428-5" in body and "Esperando certificado" in body
    assert reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk}) in body
    assert "ALEX BRITO MARDONES" in body


def test_company_page_with_job_links_to_its_status(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    body = text(client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})))
    assert reverse("client:job", kwargs={"job_id": job.pk}) in body
    assert "Ver el avance en vivo" in body
    cast.company_a.refresh_from_db()
    assert cast.company_a.stage == CompanyStage.QUEUED


# --- Nobody else sees it --------------------------------------------------------------------------


def client_urls(cast, job, certificate) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    company = {"company_id": cast.company_a.pk}
    certificate_kwargs = {**company, "certificate_id": certificate.pk}
    return [
        ("get", reverse("client:company", kwargs=company)),
        ("get", reverse("client:certificate_upload", kwargs=company)),
        ("post", reverse("client:certificate_upload", kwargs=company)),
        ("get", reverse("client:certificate_review", kwargs=certificate_kwargs)),
        ("get", reverse("client:consent", kwargs=certificate_kwargs)),
        ("post", reverse("client:consent", kwargs=certificate_kwargs)),
        ("post", reverse("client:certificate_delete", kwargs=certificate_kwargs)),
        ("get", reverse("client:job", kwargs={"job_id": job.pk})),
        ("get", reverse("client:job_status", kwargs={"job_id": job.pk})),
    ]


@pytest.mark.parametrize("who", ["anonymous", "staff_b", "other_client", "firm_owner_a"])
def test_everyone_but_the_owner_gets_404(client, cast, job, who: str) -> None:  # type: ignore[no-untyped-def]
    certificate = job.certificate
    if who == "other_client":
        other = get_user_model().objects.create_user(username="otro@cliente.cl", email="otro@cliente.cl", password="x")
        services.client_company_create(tenant=cast.tenant_a, rut="76.369.187-K", legal_name="Otra SpA", owner=other)
        client.force_login(other)
    elif who == "staff_b":
        client.force_login(cast.staff_b)
    elif who == "firm_owner_a":
        client.force_login(cast.owner_a)
    for method, url in client_urls(cast, job, certificate):
        response = getattr(client, method)(url, {"consent": "on", "terms_version": "x"} if method == "post" else None)
        assert response.status_code == 404, (who, method, url)
    certificate.refresh_from_db()
    assert certificate.is_usable
    assert EnrollmentJob.objects.count() == 1
    if who == "anonymous":
        page = client.get(reverse("client:job", kwargs={"job_id": job.pk}))
        assert "Ingresar" in text(page) and reverse("login") in text(page)


def test_malformed_and_unknown_ids_are_404(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    for url in ("/trabajo/no-es-un-uuid/", "/trabajo/00000000-0000-0000-0000-000000000000/estado/",
                f"/empresa/{cast.company_b.pk}/", "/empresa/999999/certificado/",
                f"/empresa/{cast.company_a.pk}/certificado/no-uuid/autorizar/"):
        assert client.get(url).status_code == 404, url


# --- The emails about a finished job (texts; core sends them) --------------------------------------


def test_finished_emails_say_what_happened_in_plain_spanish(cast, job, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_BASE_URL = "https://autoriza.example.cl"
    cast.tenant_a.notification_emails = "avisos@pyme.cl"
    cast.tenant_a.save()
    succeed(run(job))
    job = EnrollmentJob.objects.select_related("company", "tenant").get(pk=job.pk)
    client_mail, firm_mail = services.job_finished_emails(job=job)
    assert client_mail.recipients == ["cliente@empresa.cl"] and firm_mail.recipients == ["avisos@pyme.cl"]
    assert client_mail.subject == "Autorización completada en el SII: Comercial Demo SpA"
    assert "Hola María:" in client_mail.body
    assert "ALEX BRITO MARDONES (RUT 13.322.924-8), representante de PyME Contadores" in client_mail.body
    assert "Comercial Demo SpA (RUT 76.086.428-5)" in client_mail.body
    assert "Usuario Administrador: SI · Firmar Documentos: SI · Registro: NO" in client_mail.body
    assert f"https://autoriza.example.cl/trabajo/{job.pk}/" in client_mail.body
    assert "\n\n\n" not in client_mail.body


def test_failure_email_says_what_to_do(cast, job) -> None:  # type: ignore[no-untyped-def]
    fail(run(job), "holder_not_administrator", "El titular no administra la empresa.")
    job = EnrollmentJob.objects.select_related("company", "tenant").get(pk=job.pk)
    (client_mail,) = services.job_finished_emails(job=job)  # the firm has no notification address
    assert client_mail.subject == "No se pudo completar la autorización en el SII: Comercial Demo SpA"
    assert "Motivo: El titular no administra la empresa." in client_mail.body
    assert "Qué hacer ahora: Use el certificado digital de un representante legal" in client_mail.body


# --- Removal (REVOKE) and replacement (REPLACE) jobs speak of what they do ----------------------------

NEW_RUT, NEW_NAME = "14567890-0", "MARCELA ROJAS"


def _record(user_rut: str) -> object:
    import sii_bot

    return sii_bot.SiiUserRecord(
        company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut=user_rut, user_name="X",
        admin=True, sign=True, registry=True, authorized_by="MARIA JOSE SOTO PEREZ",
    )


@pytest.fixture
def sii(monkeypatch):  # type: ignore[no-untyped-def]
    """Stands in for sii_bot.revoke / replace: reports a step, then succeeds or raises `failure`."""
    import sii_bot

    class Fake:
        failure: BaseException | None = None

        def _run(self, on_progress) -> None:  # type: ignore[no-untyped-def]
            on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="started", message=""))
            if self.failure is not None:
                raise self.failure
            on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="done", message=""))

        def revoke(self, request, certificate, settings=None, on_progress=None):  # type: ignore[no-untyped-def]
            self._run(on_progress)
            return sii_bot.RevocationResult(outcome="revoked", company_rut=request.company_rut,
                                            user_rut=request.user_rut, final_entries={request.user_rut: None})

        def replace(self, request, certificate, settings=None, on_progress=None):  # type: ignore[no-untyped-def]
            self._run(on_progress)
            addition = sii_bot.EnrollmentResult(outcome="created", record=_record(request.new_user_rut))
            removal = sii_bot.RevocationResult(outcome="revoked", company_rut=request.company_rut,
                                               user_rut=request.old_user_rut)
            return sii_bot.ReplacementResult(outcome="replaced", addition=addition, removal=removal)

    fake = Fake()
    monkeypatch.setattr(sii_bot, "revoke", fake.revoke)
    monkeypatch.setattr(sii_bot, "replace", fake.replace)
    return fake


def _authorized(company) -> None:  # type: ignore[no-untyped-def]
    """The company as a succeeded authorization of the cast's representative leaves it."""
    from onboarding.models import ClientCompany

    ClientCompany.objects.filter(pk=company.pk).update(
        sii_user_rut="13322924-8", sii_admin=True, sii_sign=True, sii_registry=True, stage=CompanyStage.AUTHORIZED
    )
    company.refresh_from_db()


def _removal_job(cast) -> EnrollmentJob:  # type: ignore[no-untyped-def]
    """The owner ends the relationship with a stored certificate: a REVOKE job, queued."""
    _authorized(cast.company_a)
    store_certificate(cast.company_a, cast.client_a)
    job = services.company_relationship_end(company=cast.company_a, actor=cast.client_a)
    assert job is not None and job.kind == "revoke"
    return job


def _visible(body: str) -> str:
    """The page's words as a text tool reads them: tags become spaces, whitespace collapses."""
    import re

    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_a_succeeded_removal_speaks_of_removal_on_every_page(client, cast, sii) -> None:  # type: ignore[no-untyped-def]
    job = services.enrollment_job_execute(job_id=str(_removal_job(cast).pk))
    assert job.status == JobStatus.SUCCEEDED
    client.force_login(cast.client_a)
    page_url, partial_url = status_urls(job)
    page = text(client.get(page_url))
    assert "<title>Retiro del usuario en el SII · Comercial Demo SpA · Autoriza</title>" in page
    assert "<h1>Retiro de ALEX BRITO MARDONES</h1>" in page
    for body in (page, text(client.get(partial_url))):
        assert '<span class="badge succeeded">Retirado</span>' in body
        assert 'data-announce="Listo: el retiro en el SII terminó."' in body
        assert "Representante eliminado" in body and "ya no es usuario autorizado" in body
        assert "Autorizado<" not in body and "Autorización de" not in body and "la autorización" not in body
    company = text(client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})))
    words = _visible(company)
    assert "Relación terminada" in words
    assert "Retiramos a ALEX BRITO MARDONES de los usuarios autorizados de su empresa en el SII" in words
    assert f'href="{page_url}">Ver la confirmación del retiro</a>' in company
    assert "quedó registrado" not in words and "Para autorizar a" not in words and "Volver a intentarlo" not in words
    assert "La relación con PyME Contadores terminó" not in words  # said once, by the removal itself


def test_a_running_and_a_failed_removal_speak_of_removal(client, cast, sii) -> None:  # type: ignore[no-untyped-def]
    from sii_bot import errors

    job = _removal_job(cast)
    client.force_login(cast.client_a)
    company_url = reverse("client:company", kwargs={"company_id": cast.company_a.pk})
    queued = _visible(text(client.get(company_url)))
    assert "Autoriza está retirando a ALEX BRITO MARDONES de los usuarios autorizados" in queued
    assert 'data-announce="En cola: el retiro comenzará en breve."' in text(client.get(status_urls(job)[1]))
    sii.failure = errors.HolderNotAdministrator("not admin", step="login")
    job = services.enrollment_job_execute(job_id=str(job.pk))
    assert job.status == JobStatus.FAILED
    for url in status_urls(job):
        body = text(client.get(url))
        assert "No se pudo completar el retiro" in body and "la autorización" not in body
        assert 'data-announce="El retiro no se pudo completar."' in body
        assert "vuelva a confirmar el retiro" in body  # the advice
    words = _visible(text(client.get(company_url)))
    assert "El último retiro no se pudo completar." in words
    # The certificate whose holder the SII refused is not offered again: only "upload another".
    assert "Hay que quitar a ALEX BRITO MARDONES" in words and "Continuar con este certificado" not in words
    assert "Subir certificado digital" in words
    assert "Para autorizar a" not in words and "La última autorización" not in words


def test_a_succeeded_replacement_names_both_people(client, cast, sii) -> None:  # type: ignore[no-untyped-def]
    from onboarding.models import Representative

    _authorized(cast.company_a)
    store_certificate(cast.company_a, cast.client_a)
    old = Representative.objects.get(tenant=cast.tenant_a, rut="13322924-8")
    report = services.representative_replace(tenant=cast.tenant_a, old=old, new_rut=NEW_RUT, new_name=NEW_NAME,
                                             actor=cast.owner_a)
    (job,) = report.jobs
    job = services.enrollment_job_execute(job_id=str(job.pk))
    assert job.status == JobStatus.SUCCEEDED and job.kind == "replace"
    client.force_login(cast.client_a)
    page_url, partial_url = status_urls(job)
    page = text(client.get(page_url))
    assert "<title>Reemplazo del representante en el SII · Comercial Demo SpA · Autoriza</title>" in page
    assert "<h1>Reemplazo de ALEX BRITO MARDONES por MARCELA ROJAS</h1>" in page
    for body in (page, text(client.get(partial_url))):
        assert '<span class="badge succeeded">Reemplazado</span>' in body
        assert "Representante reemplazado" in body and '(RUT <span class="rut">13.322.924-8</span>) fue eliminado' in body
    words = _visible(text(client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk}))))
    assert "Registramos a MARCELA ROJAS como usuario autorizado de su empresa en el SII y retiramos a" in words
    assert "Ver la confirmación del reemplazo" in words


def test_an_authorization_keeps_its_own_words(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    succeed(run(job))
    client.force_login(cast.client_a)
    page = text(client.get(status_urls(job)[0]))
    assert "<title>Autorización en el SII · Comercial Demo SpA · Autoriza</title>" in page
    assert "<h1>Autorización de ALEX BRITO MARDONES</h1>" in page
    assert '<span class="badge succeeded">Autorizado</span>' in page


def test_company_page_has_no_space_before_punctuation(client, cast) -> None:  # type: ignore[no-untyped-def]
    certificate = store_certificate(cast.company_a, cast.client_a)
    client.force_login(cast.client_a)
    for url in (reverse("client:company", kwargs={"company_id": cast.company_a.pk}),
                reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk})):
        words = _visible(text(client.get(url)))
        assert f"Ya subió el certificado de {certificate.holder_name} (válido hasta el" in words, url
        assert " ," not in words, url
