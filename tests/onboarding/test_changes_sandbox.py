"""Revocation and change of representative run by the real services, the real bot and headless
Chromium against the SII sandbox, in this process (like test_jobs_sandbox.py)."""
from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from onboarding import services
from onboarding.models import (
    Certificate,
    ClientCompany,
    CompanyStage,
    JobKind,
    JobStatus,
    Relationship,
    Representative,
)
from sii_bot.certificates import open_pkcs12

pytestmark = [pytest.mark.sandbox, pytest.mark.browser]

COMPANY = "76086428-5"  # the sandbox's demo company = the cast's company_a
OLD = "13322924-8"  # the cast's representative, ALEX BRITO MARDONES
NEW = "14567890-0"  # MARCELA IGNACIA ROJAS DÍAZ
SAVE_CGI = "eu_actualiza_usuario"  # the sandbox's CGI behind "Guardar Cambios" (update and delete)


def users(sandbox: Any) -> dict[str, dict[str, Any]]:
    return {u["rut"]: u for u in sandbox.users(COMPANY)}


@pytest.fixture
def world(cast, sandbox, monkeypatch):  # type: ignore[no-untyped-def]
    """The sandbox holds the old representative in the demo company, and so does the company row;
    the client's certificate (the sandbox's demo holder) is stored."""
    from onboarding import tasks

    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tasks.enrollment_job_run, "delay", mock.Mock())
    sandbox.add_user(COMPANY, OLD, admin=True, sign=True, registry=True)
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        sii_user_rut=OLD, sii_admin=True, sii_sign=True, sii_registry=True, stage=CompanyStage.AUTHORIZED
    )
    cast.company_a.refresh_from_db()
    demo = sandbox.pki["demo"]
    bundle = open_pkcs12(demo.path.read_bytes(), demo.password)
    services.certificate_store(company=cast.company_a, bundle=bundle, uploaded_by=cast.client_a)
    return cast


def execute(job: Any, capture: Any) -> Any:
    with capture(execute=True):
        return services.enrollment_job_execute(job_id=str(job.pk))


def replace_job(cast: Any, capture: Any) -> Any:
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD)
    with capture(execute=True):
        report = services.representative_replace(
            tenant=cast.tenant_a, old=old, new_rut=NEW, new_name="Marcela Ignacia Rojas Díaz", actor=cast.owner_a
        )
    (job,) = report.jobs
    return job


def test_revoke_removes_exactly_the_representative(world, sandbox, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    before = users(sandbox)
    assert OLD in before
    with django_capture_on_commit_callbacks(execute=True):
        job = services.company_relationship_end(company=world.company_a, actor=world.admin_a)
    assert job.kind == JobKind.REVOKE
    done = execute(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED, (done.failure_code, done.failure_detail)
    assert done.outcome == "revoked"
    after = users(sandbox)
    assert set(after) == set(before) - {OLD}
    assert all(after[rut] == before[rut] for rut in after)  # nobody else touched
    steps = [e.step for e in done.events.filter(status="done")]
    assert "delete" in steps and "verify" in steps and "save" not in steps
    company = ClientCompany.objects.get(pk=world.company_a.pk)
    assert (company.relationship, company.stage, company.sii_user_rut) == (Relationship.ENDED, CompanyStage.REVOKED, "")
    assert not Certificate.objects.get(pk=job.certificate_id).is_usable


def test_change_of_representative_ends_with_only_the_new_one(world, sandbox, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    before = users(sandbox)
    job = replace_job(world, django_capture_on_commit_callbacks)
    done = execute(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED, (done.failure_code, done.failure_detail)
    assert (done.result["add_outcome"], done.result["remove_outcome"]) == ("created", "revoked")
    after = users(sandbox)
    assert set(after) == (set(before) - {OLD}) | {NEW}
    assert (after[NEW]["admin"], after[NEW]["sign"], after[NEW]["registry"]) == (True, True, True)
    assert all(after[rut] == before[rut] for rut in before if rut != OLD)
    company = ClientCompany.objects.get(pk=world.company_a.pk)
    assert (company.sii_user_rut, company.stage) == (NEW, CompanyStage.AUTHORIZED)


def test_failure_between_add_and_remove_is_clear_and_a_rerun_completes_it(
    world, sandbox, settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 0
    before = users(sandbox)
    job = replace_job(world, django_capture_on_commit_callbacks)
    sandbox.set_faults({"http500_rate": 1.0, "http500_steps": [SAVE_CGI]})  # only the edit screen's save
    failed = execute(job, django_capture_on_commit_callbacks)
    assert failed.status == JobStatus.FAILED and failed.failure_code == "replacement_incomplete", failed.failure_detail
    assert failed.failure_retryable and "YA QUEDÓ AUTORIZADO" in failed.failure_message
    assert "sigue autorizado" in failed.failure_message
    middle = users(sandbox)
    assert set(middle) == set(before) | {NEW}  # the old one still there, the new one added: never neither
    company = ClientCompany.objects.get(pk=world.company_a.pk)
    assert company.sii_user_rut == NEW and company.stage == CompanyStage.FAILED

    sandbox.clear_faults()
    again = services.enrollment_job_rerun(job=failed, actor=world.owner_a)
    assert again.kind == JobKind.REPLACE and again.old_user_rut == OLD
    done = execute(again, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED, (done.failure_code, done.failure_detail)
    assert (done.result["add_outcome"], done.result["remove_outcome"]) == ("already_authorized", "revoked")
    assert set(users(sandbox)) == (set(before) - {OLD}) | {NEW}
    company.refresh_from_db()
    assert (company.sii_user_rut, company.stage) == (NEW, CompanyStage.AUTHORIZED)
