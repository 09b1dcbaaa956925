"""Re-runs from the firm's side: one from the job page, many from the dashboard; each a new attempt
linked to the failed one (never a reset), audited; refusals reported per row in Spanish; only
owners and admins may do it (404 for staff)."""
from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from onboarding import services
from onboarding.models import AuditAction, AuditEntry, ClientCompany, CompanyStage, EnrollmentJob, JobStatus
from tests.onboarding.staff_factories import certificate_make, company_make, job_make

pytestmark = pytest.mark.django_db


def text(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(response.content.decode())).split())


@pytest.fixture
def failed(cast, certificate_bundle):  # type: ignore[no-untyped-def]
    """`company_a`'s first attempt, FAILED, with its certificate still stored."""
    return job_make(cast.company_a, status=JobStatus.FAILED, certificate=certificate_make(cast.company_a, certificate_bundle))


def test_admin_reruns_one_failed_job_as_a_new_linked_attempt(client, cast, failed, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    page = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}))
    assert "Reintentar" in text(page) and "Re-ejecutar" not in text(page)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("staff:job_rerun", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}))
    new = EnrollmentJob.objects.get(rerun_of=failed)
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": new.pk})
    assert (new.attempt, new.status, new.created_by, new.certificate_id) == (2, JobStatus.QUEUED, cast.admin_a, failed.certificate_id)
    assert len(callbacks) == 1  # enqueued once the transaction commits
    failed.refresh_from_db()
    assert failed.status == JobStatus.FAILED and failed.attempt == 1  # history untouched
    assert ClientCompany.objects.get(pk=cast.company_a.pk).stage == CompanyStage.QUEUED
    entry = AuditEntry.objects.get(tenant=cast.tenant_a, action=AuditAction.RERUN)
    assert entry.actor == cast.admin_a and entry.details["new_job"] == str(new.pk)

    detail = text(client.get(response["Location"]))
    assert "Reintento en cola: Autorización, intento 2" in detail and "Autorización, intento 1" in detail
    # The old attempt's page no longer offers a re-run, and links the attempts.
    old = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}))
    assert reverse("staff:job_rerun", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}) not in old.content.decode()
    assert str(new.pk) in old.content.decode()


def test_owner_may_rerun_too(client, cast, failed) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    client.post(reverse("staff:job_rerun", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}))
    assert EnrollmentJob.objects.filter(rerun_of=failed, created_by=cast.owner_a).exists()


def test_staff_neither_sees_the_button_nor_can_post(client, cast, failed) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    page = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}))
    assert page.status_code == 200 and "reejecutar" not in page.content.decode()
    assert client.post(reverse("staff:job_rerun", kwargs={"tenant_slug": "pyme", "job_id": failed.pk})).status_code == 404
    assert client.post(reverse("staff:rerun_bulk", kwargs={"tenant_slug": "pyme"}), {"job": [str(failed.pk)]}).status_code == 404
    assert not EnrollmentJob.objects.filter(rerun_of=failed).exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("certificate_gone", "El certificado de este cliente ya no está guardado"),
        ("already_rerun", "Este intento ya fue reintentado"),
        ("active_attempt", "Ya hay una autorización en curso"),
    ],
)
def test_single_rerun_refusals_are_shown(client, cast, failed, setup, message) -> None:  # type: ignore[no-untyped-def]
    if setup == "certificate_gone":
        services.certificate_destroy(certificate=failed.certificate, reason="retention")
    elif setup == "already_rerun":
        services.enrollment_job_rerun(job=failed, actor=cast.owner_a)
        EnrollmentJob.objects.filter(rerun_of=failed).update(status=JobStatus.FAILED)
    else:
        job_make(cast.company_a, status=JobStatus.QUEUED)
    before = EnrollmentJob.objects.count()
    client.force_login(cast.admin_a)
    response = client.post(reverse("staff:job_rerun", kwargs={"tenant_slug": "pyme", "job_id": failed.pk}), follow=True)
    assert message in text(response)
    assert EnrollmentJob.objects.count() == before


def test_bulk_rerun_reports_each_row(client, cast, failed, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    # A second failed client, fine; a third whose certificate is gone; a fourth with an attempt in flight.
    ok = company_make(cast.tenant_a, "96874030-K", "Segunda SpA")
    ok_job = job_make(ok, status=JobStatus.FAILED, certificate=certificate_make(ok, certificate_bundle))
    gone = company_make(cast.tenant_a, "60803000-K", "Sin Certificado Ltda.")
    gone_job = job_make(gone, status=JobStatus.FAILED, certificate=certificate_make(gone, certificate_bundle))
    services.certificate_destroy(certificate=gone_job.certificate, reason="retention")
    busy = company_make(cast.tenant_a, "76369187-K", "Ocupada SpA")
    busy_job = job_make(busy, status=JobStatus.FAILED, certificate=certificate_make(busy, certificate_bundle))
    job_make(busy, status=JobStatus.RUNNING)

    client.force_login(cast.admin_a)
    dashboard = client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"}), {"estado": "failed"})
    for job in (failed, ok_job):
        assert f'value="{job.pk}"' in dashboard.content.decode()
    # No checkbox where a re-run is impossible (a forged selection still gets its reason below).
    assert f'value="{gone_job.pk}"' not in dashboard.content.decode()
    response = client.post(
        reverse("staff:rerun_bulk", kwargs={"tenant_slug": "pyme"}),
        {"job": [str(failed.pk), str(ok_job.pk), str(gone_job.pk), str(busy_job.pk), str(failed.pk), "basura"],
         "volver": "estado=failed"},
    )
    assert response.status_code == 200
    outcomes = response.context["outcomes"]
    assert [o.ok for o in outcomes] == [True, True, False, False, False]
    assert outcomes[2].company == gone and "ya no está guardado" in outcomes[2].message
    assert outcomes[3].company == busy and "en curso" in outcomes[3].message
    assert outcomes[4].message == "Trabajo no encontrado."
    body = text(response)
    assert "2 en cola" in body and "3 rechazadas" in body and "Sin Certificado Ltda." in body
    assert "/estudio/pyme/?estado=failed" in response.content.decode()  # back to the same filters
    assert EnrollmentJob.objects.filter(rerun_of__in=[failed, ok_job]).count() == 2
    assert not EnrollmentJob.objects.filter(rerun_of__in=[gone_job, busy_job]).exists()
    assert AuditEntry.objects.filter(tenant=cast.tenant_a, action=AuditAction.RERUN).count() == 2

    # Submitting the same selection again re-runs nothing twice.
    again = client.post(reverse("staff:rerun_bulk", kwargs={"tenant_slug": "pyme"}), {"job": [str(failed.pk)]})
    assert not again.context["outcomes"][0].ok
    assert EnrollmentJob.objects.filter(rerun_of=failed).count() == 1


def test_bulk_rerun_without_selection_or_with_too_many(client, cast, failed) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    response = client.post(reverse("staff:rerun_bulk", kwargs={"tenant_slug": "pyme"}), {"volver": "q=demo"}, follow=True)
    assert "Seleccione al menos un cliente" in text(response)
    assert response.redirect_chain[-1][0] == "/estudio/pyme/?q=demo"
    many = [f"00000000-0000-0000-0000-{i:012d}" for i in range(services.RERUN_BULK_MAX + 1)]
    response = client.post(reverse("staff:rerun_bulk", kwargs={"tenant_slug": "pyme"}), {"job": many}, follow=True)
    assert f"como máximo {services.RERUN_BULK_MAX}" in text(response)
    # An attempt to bounce the user elsewhere through "volver" is ignored.
    response = client.post(reverse("staff:rerun_bulk", kwargs={"tenant_slug": "pyme"}), {"volver": "//malo.cl/x"})
    assert response["Location"] == "/estudio/pyme/"
