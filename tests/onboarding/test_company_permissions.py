"""All six SII attributes: the firm's setting (settings page), a per-client override (the client's
staff page, owners and admins, audited), the effective set copied onto each job and handed to the
bot, the permission sync per client, and requested attributes the SII page did not offer."""
from __future__ import annotations

import html
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

import sii_bot
from onboarding import selectors, services
from onboarding.domain.rules import company_permissions
from onboarding.models import (
    AuditAction,
    AuditEntry,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobStatus,
    Membership,
    Permission,
    Relationship,
    Role,
    Tenant,
)
from tests.onboarding.staff_factories import job_make

pytestmark = pytest.mark.django_db

REP_RUT = "13322924-8"  # tenant A's representative


def record(**flags: bool | None) -> sii_bot.SiiUserRecord:
    values: dict[str, Any] = {"admin": True, "sign": True, "registry": True, **flags}
    return sii_bot.SiiUserRecord(
        company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut=REP_RUT,
        user_name="ALEX BRITO MARDONES", authorized_by="MARIA JOSE SOTO", **values,
    )


class Bot:
    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.result: sii_bot.EnrollmentResult | None = None

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.requests.append(request)
        return self.result or sii_bot.EnrollmentResult(outcome="created", record=record())


@pytest.fixture
def bot(monkeypatch):  # type: ignore[no-untyped-def]
    fake = Bot()
    monkeypatch.setattr(sii_bot, "enroll", fake)
    return fake


def new_job(cast: Any, bundle: Any, capture: Any) -> EnrollmentJob:
    certificate = services.certificate_store(company=cast.company_a, bundle=bundle, uploaded_by=cast.client_a)
    with capture(execute=True):
        return services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)


def test_the_six_permissions_match_the_bot_s() -> None:
    assert [p.value for p in sii_bot.Permission] == list(Permission.values)


def test_the_firm_chooses_among_all_six_on_its_settings_page(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    url = reverse("staff:settings", kwargs={"tenant_slug": "pyme"})
    page = client.get(url).content.decode()
    for label in ("Usuario Administrador", "Firmar Documentos", "Consulta/Registro", "Solicitar Folios", "Anular",
                  "Enviar Documentos"):
        assert label in page
    data = {"name": "PyME Contadores", "sii_environment": "sandbox", "grant_sign": "on", "grant_send": "on",
            "grant_folios": "on", "notification_emails": ""}
    assert client.post(url, data).status_code == 302
    tenant = Tenant.objects.get(pk=cast.tenant_a.pk)
    assert tenant.permissions == {"sign", "send", "folios"}
    entry = AuditEntry.objects.filter(action=AuditAction.SETTINGS).latest("id")
    assert entry.details["changes"]["grant_send"] == {"before": False, "after": True}


def test_the_database_refuses_a_firm_or_a_client_requesting_nothing(cast) -> None:  # type: ignore[no-untyped-def]
    none = {f"grant_{code}": False for code in Permission.values}
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenant.objects.filter(pk=cast.tenant_a.pk).update(**none)
    with pytest.raises(IntegrityError), transaction.atomic():
        ClientCompany.objects.filter(pk=cast.company_a.pk).update(requested_permissions=[])


def test_a_client_override_is_copied_onto_its_jobs_and_handed_to_the_bot(
    cast, certificate_bundle, bot, enqueued, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    assert services.company_permissions_set(company=cast.company_a, permissions=["send", "sign", "annul"], actor=cast.admin_a)
    assert company_permissions(cast.company_a) == {"sign", "annul", "send"}
    job = new_job(cast, certificate_bundle, django_capture_on_commit_callbacks)
    assert job.permissions == {"sign", "annul", "send"}
    # Later changes don't rewrite the job: it keeps its copy.
    services.company_permissions_set(company=cast.company_a, permissions=None, actor=cast.admin_a)
    services.enrollment_job_execute(job_id=str(job.pk))
    (request,) = bot.requests
    assert request.permissions == {sii_bot.Permission.SIGN, sii_bot.Permission.ANNUL, sii_bot.Permission.SEND}
    entries = AuditEntry.objects.filter(action=AuditAction.SETTINGS, company=cast.company_a).order_by("id")
    assert [e.details["changes"]["requested_permissions"]["after"] for e in entries] == [["sign", "annul", "send"], None]


def test_the_override_refuses_unknown_or_empty_choices(cast) -> None:  # type: ignore[no-untyped-def]
    for bad, code in ((["admin", "root"], "invalid_permission"), ([], "no_permission")):
        with pytest.raises(services.ServiceError) as refused:
            services.company_permissions_set(company=cast.company_a, permissions=bad, actor=cast.admin_a)
        assert refused.value.code == code
    assert ClientCompany.objects.get(pk=cast.company_a.pk).requested_permissions is None


def test_permission_sync_compares_each_client_with_its_own_set(cast) -> None:  # type: ignore[no-untyped-def]
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        sii_user_rut=REP_RUT, sii_admin=False, sii_sign=True, sii_registry=False, sii_send=True,
        stage=CompanyStage.AUTHORIZED,
    )
    company = ClientCompany.objects.get(pk=cast.company_a.pk)
    assert list(selectors.companies_with_stale_permissions(tenant=cast.tenant_a)) == [company]  # firm: 3 others
    services.company_permissions_set(company=company, permissions=["sign", "send"], actor=cast.owner_a)
    assert not selectors.companies_with_stale_permissions(tenant=cast.tenant_a).exists()
    # A requested attribute the company's SII page does not offer cannot be held: not stale for it.
    services.company_permissions_set(company=company, permissions=["sign", "send", "folios"], actor=cast.owner_a)
    assert selectors.companies_with_stale_permissions(tenant=cast.tenant_a).exists()
    ClientCompany.objects.filter(pk=company.pk).update(sii_unavailable=["folios"])
    assert not selectors.companies_with_stale_permissions(tenant=cast.tenant_a).exists()


def test_an_unavailable_attribute_is_recorded_and_shown_in_spanish(
    client, cast, certificate_bundle, bot, enqueued, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    services.company_permissions_set(company=cast.company_a, permissions=["admin", "sign", "send"], actor=cast.admin_a)
    bot.result = sii_bot.EnrollmentResult(
        outcome="created", record=record(registry=False),
        offered_permissions=frozenset({sii_bot.Permission.ADMIN, sii_bot.Permission.SIGN, sii_bot.Permission.REGISTRY}),
        unavailable_permissions=frozenset({sii_bot.Permission.SEND}),
    )
    job = new_job(cast, certificate_bundle, django_capture_on_commit_callbacks)
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.SUCCEEDED and done.result["unavailable_permissions"] == ["send"]
    company = ClientCompany.objects.get(pk=cast.company_a.pk)
    assert company.sii_unavailable == ["send"] and company.sii_permissions == {"admin", "sign"}
    assert not selectors.companies_with_stale_permissions(tenant=cast.tenant_a).exists()
    note = "El SII no ofrece en esta empresa: Enviar Documentos."
    client.force_login(cast.client_a)
    assert note in client.get(reverse("client:job", kwargs={"job_id": job.pk})).content.decode()
    client.force_login(cast.staff_a)
    assert note in client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": job.pk})).content.decode()
    page = client.get(reverse("staff:company_detail", kwargs={"tenant_slug": "pyme", "company_id": company.pk}))
    assert "El SII no ofrece en esta empresa: Enviar Documentos" in page.content.decode()


def test_the_company_page_shows_the_client_its_authorization_and_its_jobs(client, cast) -> None:  # type: ignore[no-untyped-def]
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        sii_user_rut=REP_RUT, sii_admin=True, sii_sign=True, sii_registry=True, stage=CompanyStage.AUTHORIZED
    )
    failed = job_make(cast.company_a, status=JobStatus.FAILED, failure_code="certificate_revoked",
                      failure_message="El SII indica que su certificado digital fue revocado")
    client.force_login(cast.staff_a)
    url = reverse("staff:company_detail", kwargs={"tenant_slug": "pyme", "company_id": cast.company_a.pk})
    body = client.get(url).content.decode()
    assert "Comercial Demo SpA" in body and "76.086.428-5" in body
    assert "Autorizado</span> ALEX BRITO MARDONES" in body
    assert "Usuario Administrador, Firmar Documentos, Consulta/Registro" in body
    assert reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}) in body
    assert "Certificado revocado" in body and "Requiere acción de una persona" in body
    assert "Guardar permisos" not in body  # staff only watch
    dashboard = client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"})).content.decode()
    assert f'href="{url}"' in dashboard  # the company's name links to its page


def test_admins_set_the_override_on_the_company_page(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    page = reverse("staff:company_detail", kwargs={"tenant_slug": "pyme", "company_id": cast.company_a.pk})
    post = reverse("staff:company_permissions", kwargs={"tenant_slug": "pyme", "company_id": cast.company_a.pk})
    assert "Guardar permisos" in client.get(page).content.decode()
    response = client.post(post, {"permissions": ["folios", "send"]})
    assert response.status_code == 302 and response["Location"] == page
    assert ClientCompany.objects.get(pk=cast.company_a.pk).requested_permissions == ["folios", "send"]
    body = client.get(page).content.decode()
    assert "Solicitar Folios, Enviar Documentos" in body and "elección propia de este cliente" in body
    refused = client.post(post, {"permissions": []})
    assert refused.status_code == 400 and "Marque al menos un permiso" in refused.content.decode()
    assert client.post(post, {"use_firm_setting": "on"}).status_code == 302
    assert ClientCompany.objects.get(pk=cast.company_a.pk).requested_permissions is None


def test_another_tenant_s_company_page_is_404(client, cast) -> None:  # type: ignore[no-untyped-def]
    """Tenant B's owner asks for tenant A's company through B's own URLs (the two-tenant cast)."""
    Membership.objects.filter(tenant=cast.tenant_b, user=cast.staff_b).update(role=Role.OWNER)
    client.force_login(cast.staff_b)
    detail = reverse("staff:company_detail", kwargs={"tenant_slug": "otro", "company_id": cast.company_a.pk})
    permissions = reverse("staff:company_permissions", kwargs={"tenant_slug": "otro", "company_id": cast.company_a.pk})
    assert client.get(detail).status_code == 404
    assert client.post(permissions, {"permissions": ["send"]}).status_code == 404
    assert ClientCompany.objects.get(pk=cast.company_a.pk).requested_permissions is None
    own = reverse("staff:company_detail", kwargs={"tenant_slug": "otro", "company_id": cast.company_b.pk})
    assert client.get(own).status_code == 200  # so the 404s above are not vacuous


def test_the_company_page_shows_what_the_last_access_check_found(client, cast) -> None:  # type: ignore[no-untyped-def]
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        access_verified_at=timezone.now(), access_problem="permissions_below",
        access_state={"rut": "13322924-8", "name": "ALEX BRITO MARDONES", "permissions": ["admin"], "not_shown": []},
    )
    client.force_login(cast.staff_a)
    url = reverse("staff:company_detail", kwargs={"tenant_slug": "pyme", "company_id": cast.company_a.pk})
    page = html.unescape(client.get(url).content.decode())
    assert "Acceso del estudio en el SII" in page
    assert "Permisos inferiores a los solicitados" in page and "13.322.924-8" in page


def _stale(company: ClientCompany) -> ClientCompany:
    """`company` as authorized with fewer permissions than the firm requests (Firmar Documentos only)."""
    ClientCompany.objects.filter(pk=company.pk).update(
        sii_user_rut=REP_RUT, sii_admin=False, sii_sign=True, sii_registry=False, stage=CompanyStage.AUTHORIZED,
        sii_synced_at=timezone.now(),
    )
    return ClientCompany.objects.get(pk=company.pk)


def test_admins_apply_a_client_s_permissions_now_from_its_page(
    client, cast, certificate_bundle, enqueued, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    company = _stale(cast.company_a)
    services.certificate_store(company=company, bundle=certificate_bundle, uploaded_by=cast.client_a)
    page = reverse("staff:company_detail", kwargs={"tenant_slug": "pyme", "company_id": company.pk})
    sync = reverse("staff:company_permissions_sync", kwargs={"tenant_slug": "pyme", "company_id": company.pk})
    client.force_login(cast.admin_a)
    assert "Actualizar en el SII ahora" in client.get(page).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(sync, follow=True)
    assert response.redirect_chain == [(page, 302)]
    assert "Actualizando los permisos en el SII con el certificado guardado del cliente" in response.content.decode()
    (job,) = EnrollmentJob.objects.filter(company=company)
    assert set(job.permissions) == set(company_permissions(company)) and job.created_by == cast.admin_a
    entry = AuditEntry.objects.filter(action=AuditAction.SETTINGS).latest("created_at")
    assert "Comercial Demo SpA" in entry.summary and entry.actor == cast.admin_a
    # While that job is active the page says so instead of offering the button; a post (an old tab)
    # creates nothing and says why.
    assert "hay un trámite en curso" in (body := client.get(page).content.decode()) and "Actualizar en el SII ahora" not in body
    again = client.post(sync, follow=True).content.decode()
    assert "Ya hay un trámite en curso para este cliente" in again
    assert EnrollmentJob.objects.filter(company=company).count() == 1


def test_without_a_certificate_the_client_is_asked_and_a_matching_client_needs_nothing(
    client, cast, mailoutbox, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    company = _stale(cast.company_a)
    sync = reverse("staff:company_permissions_sync", kwargs={"tenant_slug": "pyme", "company_id": company.pk})
    client.force_login(cast.owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post(sync, follow=True).content.decode()
    assert "Le pedimos al cliente su certificado digital por correo" in body
    assert [m.to for m in mailoutbox] == [[company.owner_email]]
    assert not EnrollmentJob.objects.filter(company=company).exists()
    ClientCompany.objects.filter(pk=company.pk).update(sii_admin=True, sii_registry=True)
    body = client.post(sync, follow=True).content.decode()
    assert "ya coinciden con los solicitados" in body and "Actualizar en el SII ahora" not in body
    assert len(mailoutbox) == 1


def test_staff_members_and_other_tenants_cannot_apply_permissions(client, cast, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    company = _stale(cast.company_a)
    page = reverse("staff:company_detail", kwargs={"tenant_slug": "pyme", "company_id": company.pk})
    sync = reverse("staff:company_permissions_sync", kwargs={"tenant_slug": "pyme", "company_id": company.pk})
    client.force_login(cast.staff_a)
    body = client.get(page).content.decode()
    assert "difieren de los solicitados" in body and "Actualizar en el SII ahora" not in body
    assert client.post(sync).status_code == 404
    Membership.objects.filter(tenant=cast.tenant_b, user=cast.staff_b).update(role=Role.OWNER)
    client.force_login(cast.staff_b)
    other = reverse("staff:company_permissions_sync", kwargs={"tenant_slug": "otro", "company_id": company.pk})
    assert client.post(other).status_code == 404
    assert mailoutbox == [] and not EnrollmentJob.objects.filter(company=company).exists()


def test_a_client_no_longer_served_has_no_permissions_to_apply(client, cast, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    company = _stale(cast.company_a)
    ClientCompany.objects.filter(pk=company.pk).update(relationship=Relationship.ENDED)
    sync = reverse("staff:company_permissions_sync", kwargs={"tenant_slug": "pyme", "company_id": company.pk})
    client.force_login(cast.admin_a)
    body = client.post(sync, follow=True).content.decode()
    assert "ya no está vigente" in body and "Actualizar en el SII ahora" not in body
    assert mailoutbox == [] and not EnrollmentJob.objects.filter(company=company).exists()
