"""Changes made with the firm's own key, with a scripted bot: a change of representative for 20
clients e-mails no client; the new one is added with the old one's key and the old one removed with
the new one's key (never a key deleting its own holder); a key the SII refuses, or a holder who does
not administer the company, falls back to asking the client (recorded in the job's events); clients
who consented under older terms are always asked."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

import sii_bot
from onboarding import crypto, selectors, services
from onboarding.domain.firm_access import CONSENT_EDITION, FIRM_ACCESS_CONSENT_EDITION
from onboarding.models import (
    AuditAction,
    AuditEntry,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    FirmKey,
    JobEvent,
    JobKind,
    JobStatus,
    Relationship,
    Representative,
)
from onboarding.services import firm_keys
from onboarding.services.firm_keys import firm_key_store
from onboarding.services.jobs import firm_key_run
from sii_bot import errors
from sii_bot.certificates import CertificateBundle
from tests.onboarding.test_changes_services import OLD_NAME, OLD_RUT, ChangeBot
from tests.onboarding.test_firm_keys import bundle_for

pytestmark = pytest.mark.usefixtures("enqueued")

NEW_RUT, NEW_NAME = "14567890-0", "MARCELA IGNACIA ROJAS DIAZ"
# Distinct key material per holder, so each bot call shows whose key it logged in with.
KEY_OF = {OLD_RUT: b"T0xE", NEW_RUT: b"TkVX"}


class KeyedBot(ChangeBot):
    """The scripted bot, noting whose key each call used; `fail_on` maps a call name to a failure."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[tuple[str, bytes]] = []
        self.fail_on: dict[str, BaseException] = {}

    def enroll(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.keys.append(("enroll", certificate.key_pem))
        if "enroll" in self.fail_on:
            self.calls.append(("enroll", request))
            raise self.fail_on["enroll"]
        return super().enroll(request, certificate, settings, on_progress)

    def revoke(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        self.keys.append(("revoke", certificate.key_pem))
        if "revoke" in self.fail_on:
            self.calls.append(("revoke", request))
            raise self.fail_on["revoke"]
        return super().revoke(request, certificate, settings, on_progress)


@pytest.fixture
def bot(monkeypatch):  # type: ignore[no-untyped-def]
    fake = KeyedBot()
    monkeypatch.setattr(sii_bot, "enroll", fake.enroll)
    monkeypatch.setattr(sii_bot, "revoke", fake.revoke)
    monkeypatch.setattr(sii_bot, "replace", fake.replace)
    return fake


def key_bundle(rut: str) -> CertificateBundle:
    base = bundle_for(rut)
    key_pem = b"-----BEGIN PRIVATE KEY-----\n" + KEY_OF[rut] + b"\n-----END PRIVATE KEY-----\n"
    return CertificateBundle(
        holder_rut=base.holder_rut, holder_name={OLD_RUT: OLD_NAME, NEW_RUT: NEW_NAME}[rut], issuer=base.issuer, not_before=base.not_before,
        not_after=base.not_after, fingerprint_sha256=base.fingerprint_sha256, serial_number="1",
        cert_pem=base.cert_pem, key_pem=key_pem,
    )


@pytest.fixture
def old(cast) -> Representative:  # type: ignore[no-untyped-def]
    return Representative.objects.get(tenant=cast.tenant_a, rut=OLD_RUT)


@pytest.fixture
def new(cast) -> Representative:  # type: ignore[no-untyped-def]
    return services.representative_add(tenant=cast.tenant_a, rut=NEW_RUT, name=NEW_NAME)


def with_key(representative: Representative) -> FirmKey:
    return firm_key_store(representative=representative, bundle=key_bundle(representative.rut), uploaded_by=None)


def administered(company: ClientCompany, rut: str = OLD_RUT, *, edition: int | None = CONSENT_EDITION) -> ClientCompany:
    """`company` as a succeeded authorization of `rut` (administrator) leaves it, consented under `edition`."""
    ClientCompany.objects.filter(pk=company.pk).update(
        sii_user_rut=rut, sii_admin=True, sii_sign=True, sii_registry=True, sii_synced_at=timezone.now(),
        stage=CompanyStage.AUTHORIZED, consent_edition=edition,
    )
    company.refresh_from_db()
    return company


def clients(cast: Any, count: int, *, edition: int | None = CONSENT_EDITION) -> list[ClientCompany]:
    companies = []
    for n in range(count):
        body = 76100000 + n
        company = services.client_company_create(
            tenant=cast.tenant_a, rut=_rut(body), legal_name=f"Cliente {n} SpA", owner_name=f"Dueño {n}",
            owner_email=f"cliente{n}@empresa.cl",
        )
        companies.append(administered(company, edition=edition))
    return companies


def _rut(body: int) -> str:
    """A valid RUT for `body` (its check digit computed)."""
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    check = 11 - total % 11
    return f"{body}-{'0' if check == 11 else 'K' if check == 10 else check}"


def run(job: EnrollmentJob, capture: Any) -> EnrollmentJob:
    with capture(execute=True):
        return services.enrollment_job_execute(job_id=str(job.pk))


def client_mail() -> list[Any]:
    return [m for m in mail.outbox if any(to.startswith("cliente") for to in m.to)]


def test_replacing_the_representative_for_20_clients_with_valid_keys_emails_no_client(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    cast.tenant_a.notification_emails = "avisos@a.cl"
    cast.tenant_a.save()
    old_key, new_key = with_key(old), with_key(new)
    companies = clients(cast, 20)
    with django_capture_on_commit_callbacks(execute=True):
        report = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a)
    assert len(report.jobs) == 20 and report.emailed == [] and report.skipped == []
    assert {job.firm_key_id for job in report.jobs} == {old_key.pk}
    assert all(job.certificate_id is None and job.kind == JobKind.REPLACE for job in report.jobs)
    for job in report.jobs:
        assert run(job, django_capture_on_commit_callbacks).status == JobStatus.SUCCEEDED
    # The new one added with the old one's key; the old one removed with the new one's key.
    assert [name for name, _ in bot.calls] == ["enroll", "revoke"] * 20
    assert {key for name, key in bot.keys if name == "enroll"} == {b"-----BEGIN PRIVATE KEY-----\nT0xE\n-----END PRIVATE KEY-----\n"}
    assert {key for name, key in bot.keys if name == "revoke"} == {b"-----BEGIN PRIVATE KEY-----\nTkVX\n-----END PRIVATE KEY-----\n"}
    for company in companies:
        company.refresh_from_db()
        assert company.sii_user_rut == NEW_RUT and company.stage == CompanyStage.AUTHORIZED
    assert client_mail() == []
    assert len([m for m in mail.outbox if m.to == ["avisos@a.cl"]]) == 20
    uses = AuditEntry.objects.filter(action=AuditAction.FIRM_KEY, summary__contains="usada")
    assert uses.count() == 40
    old_key.refresh_from_db()
    new_key.refresh_from_db()
    assert old_key.last_used_at is not None and new_key.last_used_at is not None
    assert JobEvent.objects.filter(step="firm_key", job__in=report.jobs).count() == 20


def test_a_key_the_sii_rejects_falls_back_to_asking_the_client(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    old_key = with_key(old)
    with_key(new)
    company = administered(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a).jobs
    bot.fail_on["enroll"] = errors.CertificateRevoked("revoked at login")
    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.FAILED and done.failure_code == "certificate_revoked"
    assert "Le pedimos al cliente su certificado" in done.failure_message and not done.failure_retryable
    (asked,) = client_mail()
    assert asked.to == ["cliente@empresa.cl"] and "Se necesita su certificado digital" in asked.subject
    assert f"Autorizar a {NEW_NAME}" in asked.body and f"quitar a {OLD_NAME}" in asked.body
    assert asked.body.startswith("Hola María:\n")
    assert JobEvent.objects.filter(job=job, step="firm_key_fallback", message__contains="cliente@empresa.cl").exists()
    old_key.refresh_from_db()
    assert old_key.rejected_code == "certificate_revoked"
    assert bot.calls == [("enroll", bot.calls[0][1])]  # the old one was never removed
    # The client's consent now covers the same replacement, with their certificate, as before.
    company.refresh_from_db()
    assert selectors.change_consent_terms(company=company).kind == JobKind.REPLACE


def test_a_holder_who_no_longer_administers_falls_back_without_marking_the_key(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    old_key = with_key(old)
    with_key(new)
    administered(cast.company_a)
    cast.tenant_a.grant_registry = False
    cast.tenant_a.save()
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = services.permissions_sync(tenant=cast.tenant_a, actor=cast.owner_a).jobs
    assert job.kind == JobKind.AUTHORIZE and job.firm_key_id == old_key.pk and job.certificate_id is None
    bot.fail_on["enroll"] = errors.HolderNotAdministrator("not admin")
    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.FAILED and done.failure_code == "holder_not_administrator"
    (asked,) = client_mail()
    assert "Actualizar los permisos de ALEX BRITO MARDONES" in asked.body and "Registro" not in asked.body
    old_key.refresh_from_db()
    assert old_key.rejected_code == ""


def test_a_permission_update_with_the_representatives_own_key_emails_no_client(
    cast, old, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    old_key = with_key(old)
    administered(cast.company_a)
    cast.tenant_a.grant_sign = False
    cast.tenant_a.save()
    with django_capture_on_commit_callbacks(execute=True):
        report = services.permissions_sync(tenant=cast.tenant_a, actor=cast.owner_a)
    (job,) = report.jobs
    assert report.emailed == [] and job.firm_key_id == old_key.pk
    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.SUCCEEDED
    assert client_mail() == []
    cast.company_a.refresh_from_db()
    assert cast.company_a.sii_sign is False


def test_an_admin_applies_one_client_s_permissions_with_the_firm_s_key_from_its_page(
    client, cast, old, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    old_key = with_key(old)
    company = administered(cast.company_a)
    services.company_permissions_set(company=company, permissions=["admin", "registry"], actor=cast.admin_a)
    client.force_login(cast.admin_a)
    sync = reverse("staff:company_permissions_sync", kwargs={"tenant_slug": "pyme", "company_id": company.pk})
    with django_capture_on_commit_callbacks(execute=True):
        body = client.post(sync, follow=True).content.decode()
    assert "Actualizando los permisos en el SII con la llave del estudio" in body
    (job,) = EnrollmentJob.objects.filter(company=company)
    assert job.firm_key_id == old_key.pk and sorted(job.permissions) == ["admin", "registry"]
    assert run(job, django_capture_on_commit_callbacks).status == JobStatus.SUCCEEDED
    assert client_mail() == []


def test_clients_who_consented_under_older_terms_are_always_asked(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with_key(old)
    with_key(new)
    older = clients(cast, 3, edition=FIRM_ACCESS_CONSENT_EDITION - 1)
    unknown = [administered(cast.company_a, edition=None)]
    with django_capture_on_commit_callbacks(execute=True):
        report = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a)
    assert report.jobs == []
    assert sorted(c.pk for c in report.emailed) == sorted(c.pk for c in older + unknown)
    assert len(client_mail()) == 4


def test_without_the_new_representatives_key_the_client_is_asked(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """The old one's key could add the new one, but only the new one's key may remove the old one."""
    with_key(old)
    administered(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        report = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a)
    assert report.jobs == [] and [c.pk for c in report.emailed] == [cast.company_a.pk]


def test_a_newer_access_check_that_found_a_problem_means_the_client_is_asked(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with_key(old)
    with_key(new)
    administered(cast.company_a)
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        access_verified_at=timezone.now() + timedelta(seconds=1), access_state=None,
        access_problem="representative_missing",
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a)
    assert report.jobs == [] and len(report.emailed) == 1


def test_an_expired_or_rejected_key_is_not_used(cast, old, bot, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    key = with_key(old)
    administered(cast.company_a)
    cast.tenant_a.grant_sign = False
    cast.tenant_a.save()
    FirmKey.objects.filter(pk=key.pk).update(rejected_code="certificate_revoked")
    with django_capture_on_commit_callbacks(execute=True):
        report = services.permissions_sync(tenant=cast.tenant_a, actor=cast.owner_a)
    assert report.jobs == [] and len(report.emailed) == 1


def test_the_new_key_failing_to_remove_the_old_one_leaves_a_replacement_to_finish_with_the_client(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with_key(old)
    with_key(new)
    company = administered(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a).jobs
    bot.fail_on["revoke"] = errors.HolderNotAdministrator("new one not admin yet")
    done = run(job, django_capture_on_commit_callbacks)
    assert done.status == JobStatus.FAILED and done.failure_code == "replacement_incomplete"
    company.refresh_from_db()
    assert company.sii_user_rut == NEW_RUT  # the SII holds the new one now
    assert len(client_mail()) == 1
    terms = selectors.change_consent_terms(company=company)
    assert terms.kind == JobKind.REPLACE and terms.remove_rut == "13.322.924-8"


@pytest.mark.parametrize("what", ["erased", "undecryptable"])
def test_the_new_key_becoming_unusable_after_the_addition_keeps_the_addition(
    cast, old, new, bot, django_capture_on_commit_callbacks, monkeypatch, what
) -> None:  # type: ignore[no-untyped-def]
    """The addition is done in the SII when the new key turns out unusable for the removal (erased
    meanwhile, or it no longer decrypts): the job records it as an incomplete replacement (the company
    holds the new one) and the client is asked to finish it, instead of a plain failure that forgets it."""
    with_key(old)
    new_key = with_key(new)
    company = administered(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a).jobs
    real_opened = firm_keys.firm_key_opened

    def opened(*, firm_key: FirmKey, purpose: str) -> Any:
        if firm_key.pk == new_key.pk:
            if what == "erased":
                raise services.ServiceError("La llave del estudio ya no está guardada.", code="firm_key_missing")
            raise crypto.DecryptionFailed("tampered")
        return real_opened(firm_key=firm_key, purpose=purpose)

    monkeypatch.setattr(firm_key_run, "firm_key_opened", opened)
    done = run(job, django_capture_on_commit_callbacks)
    assert [name for name, _ in bot.keys] == ["enroll"]  # the removal never reached the SII
    assert done.status == JobStatus.FAILED and done.failure_code == "replacement_incomplete"
    company.refresh_from_db()
    assert company.sii_user_rut == NEW_RUT  # the addition is kept
    assert len(client_mail()) == 1
    terms = selectors.change_consent_terms(company=company)
    assert terms.kind == JobKind.REPLACE and terms.remove_rut == "13.322.924-8"


def test_ending_a_relationship_never_has_a_key_remove_its_own_holder(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with_key(old)
    administered(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.company_relationship_end(company=cast.company_a, actor=cast.admin_a) is None
    assert len(client_mail()) == 1 and not EnrollmentJob.objects.exists()


def test_ending_a_relationship_with_another_administering_representatives_key(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """A company where the last check saw another representative of the firm as administrator: that
    one's key removes the holder, and the client is not e-mailed."""
    new_key = with_key(new)
    administered(cast.company_a)
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        access_verified_at=timezone.now() + timedelta(seconds=1),
        access_state={"rut": NEW_RUT, "permissions": ["admin", "sign", "registry"]}, access_problem="",
    )
    cast.company_a.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        job = services.company_relationship_end(company=cast.company_a, actor=cast.admin_a)
    assert job is not None and job.kind == JobKind.REVOKE and job.user_rut == OLD_RUT and job.firm_key_id == new_key.pk
    assert run(job, django_capture_on_commit_callbacks).status == JobStatus.SUCCEEDED
    cast.company_a.refresh_from_db()
    assert cast.company_a.relationship == Relationship.ENDED
    assert client_mail() == []


def test_a_consent_records_the_terms_edition_that_allows_the_firms_own_access(
    cast, certificate_bundle, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    terms = selectors.consent_terms(company=cast.company_a, retention_days=7)
    assert terms.edition == CONSENT_EDITION >= FIRM_ACCESS_CONSENT_EDITION
    services.client_consent_give(company=cast.company_a, certificate=certificate, user=cast.client_a,
                                 terms_version=terms.version)
    cast.company_a.refresh_from_db()
    assert cast.company_a.consent_edition == CONSENT_EDITION
    consent = AuditEntry.objects.get(action=AuditAction.CONSENT)
    assert consent.details["terms_edition"] == CONSENT_EDITION


def test_the_replacement_page_says_which_clients_need_nothing_from_the_client(
    client, cast, old, new, bot
) -> None:  # type: ignore[no-untyped-def]
    with_key(old)
    with_key(new)
    administered(cast.company_a)
    older = clients(cast, 1, edition=None)[0]
    client.force_login(cast.owner_a)
    url = reverse("staff:representative_replace", kwargs={"tenant_slug": "pyme", "representative_id": old.pk})
    page = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(client.post(url, {"nuevo": str(new.pk)}).content.decode())).split())
    assert "Comercial Demo SpA Se hará de inmediato con la llave del estudio, sin pedirle nada al cliente" in page.replace(
        " 76.086.428-5 ", " ")
    assert f"Se pedirá al cliente que suba su certificado ({older.owner_email})" in page
    assert not EnrollmentJob.objects.exists()


def test_the_feeder_counts_firm_key_jobs_against_their_holders_session_cap(
    cast, old, new, bot, enqueued, settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """20 background jobs all logging in as the old representative: no more of them are sent at once
    than that holder may have SII sessions (the rest would only go back to wait for a lease)."""
    settings.AUTORIZA_BACKGROUND_IN_FLIGHT = 8
    settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT = 2
    with_key(old)
    with_key(new)
    clients(cast, 20)
    with django_capture_on_commit_callbacks(execute=True):
        report = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a)
    assert len(report.jobs) == 20
    assert enqueued.call_count == 2
    assert EnrollmentJob.objects.filter(enqueued_at__isnull=False).count() == 2


def test_the_job_page_names_the_firm_key_and_its_fallback(client, cast, old, new, bot, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with_key(old)
    with_key(new)
    administered(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a).jobs
    bot.fail_on["enroll"] = errors.HolderNotAdministrator("not admin")
    run(job, django_capture_on_commit_callbacks)
    client.force_login(cast.admin_a)
    url = reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": job.pk})
    page = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(client.get(url).content.decode())).split())
    assert "Llave del estudio: ALEX BRITO MARDONES" in page
    assert "sin pedirle el certificado al cliente" in page
    assert "Le enviamos un correo a cliente@empresa.cl pidiéndole su certificado digital" in page
    # The client may still open the job's page: it renders without a certificate of theirs.
    client.force_login(cast.client_a)
    assert client.get(reverse("client:job", kwargs={"job_id": job.pk})).status_code == 200


def test_a_key_replaced_while_the_job_waits_is_replaced_for_the_job_too(
    cast, old, new, bot, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    first = with_key(old)
    with_key(new)
    administered(cast.company_a)
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = services.representative_replace(tenant=cast.tenant_a, old=old, new=new, actor=cast.owner_a).jobs
    renewed = with_key(old)  # the admin uploads the renewed certificate meanwhile: the first is erased
    first.refresh_from_db()
    assert not first.is_usable and job.firm_key_id == first.pk
    assert run(job, django_capture_on_commit_callbacks).status == JobStatus.SUCCEEDED
    renewed.refresh_from_db()
    assert renewed.last_used_at is not None and client_mail() == []


def test_a_failed_firm_key_job_is_rerun_with_the_firms_key(cast, old, bot, django_capture_on_commit_callbacks, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_JOB_MAX_RETRIES = 0
    key = with_key(old)
    administered(cast.company_a)
    cast.tenant_a.grant_sign = False
    cast.tenant_a.save()
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = services.permissions_sync(tenant=cast.tenant_a, actor=cast.owner_a).jobs
    bot.fail_on["enroll"] = errors.SiiUnavailable("down")
    failed = run(job, django_capture_on_commit_callbacks)
    assert failed.status == JobStatus.FAILED and failed.failure_code == "sii_unavailable" and client_mail() == []
    del bot.fail_on["enroll"]
    again = services.enrollment_job_rerun(job=failed, actor=cast.admin_a)
    assert again.firm_key_id == key.pk and again.certificate_id is None
    assert run(again, django_capture_on_commit_callbacks).status == JobStatus.SUCCEEDED
    assert client_mail() == []


def test_the_end_page_says_whether_the_removal_needs_the_client(client, cast, old, new, bot) -> None:  # type: ignore[no-untyped-def]
    with_key(old)
    administered(cast.company_a)
    client.force_login(cast.admin_a)
    url = reverse("staff:company_end", kwargs={"tenant_slug": "pyme", "company_id": cast.company_a.pk})
    assert "llave del estudio" not in client.get(url).content.decode()  # the holder's own key: never
    with_key(new)
    ClientCompany.objects.filter(pk=cast.company_a.pk).update(
        access_verified_at=timezone.now() + timedelta(seconds=1),
        access_state={"rut": NEW_RUT, "permissions": ["admin"]}, access_problem="",
    )
    assert f"llave del estudio de {NEW_NAME}" in html.unescape(client.get(url).content.decode())
