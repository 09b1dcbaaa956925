"""Invitations from the firm's side: one, from a CSV (with a per-row report), resend, revoke; the
email carries a link whose token resolves to the invitation."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from onboarding import services
from onboarding.models import AuditAction, AuditEntry, ClientCompany, CompanyStage, Invitation

pytestmark = pytest.mark.django_db


def url(name: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
    return reverse(f"staff:{name}", kwargs={"tenant_slug": "pyme", **kwargs})


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def link_in(message) -> str:  # type: ignore[no-untyped-def]
    match = re.search(r"https?://\S+", message.body)
    assert match, message.body
    return match.group(0)


def test_invite_one_client(client, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_BASE_URL = "https://autoriza.example.cl"
    client.force_login(cast.staff_a)
    response = client.post(
        url("invitations"),
        {"rut": "96.874.030-k", "razon_social": "  Agrícola   Sur Ltda. ", "nombre": "Jorge Díaz", "email": "jorge@agricola.cl"},
        follow=True,
    )
    assert "Invitación enviada a jorge@agricola.cl" in text(response)
    company = ClientCompany.objects.get(tenant=cast.tenant_a, rut="96874030-K")
    assert (company.legal_name, company.owner_name, company.owner_email, company.stage) == (
        "Agrícola Sur Ltda.", "Jorge Díaz", "jorge@agricola.cl", CompanyStage.INVITED,
    )
    invitation = Invitation.objects.get(company=company)
    assert invitation.send_count == 1 and invitation.sent_at is not None and invitation.created_by == cast.staff_a
    expected_expiry = timezone.now() + timedelta(days=services.INVITATION_TTL_DAYS)
    assert abs((invitation.expires_at - expected_expiry).total_seconds()) < 60

    # The email: Spanish, to the contact, with an absolute link whose token names this invitation.
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["jorge@agricola.cl"] and "PyME Contadores" in message.subject
    # One greeting style in every e-mail ("Hola María:"), and the RUT written as on every screen.
    assert message.body.startswith("Hola Jorge:\n") and "Agrícola Sur Ltda. (RUT 96.874.030-K)" in message.body
    link = link_in(message)
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == "https://autoriza.example.cl"
    try:
        expected_path = reverse("client:signup", kwargs={"tenant_slug": "pyme"})
    except NoReverseMatch:
        expected_path = "/registro/pyme/"
    assert parts.path == expected_path
    token = parse_qs(parts.query)["invitacion"][0]
    assert services.invitation_from_token(token=token, tenant=cast.tenant_a) == invitation
    assert services.invitation_from_token(token=token, tenant=cast.tenant_b) is None

    entry = AuditEntry.objects.get(tenant=cast.tenant_a, action=AuditAction.INVITATION)
    assert entry.actor == cast.staff_a and entry.company == company and "jorge@agricola.cl" in entry.summary

    # It shows in the list, open.
    body = text(client.get(url("invitations")))
    assert "Agrícola Sur Ltda." in body and "Vigente" in body


def test_the_signup_page_accepts_the_emailed_link(client, cast) -> None:  # type: ignore[no-untyped-def]
    try:
        reverse("client:signup", kwargs={"tenant_slug": "pyme"})
    except NoReverseMatch:
        pytest.skip("client:signup is not built yet")
    client.force_login(cast.staff_a)
    client.post(url("invitations"), {"rut": "96874030-K", "razon_social": "Agrícola Sur", "nombre": "", "email": "a@b.cl"})
    client.logout()
    parts = urlsplit(link_in(mail.outbox[0]))
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200 and "Agrícola Sur" in text(response)


@pytest.mark.parametrize(
    ("data", "field_error"),
    [
        ({"rut": "76.086.428-4"}, "dígito verificador"),
        ({"rut": "hola"}, "RUT"),
        ({"email": "no-es-correo"}, "correo"),
        ({"razon_social": ""}, "obligatorio"),
        ({"rut": "76.086.428-5"}, "ya es cliente"),  # cast.company_a
    ],
)
def test_invite_one_refusals_are_shown_on_the_form(client, cast, data, field_error) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    payload = {"rut": "96874030-K", "razon_social": "Agrícola Sur", "nombre": "", "email": "a@b.cl", **data}
    response = client.post(url("invitations"), payload)
    assert response.status_code == 200
    assert field_error.lower() in text(response).lower()
    assert not Invitation.objects.exists() and not mail.outbox


def csv_upload(content: bytes, name: str = "clientes.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


MIXED_CSV = (
    "\ufeffRUT;Razón Social;Nombre;Correo Electrónico\n"
    "96.874.030-k;Agrícola Sur Ltda.;Jorge Díaz;jorge@agricola.cl\n"  # ok (lower-case k)
    "60803000K;Bodega Norte SpA;;bodega@norte.cl\n"  # ok (no dash, no contact name)
    "76.086.428-4;Mal Dígito SpA;Ana;ana@x.cl\n"  # bad check digit
    "96874030-K;Repetida Ltda.;Otro;otro@x.cl\n"  # duplicate of row 2
    "76.086.428-5;Comercial Demo SpA;María;maria@x.cl\n"  # already a client (cast.company_a)
    "76.369.187-K;Sin Correo SpA;Luis;luis@@x\n"  # bad email
    ";;;\n"  # blank: skipped
    "11.111.111-1;;Pedro;pedro@x.cl\n"  # missing legal name
).encode("utf-8")


def test_csv_import_invites_good_rows_and_reports_each_rejection(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    response = client.post(url("invitations_import"), {"archivo": csv_upload(MIXED_CSV)})
    assert response.status_code == 200
    report = response.context["report"]
    assert [row.line for row in report.invited] == [2, 3]
    reasons = {row.line: " ".join(row.errors) for row in report.rejected}
    assert set(reasons) == {4, 5, 6, 7, 9}
    assert "dígito verificador" in reasons[4]
    assert "repetido" in reasons[5] and "fila 2" in reasons[5]
    assert "Ya es cliente" in reasons[6]
    assert "Correo inválido" in reasons[7]
    assert "Falta la razón social" in reasons[9]
    body = " ".join(re.sub(r"<[^>]+>", " ", text(response)).split())
    assert "2 invitadas" in body and "5 rechazadas" in body and "Mal Dígito SpA" in body

    assert set(ClientCompany.objects.filter(tenant=cast.tenant_a, stage=CompanyStage.INVITED).values_list("rut", flat=True)) == {
        "96874030-K", "60803000-K",
    }
    assert sorted(m.to[0] for m in mail.outbox) == ["bodega@norte.cl", "jorge@agricola.cl"]
    assert AuditEntry.objects.filter(tenant=cast.tenant_a, action=AuditAction.INVITATION).count() == 2
    for message in mail.outbox:
        token = parse_qs(urlsplit(link_in(message)).query)["invitacion"][0]
        assert services.invitation_from_token(token=token, tenant=cast.tenant_a).email == message.to[0]


def test_csv_with_commas_windows_1252_and_other_header_spellings(client, cast) -> None:  # type: ignore[no-untyped-def]
    content = "rut,razon_social,nombre,email\n96874030-K,Panadería Ñuñoa,José Núñez,jose@panaderia.cl\n".encode("cp1252")
    client.force_login(cast.staff_a)
    response = client.post(url("invitations_import"), {"archivo": csv_upload(content)})
    report = response.context["report"]
    assert len(report.invited) == 1 and not report.rejected
    assert ClientCompany.objects.get(rut="96874030-K").legal_name == "Panadería Ñuñoa"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "El archivo está vacío"),  # refused by the form
        (b"nombre;correo\nx;y@z.cl\n", "No encontramos las columnas rut, razon_social"),
        (b"rut;razon_social;email\n", "no tiene filas"),
    ],
)
def test_csv_file_level_errors_import_nothing(client, cast, content, message) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    response = client.post(url("invitations_import"), {"archivo": csv_upload(content)})
    assert response.status_code == 200 and message.lower() in text(response).lower()
    assert not Invitation.objects.exists()


def test_csv_caps_rows_and_size(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    too_many = "rut;razon_social;nombre;email\n" + "".join(
        f"{i};Empresa {i};;e{i}@x.cl\n" for i in range(services.INVITATION_CSV_MAX_ROWS + 1)
    )
    response = client.post(url("invitations_import"), {"archivo": csv_upload(too_many.encode())})
    assert f"más de {services.INVITATION_CSV_MAX_ROWS} filas" in text(response)
    huge = b"rut;razon_social;nombre;email\n" + b"x" * (services.INVITATION_CSV_MAX_BYTES + 10)
    response = client.post(url("invitations_import"), {"archivo": csv_upload(huge)})
    assert "KB" in text(response) and "pesa más" in text(response)
    assert not Invitation.objects.exists()


def test_resend_sends_again_with_a_new_expiry(client, cast) -> None:  # type: ignore[no-untyped-def]
    invitation = services.invitation_create(
        tenant=cast.tenant_a, rut="96874030-K", legal_name="Agrícola", contact_name="", email="a@b.cl", actor=cast.staff_a
    )
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(days=1))  # expired
    mail.outbox.clear()
    client.force_login(cast.staff_a)
    assert "Vencida" in text(client.get(url("invitations")))
    response = client.post(url("invitation_resend", invitation_id=invitation.pk), follow=True)
    assert "Invitación reenviada a a@b.cl" in text(response)
    invitation.refresh_from_db()
    assert invitation.send_count == 2 and invitation.expires_at > timezone.now() + timedelta(days=13)
    assert len(mail.outbox) == 1
    token = parse_qs(urlsplit(link_in(mail.outbox[0])).query)["invitacion"][0]
    assert services.invitation_from_token(token=token, tenant=cast.tenant_a) == invitation
    assert AuditEntry.objects.filter(action=AuditAction.INVITATION, summary__contains="reenviada").count() == 1


def test_revoke_kills_the_link_and_blocks_resend(client, cast) -> None:  # type: ignore[no-untyped-def]
    invitation = services.invitation_create(
        tenant=cast.tenant_a, rut="96874030-K", legal_name="Agrícola", contact_name="", email="a@b.cl", actor=cast.staff_a
    )
    token = parse_qs(urlsplit(link_in(mail.outbox[0])).query)["invitacion"][0]
    client.force_login(cast.staff_a)
    response = client.post(url("invitation_revoke", invitation_id=invitation.pk), follow=True)
    assert "revocada" in text(response) and "Revocada" in text(response)
    assert services.invitation_from_token(token=token, tenant=cast.tenant_a) is None
    assert AuditEntry.objects.filter(action=AuditAction.INVITATION, summary__contains="revocada").count() == 1
    # Twice, or resending it, is refused with a message.
    assert "ya estaba revocada" in text(client.post(url("invitation_revoke", invitation_id=invitation.pk), follow=True))
    assert "no se puede reenviar" in text(client.post(url("invitation_resend", invitation_id=invitation.pk), follow=True))
    assert Invitation.objects.get(pk=invitation.pk).send_count == 1


def test_mail_outage_keeps_the_invitation_for_a_resend(client, cast, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.core.mail.backends.locmem import EmailBackend

    def broken(self, messages):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(EmailBackend, "send_messages", broken)
    client.force_login(cast.staff_a)
    response = client.post(
        url("invitations"), {"rut": "96874030-K", "razon_social": "Agrícola", "nombre": "", "email": "a@b.cl"}, follow=True
    )
    assert "no se pudo enviar" in text(response)
    invitation = Invitation.objects.get()
    assert invitation.sent_at is None and invitation.send_count == 0
    assert "No enviada" in text(client.get(url("invitations")))


def test_an_open_invitation_blocks_a_second_one_but_a_revoked_one_can_be_invited_again(client, cast) -> None:  # type: ignore[no-untyped-def]
    first = services.invitation_create(
        tenant=cast.tenant_a, rut="96874030-K", legal_name="Agrícola", contact_name="", email="a@b.cl", actor=cast.staff_a
    )
    client.force_login(cast.staff_a)
    payload = {"rut": "96.874.030-K", "razon_social": "Agrícola Sur", "nombre": "Jorge", "email": "jorge@b.cl"}
    assert "invitación vigente" in text(client.post(url("invitations"), payload))
    csv_report = client.post(
        url("invitations_import"),
        {"archivo": csv_upload("rut;razon_social;nombre;email\n96874030-K;Agrícola;J;j@b.cl\n".encode())},
    ).context["report"]
    assert "invitación vigente" in " ".join(csv_report.rejected[0].errors)

    services.invitation_revoke(invitation=first, actor=cast.staff_a)
    mail.outbox.clear()
    response = client.post(url("invitations"), payload, follow=True)
    assert "Invitación enviada a jorge@b.cl" in text(response)
    company = ClientCompany.objects.get(tenant=cast.tenant_a, rut="96874030-K")  # the same row, updated
    assert (company.pk, company.legal_name, company.owner_email) == (first.company_id, "Agrícola Sur", "jorge@b.cl")
    assert Invitation.objects.filter(company=company).count() == 2
    token = parse_qs(urlsplit(link_in(mail.outbox[0])).query)["invitacion"][0]
    assert services.invitation_from_token(token=token, tenant=cast.tenant_a).email == "jorge@b.cl"
