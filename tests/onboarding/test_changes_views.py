"""The pages of revocation, change of representative and permission changes (staff and client), with
jobs enqueued to a mock: what each page says, what its POST does, roles, and kind-aware timelines."""
from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from onboarding import services
from onboarding.models import (
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobEvent,
    JobKind,
    JobStatus,
    Relationship,
    Representative,
)
from tests.onboarding.staff_factories import staff_url

# Every job these pages create is enqueued to a mock.
pytestmark = pytest.mark.usefixtures("enqueued")

OLD_RUT, NEW_RUT = "13322924-8", "14567890-0"


def authorized(company: ClientCompany, rut: str = OLD_RUT) -> ClientCompany:
    ClientCompany.objects.filter(pk=company.pk).update(
        sii_user_rut=rut, sii_admin=True, sii_sign=True, sii_registry=True, stage=CompanyStage.AUTHORIZED
    )
    company.refresh_from_db()
    return company


def test_staff_company_end_confirms_then_revokes(client, cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    client.force_login(cast.staff_a)
    assert client.get(staff_url("company_end", company_id=cast.company_a.pk)).status_code == 404  # staff role
    client.force_login(cast.admin_a)
    page = client.get(staff_url("company_end", company_id=cast.company_a.pk)).content.decode()
    assert 'Se QUITARÁ a <strong>ALEX BRITO MARDONES</strong> (RUT <span class="rut">13.322.924-8</span>)' in page
    assert "se hará de inmediato" in page
    response = client.post(staff_url("company_end", company_id=cast.company_a.pk))
    job = EnrollmentJob.objects.get(company=cast.company_a)
    assert response.status_code == 302 and response["Location"] == staff_url("job_detail", job_id=job.pk)
    assert job.kind == JobKind.REVOKE
    detail = client.get(response["Location"]).content.decode()
    assert "Quitar representante" in detail and "Representante a quitar" in detail


def test_staff_company_end_while_waiting_for_the_certificate_offers_no_second_click(client, cast) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    client.force_login(cast.admin_a)
    url = staff_url("company_end", company_id=cast.company_a.pk)
    client.post(url)  # no stored certificate: the client is asked for it
    page = client.get(url).content.decode()
    assert "La relación ya está en término" in page and 'type="submit">Terminar la relación' not in page
    again = client.post(url, follow=True).content.decode()
    assert "Ya le pedimos al cliente su certificado" in again


def test_owner_replaces_the_representative_through_a_confirmation(client, cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)
    client.force_login(cast.owner_a)
    url = staff_url("representative_replace", representative_id=old.pk)
    assert "Reemplazar" in client.get(staff_url("settings")).content.decode()
    assert "Elija al nuevo representante" in client.get(url).content.decode()
    bad = client.post(url, {"nuevo": "otro", "nuevo_rut": "1-1", "nuevo_nombre": "X"})
    assert "no es válido" in bad.content.decode() or "persona natural" in bad.content.decode()
    confirm = client.post(url, {"nuevo": "otro", "nuevo_rut": "14.567.890-0", "nuevo_nombre": "Marcela Rojas"})
    page = confirm.content.decode()
    assert "Confirme el cambio" in page and "Comercial Demo SpA" in page and "de inmediato" in page
    assert not EnrollmentJob.objects.exists() and Representative.objects.get(pk=old.pk).is_active  # not yet
    done = client.post(url, {"nuevo": "otro", "nuevo_rut": "14567890-0", "nuevo_nombre": "MARCELA ROJAS", "confirmar": "1"})
    assert done.status_code == 302 and done["Location"] == staff_url("dashboard")
    job = EnrollmentJob.objects.get(company=cast.company_a)
    assert (job.kind, job.user_rut, job.old_user_rut) == (JobKind.REPLACE, NEW_RUT, OLD_RUT)
    assert not Representative.objects.get(pk=old.pk).is_active


def test_saving_new_permissions_offers_the_sii_update(client, cast) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    client.force_login(cast.owner_a)
    response = client.post(staff_url("settings"), {
        "name": "PyME Contadores", "sii_environment": "sandbox", "grant_admin": "on", "grant_sign": "on",
        "notification_emails": "",
    })
    assert response.status_code == 302 and response["Location"] == staff_url("permissions_sync")
    page = client.get(response["Location"]).content.decode()
    assert "Comercial Demo SpA" in page and "Actualizar en el SII" in page and "Se pedirá al cliente que suba su certificado" in page
    assert client.post(staff_url("permissions_sync")).status_code == 302
    assert not EnrollmentJob.objects.exists()  # no certificate stored: the client was emailed instead


def test_client_consent_screen_for_a_revocation(client, cast, certificate_bundle, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    client.force_login(cast.client_a)
    company_page = client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})).content.decode()
    assert "Terminar la relación con PyME Contadores" in company_page
    end_url = reverse("client:company_end", kwargs={"company_id": cast.company_a.pk})
    assert "Se ELIMINARÁ a <strong>ALEX BRITO MARDONES</strong>" in client.get(end_url).content.decode()
    upload_url = reverse("client:certificate_upload", kwargs={"company_id": cast.company_a.pk})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(end_url)
    assert response["Location"] == upload_url
    cast.company_a.refresh_from_db()
    assert cast.company_a.relationship == Relationship.ENDING
    # The client is taken to the upload: no email saying "<firm> needs a change", as if the firm asked.
    assert mail.outbox == []
    # Ending again (e.g. Back and the button once more) takes them to the upload again, not to an error.
    assert client.post(end_url)["Location"] == upload_url
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    url = reverse("client:consent", kwargs={"company_id": cast.company_a.pk, "certificate_id": certificate.pk})
    page = client.get(url).content.decode()
    assert "Usuario que se ELIMINARÁ" in page and "ALEX BRITO MARDONES" in page and "13.322.924-8" in page
    assert "Usuario que se registrará" not in page
    from onboarding.selectors import change_consent_terms

    terms = change_consent_terms(company=cast.company_a)
    response = client.post(url, {"consent": "on", "terms_version": terms.version})
    job = EnrollmentJob.objects.get(company=cast.company_a)
    assert response["Location"] == reverse("client:job", kwargs={"job_id": job.pk}) and job.kind == JobKind.REVOKE
    status = client.get(response["Location"]).content.decode()
    assert "Eliminar al usuario" in status and "Grabar Usuario" not in status


def test_client_consent_screen_for_a_replacement_names_both(client, cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)
    services.representative_replace(tenant=cast.tenant_a, old=old, new_rut=NEW_RUT, new_name="Marcela Rojas",
                                    actor=cast.owner_a)
    client.force_login(cast.client_a)
    company_page = client.get(reverse("client:company", kwargs={"company_id": cast.company_a.pk})).content.decode()
    assert "Cambio pendiente en el SII" in company_page
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    url = reverse("client:consent", kwargs={"company_id": cast.company_a.pk, "certificate_id": certificate.pk})
    page = client.get(url).content.decode()
    assert "Usuario que se registrará" in page and "MARCELA ROJAS" in page and "14.567.890-0" in page
    assert "Usuario que se ELIMINARÁ" in page and "ALEX BRITO MARDONES" in page
    assert "Firmar Documentos: <strong>SI</strong>" in page
    stale = client.post(url, {"consent": "on", "terms_version": "viejo"})
    assert stale.status_code == 200 and not EnrollmentJob.objects.exists()


def test_staff_job_detail_names_the_removal_steps(client, cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    authorized(cast.company_a)
    services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    job = services.company_relationship_end(company=cast.company_a, actor=cast.owner_a)
    JobEvent.objects.create(tenant=cast.tenant_a, job=job, step="delete", status="started", message="")
    EnrollmentJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    client.force_login(cast.staff_a)
    page = client.get(staff_url("job_detail", job_id=job.pk)).content.decode()
    assert "Eliminar al usuario" in page
