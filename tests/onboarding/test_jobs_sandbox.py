"""A job run by the real service, the real bot and headless Chromium against the SII sandbox,
in this process (the worker process around it is covered by the browser tests)."""
from __future__ import annotations

from unittest import mock

import pytest

from onboarding import services
from onboarding.models import ArtifactKind, Certificate, JobArtifact, JobStatus
from sii_bot.certificates import open_pkcs12

pytestmark = [pytest.mark.sandbox, pytest.mark.browser]


@pytest.fixture
def sandbox_job(cast, sandbox, monkeypatch, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """A QUEUED job for the cast's company (the sandbox's demo company) with the demo certificate."""
    from onboarding import tasks

    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tasks.enrollment_job_run, "delay", mock.Mock())
    demo = sandbox.pki["demo"]
    bundle = open_pkcs12(demo.path.read_bytes(), demo.password)
    certificate = services.certificate_store(company=cast.company_a, bundle=bundle, uploaded_by=cast.client_a)
    with django_capture_on_commit_callbacks(execute=True):
        return services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)


def test_job_authorizes_the_representative_on_the_sandbox(sandbox, sandbox_job) -> None:  # type: ignore[no-untyped-def]
    done = services.enrollment_job_execute(job_id=str(sandbox_job.pk))
    assert done.status == JobStatus.SUCCEEDED, (done.failure_code, done.failure_detail)
    assert done.outcome == "created"
    assert done.result["user_rut"] == "13322924-8" and done.result["admin"] and done.result["sign"] and done.result["registry"]
    users = {u["rut"]: u for u in sandbox.users("76086428-5")}
    assert users["13322924-8"]["admin"] and users["13322924-8"]["sign"] and users["13322924-8"]["registry"]
    steps = [e.step for e in done.events.filter(status="done")]
    assert steps[:3] == ["open_page", "login", "company"] and "save" in steps and "logout" in steps
    # The evidence pages, sealed: SII's confirmation and SII's result.
    shots = JobArtifact.objects.filter(job=done, kind=ArtifactKind.SCREENSHOT)
    assert sorted(shots.values_list("step", flat=True)) == ["confirm", "result"]
    assert not Certificate.objects.get(pk=sandbox_job.certificate_id).is_usable


def test_holder_not_administrator_saves_nothing(sandbox, sandbox_job) -> None:  # type: ignore[no-untyped-def]
    sandbox.set_faults({"holder_not_admin": True})
    before = sandbox.users("76086428-5")
    done = services.enrollment_job_execute(job_id=str(sandbox_job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == "holder_not_administrator"
    assert sandbox.users("76086428-5") == before
    assert Certificate.objects.get(pk=sandbox_job.certificate_id).is_usable  # kept for a re-run


def test_a_client_override_reaches_the_sii_and_an_unoffered_attribute_is_reported(
    client, cast, sandbox, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """The firm asks this client (its own choice) for Firmar Documentos and Enviar Documentos; the demo
    company is a MIPYME one (three checkboxes): Firmar is granted, Enviar is reported, not invented."""
    from django.urls import reverse

    from onboarding import tasks
    from onboarding.models import ClientCompany

    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tasks.enrollment_job_run, "delay", mock.Mock())
    services.company_permissions_set(company=cast.company_a, permissions=["sign", "send"], actor=cast.admin_a)
    demo = sandbox.pki["demo"]
    bundle = open_pkcs12(demo.path.read_bytes(), demo.password)
    certificate = services.certificate_store(company=cast.company_a, bundle=bundle, uploaded_by=cast.client_a)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)
    assert job.permissions == {"sign", "send"}
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.SUCCEEDED, (done.failure_code, done.failure_detail)
    assert done.result["unavailable_permissions"] == ["send"]
    user = {u["rut"]: u for u in sandbox.users("76086428-5")}["13322924-8"]
    assert (user["admin"], user["sign"], user["registry"]) == (False, True, False)
    company = ClientCompany.objects.get(pk=cast.company_a.pk)
    assert company.sii_permissions == {"sign"} and company.sii_unavailable == ["send"]
    client.force_login(cast.client_a)
    page = client.get(reverse("client:job", kwargs={"job_id": done.pk})).content.decode()
    assert "El SII no ofrece en esta empresa: Enviar Documentos." in page
