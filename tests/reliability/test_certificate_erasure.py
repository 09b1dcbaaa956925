"""A client's certificate is kept after a failure only while a re-run is possible, and its owner can
delete it at once from the failed job's page.

After any failure other than a certificate the SII refused, the sealed key is kept until the retention
period ends (AUTORIZA_CERT_RETENTION_DAYS after the upload), so the firm can re-run without asking for
it again. When no re-run is possible any more it is erased at once: the relationship ended (at once,
or by a succeeded revocation) or the company was removed. The owner's "Eliminar mi certificado ahora"
(with a confirmation page, audited) is on the failed job's page; nobody else reaches it (404)."""
from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

import sii_bot
from onboarding import services
from onboarding.models import (
    AuditAction,
    AuditEntry,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    JobEvent,
    JobStatus,
    Relationship,
)
from sii_bot import errors

pytestmark = pytest.mark.usefixtures("enqueued")


def failing_enroll(request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
    raise errors.HolderNotAdministrator("holder is not admin", step="company")


def revoked(request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
    return sii_bot.RevocationResult(outcome="revoked", company_rut=request.company_rut, user_rut=request.user_rut,
                                    final_entries={request.user_rut: None})


@pytest.fixture
def failed_job(cast, certificate_bundle, monkeypatch) -> EnrollmentJob:  # type: ignore[no-untyped-def]
    """A first authorization that failed (the holder does not administer the company): certificate kept."""
    monkeypatch.setattr(sii_bot, "enroll", failing_enroll)
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    job = services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and Certificate.objects.get(pk=certificate.pk).is_usable
    return done


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


# --- No re-run possible: erased at once ---------------------------------------------------------------


def test_ending_a_relationship_erases_the_kept_certificate_at_once(cast, failed_job) -> None:  # type: ignore[no-untyped-def]
    services.company_relationship_end(company=cast.company_a, actor=cast.client_a)  # nobody in the SII: ENDED now
    company = ClientCompany.objects.get(pk=cast.company_a.pk)
    assert (company.relationship, company.stage) == (Relationship.ENDED, CompanyStage.REVOKED)
    certificate = Certificate.objects.get(pk=failed_job.certificate_id)
    assert not certificate.is_usable and certificate.destroy_reason == "relationship_ended"
    assert certificate.sealed_material is None and certificate.wrapped_key is None
    entry = AuditEntry.objects.get(action=AuditAction.DELETION, details__certificate=str(certificate.pk))
    assert entry.actor == cast.client_a and entry.details["reason"] == "relationship_ended"


def test_a_succeeded_revocation_erases_every_stored_certificate_of_the_company(  # type: ignore[no-untyped-def]
    cast, certificate_bundle, monkeypatch
) -> None:
    monkeypatch.setattr(sii_bot, "revoke", revoked)
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(sii_user_rut="13322924-8", stage=CompanyStage.AUTHORIZED)
    older = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    newer = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    job = services.company_relationship_end(company=cast.company_a, actor=cast.owner_a)
    assert job.kind == "revoke" and job.certificate_id == newer.pk
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.SUCCEEDED
    assert ClientCompany.objects.get(pk=cast.company_a.pk).relationship == Relationship.ENDED
    reasons = dict(Certificate.objects.filter(company=cast.company_a).values_list("pk", "destroy_reason"))
    assert reasons == {newer.pk: "job_succeeded", older.pk: "relationship_ended"}
    assert not Certificate.objects.filter(company=cast.company_a, sealed_material__isnull=False).exists()


def test_removing_a_company_erases_its_certificates_first_and_is_audited(cast, failed_job) -> None:  # type: ignore[no-untyped-def]
    certificate_id = failed_job.certificate_id
    services.client_company_remove(company=cast.company_a, actor=cast.owner_a)
    assert not ClientCompany.objects.filter(pk=cast.company_a.pk).exists()
    assert not Certificate.objects.filter(pk=certificate_id).exists()
    erased = AuditEntry.objects.get(action=AuditAction.DELETION, details__certificate=str(certificate_id))
    assert erased.details["reason"] == "company_removed" and erased.actor == cast.owner_a
    removed = AuditEntry.objects.get(action=AuditAction.DELETION, details__rut="76086428-5")
    assert removed.details["certificates_erased"] == 1 and removed.tenant_id == cast.tenant_a.pk


def test_a_company_with_a_job_in_flight_is_not_removed(cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)
    with pytest.raises(services.ServiceError) as refused:
        services.client_company_remove(company=cast.company_a, actor=cast.owner_a)
    assert refused.value.code == "job_already_active"
    assert Certificate.objects.get(pk=certificate.pk).is_usable


def test_the_platform_admin_removes_a_company_through_the_service(client, cast, failed_job) -> None:  # type: ignore[no-untyped-def]
    root = get_user_model().objects.create_superuser(username="root@autoriza.cl", email="root@autoriza.cl", password="x")
    client.force_login(root)
    url = reverse("admin:onboarding_clientcompany_delete", args=[cast.company_a.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not ClientCompany.objects.filter(pk=cast.company_a.pk).exists()
    assert AuditEntry.objects.filter(action=AuditAction.DELETION, details__reason="company_removed").count() == 1


# --- The owner deletes it now, from the failed job's page ---------------------------------------------


def test_the_failed_job_page_says_what_is_kept_until_when_and_how_to_delete_it(  # type: ignore[no-untyped-def]
    client, cast, failed_job, settings
) -> None:
    from django.utils import timezone

    client.force_login(cast.client_a)
    page = text(client.get(reverse("client:job", kwargs={"job_id": failed_job.pk})))
    certificate = Certificate.objects.get(pk=failed_job.certificate_id)
    erase_by = timezone.localtime(certificate.created_at + timedelta(days=settings.AUTORIZA_CERT_RETENTION_DAYS, hours=1))
    months = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
              "noviembre", "diciembre"]
    when = f"{erase_by.day} de {months[erase_by.month - 1]} de {erase_by.year}, {erase_by:%H:%M}"
    assert (
        f"Guardamos cifrado el certificado de {certificate.holder_name} (su contraseña no se guarda nunca), solo para "
        f"que PyME Contadores pueda volver a intentarlo sin pedírselo de nuevo. Lo eliminamos automáticamente a más "
        f"tardar el {when} (7 días después de que lo subió), en cuanto un nuevo intento termine bien, o de inmediato "
        "si termina la relación con PyME Contadores."
    ) in page
    assert reverse("client:job_certificate_delete", kwargs={"job_id": failed_job.pk}) in page
    assert "Eliminar mi certificado ahora" in page


def test_the_owner_deletes_the_certificate_now_after_confirming(client, cast, failed_job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    url = reverse("client:job_certificate_delete", kwargs={"job_id": failed_job.pk})
    confirm = text(client.get(url))
    assert "Si lo elimina ahora, se borra de inmediato y para siempre de nuestros sistemas" in confirm
    assert Certificate.objects.get(pk=failed_job.certificate_id).is_usable  # asking is not deleting

    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("client:job", kwargs={"job_id": failed_job.pk})
    certificate = Certificate.objects.get(pk=failed_job.certificate_id)
    assert not certificate.is_usable and certificate.destroy_reason == "client_deleted"
    assert certificate.sealed_material is None and certificate.wrapped_key is None
    entry = AuditEntry.objects.get(action=AuditAction.DELETION)
    assert entry.actor == cast.client_a and entry.details == {"certificate": str(certificate.pk), "reason": "client_deleted"}
    assert JobEvent.objects.filter(job=failed_job, step="certificate_deleted").count() == 1
    page = text(client.get(response["Location"]))
    assert "Eliminamos su certificado digital de nuestros sistemas." in page
    assert "Su certificado digital ya no está guardado en nuestros sistemas: lo eliminamos el " in page
    assert " a su pedido." in page and "Eliminar mi certificado ahora" not in page
    with pytest.raises(services.ServiceError) as refused:  # and nothing is left to re-run with
        services.enrollment_job_rerun(job=failed_job, actor=cast.admin_a)
    assert refused.value.code == "certificate_missing"


def test_a_certificate_a_running_attempt_holds_cannot_be_deleted_from_the_old_page(  # type: ignore[no-untyped-def]
    client, cast, failed_job
) -> None:
    services.enrollment_job_rerun(job=failed_job, actor=cast.admin_a)
    client.force_login(cast.client_a)
    page = text(client.get(reverse("client:job", kwargs={"job_id": failed_job.pk})))
    assert "Ahora lo está usando un nuevo intento en curso: podrá eliminarlo cuando termine." in page
    response = client.post(reverse("client:job_certificate_delete", kwargs={"job_id": failed_job.pk}), follow=True)
    assert "se está usando en una autorización en curso" in text(response)
    assert Certificate.objects.get(pk=failed_job.certificate_id).is_usable


@pytest.mark.parametrize("who", ["anonymous", "other_client", "staff_b", "firm_owner_a"])
def test_nobody_but_the_owner_reaches_the_delete_now_action(client, cast, failed_job, who: str) -> None:  # type: ignore[no-untyped-def]
    if who == "other_client":
        other = get_user_model().objects.create_user(username="otro@cliente.cl", email="otro@cliente.cl", password="x")
        services.client_company_create(tenant=cast.tenant_a, rut="76.369.187-K", legal_name="Otra SpA", owner=other)
        client.force_login(other)
    elif who == "staff_b":
        client.force_login(cast.staff_b)
    elif who == "firm_owner_a":
        client.force_login(cast.owner_a)
    url = reverse("client:job_certificate_delete", kwargs={"job_id": failed_job.pk})
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert Certificate.objects.get(pk=failed_job.certificate_id).is_usable
    assert not AuditEntry.objects.filter(action=AuditAction.DELETION).exists()
