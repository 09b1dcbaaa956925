"""Client signup (plain, by invitation, by a logged-in client), login and password reset."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from onboarding import services
from onboarding.models import AuditAction, AuditEntry, ClientCompany, CompanyStage, Invitation

PASSWORD = "Pino-Oregon-2024!"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    """PBKDF2 at full strength costs ~0.25 s per user; the cast alone has six. Not what is tested here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def signup_data(**overrides: str) -> dict[str, str]:
    data = {
        "email": "Nueva@Empresa.cl",
        "password": PASSWORD,
        "company_rut": "76.369.187-k",
        "legal_name": "Panadería Nueva SpA",
        "owner_name": "Rosa Araya Castro",
    }
    data.update(overrides)
    return data


def make_invitation(cast, *, email: str = "invitada@empresa.cl", expires_in: timedelta = timedelta(days=7)) -> Invitation:  # type: ignore[no-untyped-def]
    company = services.client_company_create(
        tenant=cast.tenant_a, rut="96.874.030-K", legal_name="Invitada Ltda.", stage=CompanyStage.INVITED,
        owner_name="Jorge Invitado",
    )
    return Invitation.objects.create(
        tenant=cast.tenant_a, company=company, email=email, name="Jorge Invitado", expires_at=timezone.now() + expires_in
    )


def test_signup_page_shows_firm_and_representative(client, cast) -> None:  # type: ignore[no-untyped-def]
    response = client.get(reverse("client:signup", kwargs={"tenant_slug": "pyme"}))
    assert response.status_code == 200
    body = text(response)
    assert "PyME Contadores" in body
    assert "ALEX BRITO MARDONES" in body
    assert "13.322.924-8" in body
    assert 'autocomplete="new-password"' in body
    assert client.get("/registro/no-existe/").status_code == 404


def test_plain_signup_creates_account_company_and_audit_then_goes_to_wizard(client, cast) -> None:  # type: ignore[no-untyped-def]
    response = client.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}), signup_data())
    company = ClientCompany.objects.get(tenant=cast.tenant_a, rut="76369187-K")
    assert response.status_code == 302
    assert response["Location"] == reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    user = get_user_model().objects.get(username="nueva@empresa.cl")
    assert user.email == "nueva@empresa.cl" and user.check_password(PASSWORD)
    assert company.owner == user and company.stage == CompanyStage.WAITING_CERTIFICATE
    assert company.legal_name == "Panadería Nueva SpA" and company.owner_name == "Rosa Araya Castro"
    assert int(client.session["_auth_user_id"]) == user.pk  # logged in
    entry = AuditEntry.objects.get(action=AuditAction.SIGNUP)
    assert entry.tenant == cast.tenant_a and entry.company == company and entry.actor == user
    assert PASSWORD not in str(dict(client.session))
    wizard = client.get(response["Location"])
    assert wizard.status_code == 200 and "Suba su certificado digital" in text(wizard)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("76.369.187-1", "El dígito verificador no corresponde"),
        ("76369187-0", "El dígito verificador no corresponde"),
        ("12.3A4.567-8", "no tiene un formato válido"),
        ("1", "está incompleto"),
        ("   ", "Ingrese el RUT de la empresa"),
        ("--", "no tiene un formato válido"),
    ],
)
def test_signup_refuses_invalid_ruts_with_their_message(client, cast, typed: str, message: str) -> None:  # type: ignore[no-untyped-def]
    response = client.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}), signup_data(company_rut=typed))
    assert response.status_code == 200
    assert message in text(response)
    assert 'aria-invalid="true"' in text(response)
    assert not get_user_model().objects.filter(username="nueva@empresa.cl").exists()
    assert PASSWORD not in text(response)  # the password is never rendered back


@pytest.mark.parametrize("typed", ["76369187K", "76.369.187-k", " 76 369 187 - K ", "0076369187-K"])
def test_signup_normalizes_rut_spellings(client, cast, typed: str) -> None:  # type: ignore[no-untyped-def]
    response = client.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}), signup_data(company_rut=typed))
    assert response.status_code == 302
    assert ClientCompany.objects.filter(tenant=cast.tenant_a, rut="76369187-K").exists()


def test_signup_refuses_weak_password_in_spanish(client, cast) -> None:  # type: ignore[no-untyped-def]
    response = client.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}), signup_data(password="12345678"))
    assert response.status_code == 200
    body = text(response)
    assert "contraseña" in body.lower() and ("común" in body or "numérica" in body)
    assert not ClientCompany.objects.filter(rut="76369187-K").exists()


def test_signup_of_a_company_already_registered_shows_service_message(client, cast) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        reverse("client:signup", kwargs={"tenant_slug": "pyme"}), signup_data(company_rut="76.086.428-5")
    )
    assert response.status_code == 200
    assert "Esta empresa ya está registrada con este estudio contable" in text(response)
    # Nothing half-done: no account was left behind.
    assert not get_user_model().objects.filter(username="nueva@empresa.cl").exists()
    assert ClientCompany.objects.filter(rut="76086428-5").count() == 1


def test_same_company_may_register_with_another_firm(client, cast) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        reverse("client:signup", kwargs={"tenant_slug": "otro"}), signup_data(company_rut="76.086.428-5")
    )
    assert response.status_code == 302
    assert ClientCompany.objects.filter(rut="76086428-5").count() == 2


def test_signup_with_an_email_that_has_an_account(client, cast) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        reverse("client:signup", kwargs={"tenant_slug": "pyme"}), signup_data(email="CLIENTE@empresa.cl")
    )
    assert response.status_code == 200
    assert "Ya existe una cuenta con este correo" in text(response)
    assert not ClientCompany.objects.filter(rut="76369187-K").exists()


def test_invitation_prefills_and_attaches_the_new_owner(client, cast) -> None:  # type: ignore[no-untyped-def]
    invitation = make_invitation(cast)
    token = services.invitation_token(invitation=invitation)
    url = reverse("client:signup", kwargs={"tenant_slug": "pyme"}) + f"?invitacion={token}"
    page = client.get(url)
    body = text(page)
    assert page.status_code == 200
    assert 'value="96.874.030-K"' in body and 'value="Invitada Ltda."' in body
    assert 'value="invitada@empresa.cl"' in body and 'value="Jorge Invitado"' in body
    response = client.post(
        url,
        signup_data(email="invitada@empresa.cl", company_rut="96874030k", legal_name="Invitada Ltda.", owner_name="Jorge Invitado"),
    )
    assert response.status_code == 302
    company = ClientCompany.objects.get(pk=invitation.company_id)
    user = get_user_model().objects.get(username="invitada@empresa.cl")
    assert company.owner == user and company.stage == CompanyStage.WAITING_CERTIFICATE
    assert ClientCompany.objects.filter(tenant=cast.tenant_a, rut="96874030-K").count() == 1  # no new company
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert AuditEntry.objects.filter(action=AuditAction.SIGNUP, company=company).exists()
    # The link is spent: opening it again shows the notice and the plain form.
    client.logout()
    again = client.get(url)
    assert "Este enlace de invitación no es válido" in text(again)


def test_invitation_refuses_a_different_rut(client, cast) -> None:  # type: ignore[no-untyped-def]
    invitation = make_invitation(cast)
    url = reverse("client:signup", kwargs={"tenant_slug": "pyme"}) + f"?invitacion={services.invitation_token(invitation=invitation)}"
    response = client.post(url, signup_data(email="invitada@empresa.cl", company_rut="76.369.187-K"))
    assert response.status_code == 200
    assert "no corresponde a la empresa de su invitación" in text(response)
    invitation.refresh_from_db()
    assert invitation.accepted_at is None
    assert not get_user_model().objects.filter(username="invitada@empresa.cl").exists()
    assert not ClientCompany.objects.filter(rut="76369187-K").exists()


@pytest.mark.parametrize("kind", ["forged", "expired", "revoked", "other_tenant"])
def test_bad_invitation_links_show_a_notice_and_the_normal_form(client, cast, kind: str) -> None:  # type: ignore[no-untyped-def]
    invitation = make_invitation(cast, expires_in=timedelta(days=-1) if kind == "expired" else timedelta(days=7))
    if kind == "revoked":
        Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())
    token = services.invitation_token(invitation=invitation) + ("x" if kind == "forged" else "")
    slug = "otro" if kind == "other_tenant" else "pyme"
    response = client.get(reverse("client:signup", kwargs={"tenant_slug": slug}) + f"?invitacion={token}")
    assert response.status_code == 200
    body = text(response)
    assert "Este enlace de invitación no es válido" in body
    assert "Invitada Ltda." not in body  # nothing pre-filled


def test_logged_in_client_adds_another_company_without_new_account(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    page = client.get(reverse("client:signup", kwargs={"tenant_slug": "pyme"}))
    assert 'name="password"' not in page.content.decode()
    response = client.post(
        reverse("client:signup", kwargs={"tenant_slug": "pyme"}),
        {"company_rut": "76.369.187-K", "legal_name": "Segunda SpA", "owner_name": "María Soto"},
    )
    assert response.status_code == 302
    assert ClientCompany.objects.get(rut="76369187-K").owner == cast.client_a


def test_login_with_the_new_account(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}), signup_data())
    client.logout()
    response = client.post(reverse("login"), {"username": "nueva@empresa.cl", "password": PASSWORD})
    assert response.status_code == 302
    company = ClientCompany.objects.get(rut="76369187-K")
    home = client.get(reverse("home"))
    assert home.status_code == 302 and home["Location"] == reverse("client:company", kwargs={"company_id": company.pk})
    assert client.get(home["Location"]).status_code == 200


def test_password_reset_sends_an_email_with_a_working_link(client, cast) -> None:  # type: ignore[no-untyped-def]
    page = client.get(reverse("client:password_reset"))
    assert page.status_code == 200 and "Recuperar contraseña" in text(page)
    response = client.post(reverse("client:password_reset"), {"email": "cliente@empresa.cl"})
    assert response.status_code == 302 and response["Location"] == reverse("client:password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["cliente@empresa.cl"]
    assert message.subject == "Recupere su contraseña de Autoriza"
    assert "contraseña nueva" in message.body
    link = re.search(r"https?://[^/\s]+(/clave/nueva/\S+/)", message.body)
    assert link
    form_page = client.get(link.group(1), follow=True)
    assert "Elija una contraseña nueva" in text(form_page)
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "Otra-Clave-Segura-77", "new_password2": "Otra-Clave-Segura-77"}
    )
    assert done.status_code == 302 and done["Location"] == reverse("client:password_reset_complete")
    cast.client_a.refresh_from_db()
    assert cast.client_a.check_password("Otra-Clave-Segura-77")


def test_password_reset_for_unknown_email_sends_nothing_but_looks_the_same(client, cast) -> None:  # type: ignore[no-untyped-def]
    response = client.post(reverse("client:password_reset"), {"email": "nadie@ejemplo.cl"})
    assert response.status_code == 302 and response["Location"] == reverse("client:password_reset_done")
    assert mail.outbox == []
