"""Company-RUT squatting (CompanyClaim): several people may sign up the same company RUT with a firm;
each proceeds on their own, and the first one whose authorization succeeds in the SII becomes the
company's owner. The others are told, see nothing of the winner, and staff see every claimant.
Also: Back after an invited signup leads its user to their company."""
from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import sii_bot
from onboarding import services
from onboarding.models import (
    Certificate,
    ClaimStatus,
    ClientCompany,
    CompanyClaim,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobStatus,
)
from tests.onboarding.test_client_wizard import make_pfx, upload

PASSWORD = "Pino-Oregon-2024!"
RUT = "76369187-K"
SQUATTER = {"email": "okupa@otra.cl", "legal_name": "Empresa Tomada SpA", "owner_name": "Oscar Okupa"}
REAL = {"email": "duena@panaderia.cl", "legal_name": "Panadería Verdadera SpA", "owner_name": "Rosa Araya"}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def sign_up(person: dict[str, str], *, slug: str = "pyme") -> tuple[Client, Any]:
    """A new browser that signs `person` up for RUT with the firm `slug`; returns it and the response."""
    browser = Client()
    response = browser.post(
        reverse("client:signup", kwargs={"tenant_slug": slug}),
        {**person, "password": PASSWORD, "company_rut": "76.369.187-k"},
        follow=False,
    )
    return browser, response


def consent(browser: Client, company: ClientCompany) -> EnrollmentJob:
    """Upload a certificate and consent as `browser`'s user; returns the QUEUED job it created."""
    assert upload(browser, company, make_pfx()).status_code == 302
    certificate = Certificate.objects.filter(uploaded_by__username=browser_user(browser)).latest("created_at")
    url = reverse("client:consent", kwargs={"company_id": company.pk, "certificate_id": certificate.pk})
    response = browser.post(url, {"consent": "on", "terms_version": browser.get(url).context["terms"].version})
    job = EnrollmentJob.objects.get(certificate=certificate)
    assert response.status_code == 302 and response["Location"] == reverse("client:job", kwargs={"job_id": job.pk})
    assert job.status == JobStatus.QUEUED
    return job


def browser_user(browser: Client) -> str:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=browser.session["_auth_user_id"]).username


class ScriptedSii:
    """Stands in for sii_bot.enroll: the SII authorizes the representative ("created"), or answers that
    it already was ("already_authorized") once someone did; `during` runs inside the first call."""

    def __init__(self) -> None:
        self.authorized = False
        self.during: Any = None

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        during, self.during = self.during, None
        if during is not None:
            during()  # another worker finishes meanwhile
        outcome = "already_authorized" if self.authorized else "created"
        self.authorized = True
        record = sii_bot.SiiUserRecord(
            company_name="PANADERIA VERDADERA SPA", company_rut=request.company_rut, user_rut=request.user_rut,
            user_name="ALEX BRITO MARDONES", admin=True, sign=True, registry=True, authorized_by="ROSA ARAYA",
        )
        return sii_bot.EnrollmentResult(outcome=outcome, record=record)


@pytest.fixture
def sii(monkeypatch, enqueued) -> ScriptedSii:  # type: ignore[no-untyped-def]
    fake = ScriptedSii()
    monkeypatch.setattr(sii_bot, "enroll", fake)
    return fake


@pytest.fixture
def rivals(cast, enqueued):  # type: ignore[no-untyped-def]
    """The squatter signs up the RUT first, the real owner second; both have a job queued."""
    squatter, first = sign_up(SQUATTER)
    real, second = sign_up(REAL)
    company = ClientCompany.objects.get(tenant=cast.tenant_a, rut=RUT)
    upload_url = reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    assert (first.status_code, first["Location"]) == (302, upload_url)
    assert (second.status_code, second["Location"]) == (302, upload_url)
    squatter_job = consent(squatter, company)
    real_job = consent(real, company)
    return squatter, real, company, squatter_job, real_job


# --- Both proceed -----------------------------------------------------------------------------------


def test_two_people_signing_up_the_same_rut_both_proceed_each_on_their_own(cast, enqueued) -> None:  # type: ignore[no-untyped-def]
    squatter, _ = sign_up(SQUATTER)
    real, response = sign_up(REAL)
    company = ClientCompany.objects.get(tenant=cast.tenant_a, rut=RUT)
    assert response.status_code == 302
    assert response["Location"] == reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    assert ClientCompany.objects.filter(rut=RUT).count() == 1
    # The first signup is the provisional owner, as a lone signup always was; the second a claimant.
    assert company.owner.username == "okupa@otra.cl" and company.legal_name == "Empresa Tomada SpA"
    claims = list(CompanyClaim.objects.filter(company=company).order_by("created_at").values_list("email", "status"))
    assert claims == [("okupa@otra.cl", ClaimStatus.PENDING), ("duena@panaderia.cl", ClaimStatus.PENDING)]
    wizard = real.get(response["Location"], follow=False)
    body = text(wizard)
    assert wizard.status_code == 200 and "Suba su certificado digital" in body
    assert "Otra persona ya había registrado esta empresa con PyME Contadores" in body
    # The claimant sees the company as they typed it, never what the other person typed.
    assert "Panadería Verdadera SpA" in body and "Empresa Tomada SpA" not in body
    page = text(real.get(reverse("client:company", kwargs={"company_id": company.pk})))
    assert "Otra persona también registró esta empresa" in page
    assert "Empresa Tomada SpA" not in page and "okupa@otra.cl" not in page and "Oscar" not in page
    # Both can have their own job queued at the same time.
    job_one, job_two = consent(squatter, company), consent(real, company)
    assert (job_one.claim.email, job_two.claim.email) == ("okupa@otra.cl", "duena@panaderia.cl")
    # Each one's certificate and job are theirs only.
    squatter_page = text(squatter.get(reverse("client:company", kwargs={"company_id": company.pk})))
    assert str(job_one.pk) in squatter_page and str(job_two.pk) not in squatter_page
    assert squatter.get(reverse("client:job", kwargs={"job_id": job_two.pk})).status_code == 404
    assert squatter.get(reverse("client:job_status", kwargs={"job_id": job_two.pk})).status_code == 404
    assert real.get(reverse("client:job_status", kwargs={"job_id": job_two.pk})).status_code == 200
    review = reverse("client:certificate_review", kwargs={"company_id": company.pk, "certificate_id": job_two.certificate_id})
    assert squatter.get(review).status_code == 404
    assert real.get(review).status_code == 200
    # Home leads the claimant to the company, and lists it as they typed it once they have two.
    home = real.get(reverse("home"))
    assert home.status_code == 302 and home["Location"] == reverse("client:company", kwargs={"company_id": company.pk})
    real.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}),
              {"company_rut": "96.874.030-K", "legal_name": "Segunda SpA", "owner_name": "Rosa Araya"})
    listed = text(real.get(reverse("home")))
    assert "Panadería Verdadera SpA" in listed and "Segunda SpA" in listed and "Empresa Tomada SpA" not in listed


def test_a_lone_signup_gets_its_company_page_at_once_and_its_success_proves_it(cast, sii) -> None:  # type: ignore[no-untyped-def]
    browser, response = sign_up(REAL)
    company = ClientCompany.objects.get(tenant=cast.tenant_a, rut=RUT)
    assert response["Location"] == reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    assert browser.get(reverse("client:company", kwargs={"company_id": company.pk})).status_code == 200
    job = consent(browser, company)
    assert services.enrollment_job_execute(job_id=str(job.pk)).status == JobStatus.SUCCEEDED
    claim = CompanyClaim.objects.get(company=company)
    assert (claim.status, claim.settled_by_id) == (ClaimStatus.WON, job.pk)
    company.refresh_from_db()
    assert company.owner.username == "duena@panaderia.cl" and company.stage == CompanyStage.AUTHORIZED
    page = text(browser.get(reverse("client:company", kwargs={"company_id": company.pk})))
    assert "ALEX BRITO MARDONES quedó registrado como usuario autorizado de su empresa en el SII" in page


# --- The first success wins --------------------------------------------------------------------------


def test_the_first_success_becomes_the_owner_and_the_other_is_told(cast, rivals, sii, certificate_bundle, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    squatter, real, company, squatter_job, real_job = rivals
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        done = services.enrollment_job_execute(job_id=str(real_job.pk))
    assert done.status == JobStatus.SUCCEEDED
    company.refresh_from_db()
    assert company.owner.username == "duena@panaderia.cl"
    assert (company.owner_name, company.owner_email, company.legal_name) == (
        "Rosa Araya", "duena@panaderia.cl", "Panadería Verdadera SpA"
    )
    statuses = dict(CompanyClaim.objects.filter(company=company).values_list("email", "status"))
    assert statuses == {"duena@panaderia.cl": ClaimStatus.WON, "okupa@otra.cl": ClaimStatus.LOST}
    # The loser's queued job is stopped and their certificate erased; they are e-mailed in Spanish.
    squatter_job.refresh_from_db()
    assert (squatter_job.status, squatter_job.failure_code) == (JobStatus.FAILED, "claim_lost")
    assert not Certificate.objects.get(pk=squatter_job.certificate_id).is_usable
    told = [message for message in mail.outbox if message.to == ["okupa@otra.cl"]]
    assert len(told) == 1 and "no continuará" in told[0].subject
    assert "Otra persona ya comprobó en el SII" in told[0].body and "Rosa" not in told[0].body
    assert [message.to for message in mail.outbox if "Autorización completada" in message.subject] == [["duena@panaderia.cl"]]
    # The loser's page says so and shows nothing of the winner or of the SII.
    page = text(squatter.get(reverse("client:company", kwargs={"company_id": company.pk})))
    assert "Otra persona comprobó ser dueña de esta empresa" in page and "Registro descartado" in page
    for secret in ("Panadería Verdadera", "Rosa", "duena@panaderia.cl", "ALEX BRITO", "Terminar la relación", str(real_job.pk)):
        assert secret not in page, secret
    upload_url = reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    assert squatter.get(upload_url)["Location"] == reverse("client:company", kwargs={"company_id": company.pk})
    assert squatter.get(reverse("client:job", kwargs={"job_id": real_job.pk})).status_code == 404
    assert squatter.get(reverse("client:company_end", kwargs={"company_id": company.pk})).status_code == 404
    own_job = text(squatter.get(reverse("client:job", kwargs={"job_id": squatter_job.pk})))
    assert "Otra persona ya comprobó en el SII" in own_job and "Panadería Verdadera" not in own_job
    # A lost claim starts nothing more: its certificate is gone, and a new one would be refused too.
    with pytest.raises(services.ServiceError) as refused:
        services.enrollment_job_rerun(job=squatter_job, actor=cast.owner_a)
    assert refused.value.code == "certificate_missing"
    fresh = services.certificate_store(company=company, bundle=certificate_bundle, uploaded_by=squatter_job.created_by)
    Certificate.objects.filter(pk=fresh.pk).update(claim=squatter_job.claim)
    fresh.refresh_from_db()
    with pytest.raises(services.ServiceError) as refused:
        services.enrollment_job_create(company=company, certificate=fresh, created_by=cast.owner_a)
    assert refused.value.code == "claim_lost" and "Otra persona ya comprobó en el SII" in refused.value.message
    # The winner owns the company now.
    owner_page = text(real.get(reverse("client:company", kwargs={"company_id": company.pk})))
    assert "Panadería Verdadera SpA" in owner_page and "Registro descartado" not in owner_page
    # Nobody else can claim a company whose owner is proven.
    _, late = sign_up({"email": "tarde@otra.cl", "legal_name": "Tarde", "owner_name": "Tomas Tarde"})
    assert late.status_code == 200 and "Esta empresa ya está registrada con este estudio contable" in text(late)


def test_a_claimant_whose_job_runs_after_the_win_is_told_it_was_already_authorized(cast, rivals, sii, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    squatter, _, company, squatter_job, real_job = rivals
    # The squatter's job is already running in one worker when the real owner's finishes in another.
    sii.during = lambda: services.enrollment_job_execute(job_id=str(real_job.pk))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        late = services.enrollment_job_execute(job_id=str(squatter_job.pk))
    assert (late.status, late.outcome) == (JobStatus.SUCCEEDED, "already_authorized")
    company.refresh_from_db()
    assert company.owner.username == "duena@panaderia.cl" and company.stage == CompanyStage.AUTHORIZED
    assert CompanyClaim.objects.get(email="okupa@otra.cl").status == ClaimStatus.LOST
    assert not Certificate.objects.get(pk=squatter_job.certificate_id).is_usable
    told = [message for message in mail.outbox if message.to == ["okupa@otra.cl"]]
    assert any("ya había sido autorizada en el SII por su dueño comprobado" in message.body for message in told)
    page = text(squatter.get(reverse("client:job", kwargs={"job_id": squatter_job.pk})))
    assert "Otra persona ya comprobó en el SII" in page


# --- Staff and tenants ---------------------------------------------------------------------------------


def test_staff_see_every_claimant_and_who_won(client, cast, rivals, sii) -> None:  # type: ignore[no-untyped-def]
    _, _, _, squatter_job, real_job = rivals
    client.force_login(cast.staff_a)
    dashboard = text(client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"})))
    assert "2 personas registraron esta empresa" in dashboard
    detail_url = reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": squatter_job.pk})
    before = text(client.get(detail_url))
    assert "Personas que registraron esta empresa" in before
    assert "Oscar Okupa" in before and "Rosa Araya" in before and "Pendiente" in before
    services.enrollment_job_execute(job_id=str(real_job.pk))
    after = text(client.get(detail_url))
    assert "Dueño comprobado en el SII" in after and "Descartado: otra persona lo comprobó primero" in after
    won_row = after[after.index("Rosa Araya"):]
    assert won_row.index("Dueño comprobado") < won_row.index("</tr>")


def test_another_firm_sees_nothing_of_the_claims(cast, rivals) -> None:  # type: ignore[no-untyped-def]
    _, real, company, squatter_job, real_job = rivals
    outsider = Client()
    outsider.force_login(cast.staff_b)
    for job in (squatter_job, real_job):
        assert outsider.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": job.pk})).status_code == 404
        assert outsider.get(reverse("staff:job_detail", kwargs={"tenant_slug": "otro", "job_id": job.pk})).status_code == 404
    assert "personas registraron" not in text(outsider.get(reverse("staff:dashboard", kwargs={"tenant_slug": "otro"})))
    # The same RUT with another firm is another company, not a claim on this one.
    other, response = sign_up({"email": "otra@firma.cl", "legal_name": "Otra SpA", "owner_name": "Olga Otra"}, slug="otro")
    other_company = ClientCompany.objects.get(tenant=cast.tenant_b, rut=RUT)
    assert response["Location"] == reverse("client:certificate_upload", kwargs={"company_id": other_company.pk})
    assert CompanyClaim.objects.filter(company=company).count() == 2
    assert other.get(reverse("client:company", kwargs={"company_id": company.pk})).status_code == 404
    for job in (squatter_job, real_job):
        assert other.get(reverse("client:job", kwargs={"job_id": job.pk})).status_code == 404
    # And the claimants of tenant A see nothing of tenant B's company.
    assert real.get(reverse("client:company", kwargs={"company_id": other_company.pk})).status_code == 404


def test_a_company_the_firm_invited_cannot_be_claimed(cast) -> None:  # type: ignore[no-untyped-def]
    services.client_company_create(tenant=cast.tenant_a, rut=RUT, legal_name="Invitada", stage=CompanyStage.INVITED)
    _, response = sign_up(REAL)
    assert response.status_code == 200
    assert "Esta empresa ya está registrada con este estudio contable" in text(response)
    assert not CompanyClaim.objects.exists()


# --- Back after an invited signup (issue #19, defect 3) -----------------------------------------------


def _invited_signup(cast) -> tuple[Client, str, ClientCompany]:  # type: ignore[no-untyped-def]
    company = services.client_company_create(
        tenant=cast.tenant_a, rut="96.874.030-K", legal_name="Invitada Ltda.", stage=CompanyStage.INVITED,
    )
    invitation = Invitation.objects.create(
        tenant=cast.tenant_a, company=company, email="invitada@empresa.cl", name="Jorge Invitado",
        expires_at=timezone.now() + timedelta(days=7),
    )
    url = reverse("client:signup", kwargs={"tenant_slug": "pyme"}) + f"?invitacion={services.invitation_token(invitation=invitation)}"
    browser = Client()
    response = browser.post(url, {
        "email": "invitada@empresa.cl", "password": PASSWORD, "company_rut": "96874030k",
        "legal_name": "Invitada Ltda.", "owner_name": "Jorge Invitado",
    })
    assert response.status_code == 302
    return browser, url, company


def test_back_after_an_invited_signup_goes_to_the_company(cast) -> None:  # type: ignore[no-untyped-def]
    browser, url, company = _invited_signup(cast)
    back = browser.get(url)
    assert back.status_code == 302
    assert back["Location"] == reverse("client:company", kwargs={"company_id": company.pk})
    resubmitted = browser.post(url, {"company_rut": "96874030k", "legal_name": "Invitada Ltda.", "owner_name": "Jorge"})
    assert resubmitted.status_code == 302 and resubmitted["Location"] == back["Location"]


def test_a_used_invitation_opened_by_someone_else_still_says_it_is_not_valid(cast) -> None:  # type: ignore[no-untyped-def]
    _, url, _ = _invited_signup(cast)
    someone = Client()
    someone.force_login(cast.client_a)
    for browser in (someone, Client()):
        page = browser.get(url)
        assert page.status_code == 200
        assert "Este enlace de invitación no es válido" in text(page)
