"""A change of representative made with the firm's own keys, by the real services, the real bot and
headless Chromium against the SII sandbox: the old representative's certificate adds the new one,
the new one's certificate removes the old one, and the client is never e-mailed."""
from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from onboarding import services
from onboarding.domain.firm_access import CONSENT_EDITION
from onboarding.models import AuditAction, AuditEntry, ClientCompany, CompanyStage, JobStatus, Representative
from onboarding.services.firm_keys import firm_key_store
from sii_bot.certificates import open_pkcs12

pytestmark = [pytest.mark.sandbox, pytest.mark.browser, pytest.mark.usefixtures("enqueued")]

COMPANY = "76086428-5"  # the sandbox's demo company = the cast's company_a
OLD = "13322924-8"  # the cast's representative; the sandbox PKI's "representative" certificate
NEW = "12531909-2"  # the sandbox PKI's "admin2" holder, here the firm's new representative


def users(sandbox: Any) -> dict[str, dict[str, Any]]:
    return {u["rut"]: u for u in sandbox.users(COMPANY)}


def store_key(sandbox: Any, representative: Representative, pki_name: str) -> Any:
    entry = sandbox.pki[pki_name]
    bundle = open_pkcs12(entry.path.read_bytes(), entry.password)
    return firm_key_store(representative=representative, bundle=bundle, uploaded_by=None)


def test_a_replacement_with_the_firms_keys_ends_with_only_the_new_one_and_no_client_email(
    cast, sandbox, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    # The client authorized the old representative as administrator, under the current terms; the
    # firm holds no certificate of the client.
    sandbox.add_user(COMPANY, OLD, admin=True, sign=True, registry=True)
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        sii_user_rut=OLD, sii_admin=True, sii_sign=True, sii_registry=True, sii_synced_at=timezone.now(),
        stage=CompanyStage.AUTHORIZED, consent_edition=CONSENT_EDITION,
    )
    old = Representative.objects.get(tenant=cast.tenant_a, rut=OLD)
    new = services.representative_add(tenant=cast.tenant_a, rut=NEW, name="Carolina Andrea Muñoz Tapia")
    old_key = store_key(sandbox, old, "representative")
    new_key = store_key(sandbox, new, "admin2")
    before = users(sandbox)
    assert NEW not in before

    with django_capture_on_commit_callbacks(execute=True):
        report = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a)
    (job,) = report.jobs
    assert job.firm_key_id == old_key.pk and job.certificate_id is None and report.emailed == []
    with django_capture_on_commit_callbacks(execute=True):
        done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.SUCCEEDED, (done.failure_code, done.failure_detail)
    assert (done.result["add_outcome"], done.result["remove_outcome"]) == ("created", "revoked")

    after = users(sandbox)
    assert set(after) == (set(before) - {OLD}) | {NEW}
    assert (after[NEW]["admin"], after[NEW]["sign"], after[NEW]["registry"]) == (True, True, True)
    assert all(after[rut] == before[rut] for rut in before if rut != OLD)  # nobody else touched
    company = ClientCompany.objects.get(pk=cast.company_a.pk)
    assert (company.sii_user_rut, company.stage) == (NEW, CompanyStage.AUTHORIZED)
    assert not any(to == cast.company_a.owner_email for m in mail.outbox for to in m.to)
    uses = AuditEntry.objects.filter(action=AuditAction.FIRM_KEY, summary__contains="usada")
    assert {u.details["firm_key"] for u in uses} == {str(old_key.pk), str(new_key.pk)}
