"""Access checks with the firm key, against a fake bot: grouping, outcomes per company, the firm key's
own failures, SII politeness (leases, session limits), the reaper, the schedule, the digest, the
dashboard and the buttons."""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

import sii_bot
from onboarding import selectors, services, tasks
from onboarding.models import (
    AccessCheckItem,
    AccessCheckItemStatus,
    AccessCheckRun,
    AccessCheckStatus,
    AccessProblem,
    AuditAction,
    AuditEntry,
    ClientCompany,
    FirmKey,
    Relationship,
)
from onboarding.services.firm_keys import firm_key_destroy, firm_key_store
from onboarding.services.jobs.leases import sii_leases_acquire_keys, sii_leases_release
from sii_bot import CompanyUsersRead, SiiUser, UsersReadResult, errors

REP = "13322924-8"


def _rut(n: int) -> str:
    body = 60_000_000 + n
    digits = str(body)
    total, factor = 0, 2
    for d in reversed(digits):
        total += int(d) * factor
        factor = 2 if factor == 7 else factor + 1
    r = 11 - total % 11
    return f"{body}-{'0' if r == 11 else 'K' if r == 10 else r}"


class FakeSii:
    """What the SII holds per company, and a `read_users` that answers from it in one 'session'."""

    def __init__(self) -> None:
        self.users: dict[str, list[SiiUser]] = {}
        self.company_failure: dict[str, type[errors.EnrollmentFailure]] = {}
        # (session number, position in it) → session failure from that company on
        self.session_failure: dict[int, tuple[int, type[errors.EnrollmentFailure]]] = {}
        self.login_failure: type[errors.EnrollmentFailure] | None = None
        self.sessions: list[tuple[str, ...]] = []

    def read_users(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> UsersReadResult:
        assert isinstance(certificate, sii_bot.CertificateMaterial)
        self.settings = settings
        number = len(self.sessions)
        self.sessions.append(request.company_ruts)
        if self.login_failure is not None:
            failure = self.login_failure("refused").to_dict()
            return UsersReadResult([CompanyUsersRead(rut, failure=failure) for rut in request.company_ruts], logins=0)
        out: list[CompanyUsersRead] = []
        cut = self.session_failure.get(number)
        for index, rut in enumerate(request.company_ruts):
            if cut is not None and index >= cut[0]:
                out.append(CompanyUsersRead(rut, failure=cut[1]("ended").to_dict()))
            elif rut in self.company_failure:
                out.append(CompanyUsersRead(rut, failure=self.company_failure[rut]("no").to_dict()))
            else:
                out.append(CompanyUsersRead(rut, company_name="X", users=list(self.users.get(rut, []))))
        return UsersReadResult(out, logins=1)


@pytest.fixture
def fake(monkeypatch) -> FakeSii:  # type: ignore[no-untyped-def]
    sii = FakeSii()
    monkeypatch.setattr(sii_bot, "read_users", sii.read_users)
    return sii


@pytest.fixture
def sent(monkeypatch) -> mock.Mock:  # type: ignore[no-untyped-def]
    send = mock.Mock()
    monkeypatch.setattr(tasks.access_check_run, "apply_async", send)
    return send


@pytest.fixture
def firm(cast, certificate_bundle, settings):  # type: ignore[no-untyped-def]
    """Tenant A with its representative's firm key and `make(n)` authorized clients."""
    settings.AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS = 0
    settings.AUTORIZA_ACCESS_CHECK_SESSION_RETRY_SECONDS = 0
    representative = cast.tenant_a.representatives.get(rut=REP)
    # The shared test certificate's material, as if its holder were this representative.
    bundle = dataclasses.replace(certificate_bundle, holder_rut=REP)
    key = firm_key_store(representative=representative, bundle=bundle, uploaded_by=cast.owner_a)

    def make(n: int, start: int = 0) -> list[ClientCompany]:
        companies = []
        for i in range(start, start + n):
            company = services.client_company_create(tenant=cast.tenant_a, rut=_rut(i), legal_name=f"Cliente {i:03d} SpA")
            ClientCompany.objects.filter(pk=company.pk).update(
                sii_user_rut=REP, sii_admin=True, sii_sign=True, sii_registry=True, relationship=Relationship.ACTIVE
            )
            company.refresh_from_db()
            companies.append(company)
        return companies

    return type("Firm", (), {"tenant": cast.tenant_a, "rep": representative, "key": key, "make": staticmethod(make)})


def full(rut: str = REP, **flags: bool) -> SiiUser:
    values = {"admin": True, "sign": True, "registry": True} | flags
    return SiiUser(rut, "ALEX BRITO MARDONES", **values)


def run_all(worker: str = "w1") -> list[AccessCheckRun | None]:
    return [
        services.access_check_execute(run_id=str(pk), worker=worker)
        for pk in AccessCheckRun.objects.filter(status=AccessCheckStatus.QUEUED).values_list("pk", flat=True)
    ]


def test_one_run_per_key_and_chunk_covering_only_authorized_active_clients(cast, firm, sent, settings, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_ACCESS_CHECK_MAX_COMPANIES = 20
    companies = firm.make(45)
    ClientCompany.objects.filter(pk=companies[0].pk).update(relationship=Relationship.ENDING)
    ClientCompany.objects.filter(pk=companies[1].pk).update(sii_user_rut="")
    with django_capture_on_commit_callbacks(execute=True):
        runs = services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    assert [run.items.count() for run in runs] == [15, 15, 13]  # even chunks, each one SII session
    assert {run.firm_key_id for run in runs} == {firm.key.pk}
    covered = set(AccessCheckItem.objects.values_list("company_id", flat=True))
    assert covered == {c.pk for c in companies[2:]} and cast.company_b.pk not in covered
    # Only the run's id travels, to the access-check queue.
    assert [call.args[0] for call in sent.call_args_list] == [(str(run.pk),) for run in runs]
    assert {call.kwargs["queue"] for call in sent.call_args_list} == {settings.AUTORIZA_ACCESS_CHECK_QUEUE}
    assert AuditEntry.objects.filter(tenant=firm.tenant, action=AuditAction.ACCESS_CHECK).count() == 1
    # Asking again while they wait checks nobody twice.
    with pytest.raises(services.ServiceError):
        services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)


def test_every_company_ends_verified_problem_or_typed_failure_and_admins_get_one_digest(cast, firm, fake, sent) -> None:  # type: ignore[no-untyped-def]
    ok, below, missing, not_admin, not_issuer = firm.make(5)
    fake.users = {
        ok.rut: [full()],
        below.rut: [full(sign=False)],
        missing.rut: [SiiUser("14567890-0", "OTRA PERSONA", admin=True)],
    }
    fake.company_failure = {not_admin.rut: errors.HolderNotAdministrator, not_issuer.rut: errors.CompanyNotAuthorized}
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    assert run.status == AccessCheckStatus.DONE and len(fake.sessions) == 1
    items = {item.company_id: item for item in run.items.all()}
    assert items[ok.pk].status == AccessCheckItemStatus.VERIFIED
    assert (items[below.pk].status, items[below.pk].problem) == ("problem", AccessProblem.PERMISSIONS_BELOW)
    assert items[missing.pk].problem == AccessProblem.REPRESENTATIVE_MISSING
    assert items[not_admin.pk].problem == AccessProblem.NOT_ADMINISTRATOR
    assert (items[not_issuer.pk].status, items[not_issuer.pk].failure_code) == ("failed", "company_not_authorized")
    assert items[not_issuer.pk].failure_message  # Spanish, from the typed failure
    ok.refresh_from_db(); below.refresh_from_db(); not_issuer.refresh_from_db()
    assert ok.access_verified_at is not None and ok.access_problem == ""
    assert ok.access_state["permissions"] == ["admin", "sign", "registry"]
    assert below.access_problem == AccessProblem.PERMISSIONS_BELOW and below.access_problem_since is not None
    assert not_issuer.access_verified_at is None  # not read: nothing verified
    # One digest per admin (owner and admin), listing the three new problems; greeting like every e-mail.
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@a.cl", "dueno@a.cl"]
    body = mail.outbox[0].body
    assert body.startswith("Hola") and "3 problemas nuevos" in body and "Cliente 001 SpA" in body
    assert "Permisos inferiores a los solicitados" in body
    # The next check finds the same problems: no e-mail again.
    mail.outbox.clear()
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    run_all()
    assert mail.outbox == []
    # Fixed in the SII, then broken again later: that is a new problem.
    fake.users[below.rut] = [full()]
    services.access_check_request(tenant=firm.tenant, company=below, requested_by=cast.admin_a)
    run_all()
    below.refresh_from_db()
    assert below.access_problem == "" and mail.outbox == []
    fake.users[below.rut] = [full(registry=False)]
    services.access_check_request(tenant=firm.tenant, company=below, requested_by=cast.admin_a)
    run_all()
    assert len(mail.outbox) == 2 and "un problema nuevo" in mail.outbox[0].body


def test_a_session_that_ends_early_is_opened_again_for_the_rest_only(firm, fake, sent, cast) -> None:  # type: ignore[no-untyped-def]
    companies = firm.make(30)
    fake.users = {c.rut: [full()] for c in companies}
    fake.session_failure = {0: (10, errors.SessionExpired), 1: (5, errors.SiiUnavailable)}
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    assert [len(s) for s in fake.sessions] == [30, 20, 15]
    # What a check asks of the bot: the politeness pause between companies, no screenshots.
    assert fake.settings.company_pause_seconds == 0 and fake.settings.screenshots is False
    assert run.items.filter(status=AccessCheckItemStatus.VERIFIED).count() == 30


def test_the_pause_between_companies_reaches_the_bot(firm, fake, sent, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS = 1.5
    firm.make(2)
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    run_all()
    assert fake.settings.company_pause_seconds == 1.5


def test_session_failures_beyond_the_retries_are_typed_failures_not_skips(firm, fake, sent, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_ACCESS_CHECK_SESSION_RETRIES = 1
    companies = firm.make(10)
    fake.users = {c.rut: [full()] for c in companies}
    fake.session_failure = {0: (4, errors.SessionExpired), 1: (2, errors.SessionExpired)}
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    statuses = list(run.items.values_list("status", "failure_code"))
    assert statuses.count(("verified", "")) == 6 and statuses.count(("failed", "session_expired")) == 4
    assert not run.items.filter(status=AccessCheckItemStatus.PENDING).exists()


def test_a_firm_key_the_sii_refuses_marks_every_company_and_the_key(firm, fake, sent, cast) -> None:  # type: ignore[no-untyped-def]
    firm.make(3)
    fake.login_failure = errors.CertificateRevoked
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    assert set(run.items.values_list("status", "problem")) == {("problem", AccessProblem.FIRM_KEY_REJECTED)}
    key = FirmKey.objects.get(pk=firm.key.pk)
    assert key.rejected_code == "certificate_revoked" and key.rejected_at is not None
    assert set(ClientCompany.objects.filter(sii_user_rut=REP).values_list("access_problem", flat=True)) == {"firm_key_rejected"}
    # The next check never shows the refused key to the SII again.
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    run_all()
    assert len(fake.sessions) == 1


def test_an_expired_firm_key_never_reaches_the_sii(firm, fake, sent, cast) -> None:  # type: ignore[no-untyped-def]
    firm.make(2)
    FirmKey.objects.filter(pk=firm.key.pk).update(not_after=timezone.now() - timedelta(days=1))
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    assert fake.sessions == []
    assert set(run.items.values_list("problem", flat=True)) == {AccessProblem.FIRM_KEY_EXPIRED}


def test_a_session_limit_answer_holds_every_run_of_that_rut_for_the_sii_hour(firm, fake, sent, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_ACCESS_CHECK_MAX_COMPANIES = 20
    firm.make(40)
    fake.login_failure = errors.TooManySessions
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    first_id, second_id = AccessCheckRun.objects.order_by("created_at").values_list("pk", flat=True)
    before = timezone.now()
    first = services.access_check_execute(run_id=str(first_id), worker="w1")
    assert first.status == AccessCheckStatus.QUEUED and first.run_after >= before + timedelta(seconds=3599)
    assert first.items.filter(status=AccessCheckItemStatus.PENDING).count() == 20  # not skipped: waiting
    second = services.access_check_execute(run_id=str(second_id), worker="w1")
    assert second.status == AccessCheckStatus.QUEUED and second.run_after == first.run_after
    assert len(fake.sessions) == 1  # the second never logged in
    # Delivered early, the run is not claimed; the dispatcher sends it when due, not before.
    assert services.access_check_execute(run_id=str(first_id), worker="w1") is None
    sent.reset_mock()
    assert services.access_check_runs_dispatch() == 0 and not sent.called
    assert services.access_check_runs_dispatch(now=first.run_after + timedelta(seconds=1)) == 2


def test_no_session_place_for_the_rut_means_waiting_not_logging_in(firm, fake, sent, cast, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    firm.make(2)
    settings.AUTORIZA_ACCESS_CHECK_LEASE_WAIT_SECONDS = 0.2
    settings.AUTORIZA_SII_LEASE_WAIT_SECONDS = 0.1
    settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT = 1
    other = sii_leases_acquire_keys(keys=[(f"rut:{REP}", 1)], holder="someone-else")
    assert other is not None
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    assert run.status == AccessCheckStatus.QUEUED and fake.sessions == []
    assert sent.call_args.args[0] == (str(run.pk),)  # back in the queue at once, behind the others
    sii_leases_release(leases=other)
    AccessCheckRun.objects.filter(pk=run.pk).update(run_after=None)
    (run,) = run_all()
    assert run.status == AccessCheckStatus.DONE and len(fake.sessions) == 1


def test_a_claimed_run_runs_once_and_the_reaper_finishes_one_whose_worker_died(firm, fake, sent, cast) -> None:  # type: ignore[no-untyped-def]
    firm.make(2)
    (run,) = services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    stale = timezone.now() - timedelta(hours=1)
    AccessCheckRun.objects.filter(pk=run.pk).update(status=AccessCheckStatus.RUNNING, worker="dead", heartbeat_at=stale)
    assert services.access_check_execute(run_id=str(run.pk), worker="w2") is None  # claimed by someone else
    assert services.access_check_runs_reap() == 1
    run.refresh_from_db()
    assert run.status == AccessCheckStatus.QUEUED and run.retry_count == 1
    AccessCheckRun.objects.filter(pk=run.pk).update(status=AccessCheckStatus.RUNNING, worker="dead", heartbeat_at=stale)
    assert services.access_check_runs_reap() == 1
    run.refresh_from_db()
    assert run.status == AccessCheckStatus.FAILED
    assert set(run.items.values_list("status", "failure_code")) == {("failed", "check_interrupted")}


def test_a_crash_finishes_the_run_with_typed_failures(firm, sent, cast, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    firm.make(2)
    monkeypatch.setattr(sii_bot, "read_users", mock.Mock(side_effect=RuntimeError("boom")))
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    assert run.status == AccessCheckStatus.FAILED
    assert set(run.items.values_list("status", "failure_code")) == {("failed", "internal_error")}


def test_a_firm_key_that_no_longer_decrypts_says_so_not_an_internal_error(firm, fake, sent, cast, caplog) -> None:  # type: ignore[no-untyped-def]
    firm.make(2)
    stored = FirmKey.objects.get(pk=firm.key.pk)
    tampered = bytearray(stored.sealed_material)
    tampered[-1] ^= 1
    FirmKey.objects.filter(pk=firm.key.pk).update(sealed_material=bytes(tampered))  # as a tampered row would
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    (run,) = run_all()
    assert fake.sessions == []
    assert run.failure_code == "certificate_unreadable" and "Cárguela de nuevo" in run.failure_message
    assert set(run.items.values_list("status", "failure_code")) == {("failed", "certificate_unreadable")}
    assert "crashed" not in caplog.text


def test_the_schedule_creates_due_checks_once_per_interval_and_never_when_off(firm, fake, sent, cast) -> None:  # type: ignore[no-untyped-def]
    firm.make(3)
    now = timezone.now()
    assert services.access_checks_schedule(now=now) == 1
    assert services.access_checks_schedule(now=now + timedelta(days=1)) == 0
    run_all()
    assert services.access_checks_schedule(now=now + timedelta(days=7)) == 1
    firm.tenant.refresh_from_db()
    firm.tenant.access_check_interval_days = 0
    firm.tenant.save()
    run_all()
    assert services.access_checks_schedule(now=now + timedelta(days=30)) == 0
    # The periodic task: reaps, schedules, sends due runs; only ids travel.
    tasks.access_checks_schedule()


def test_on_demand_needs_a_firm_key_and_an_authorized_client(cast, firm, sent) -> None:  # type: ignore[no-untyped-def]
    (company,) = firm.make(1)
    with pytest.raises(services.ServiceError) as error:
        services.access_check_request(tenant=firm.tenant, company=cast.company_a, requested_by=cast.admin_a)
    assert error.value.code == "access_check_nothing"
    firm_key_destroy(firm_key=firm.key, reason="test", actor=None)
    with pytest.raises(services.ServiceError) as error:
        services.access_check_request(tenant=firm.tenant, company=company, requested_by=cast.admin_a)
    assert error.value.code == "firm_key_missing" and "llave del estudio" in error.value.message
    with pytest.raises(services.ServiceError):
        services.access_check_request(tenant=cast.tenant_b, company=company, requested_by=cast.admin_a)


def test_dashboard_shows_verified_column_problem_filter_and_count(client, cast, firm, fake, sent) -> None:  # type: ignore[no-untyped-def]
    good, bad = firm.make(2)
    fake.users = {good.rut: [full()], bad.rut: [full(sign=False)]}
    client.force_login(cast.admin_a)
    url = reverse("staff:access_check_all", kwargs={"tenant_slug": "pyme"})
    response = client.post(url, {"volver": "/estudio/pyme/?q=x"})
    assert response.status_code == 302 and response["Location"] == "/estudio/pyme/?q=x"
    run_all()
    page = client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"})).content.decode()
    assert ">Verificado</th>" in page and "Acceso con problemas" in page
    assert 'data-label="Verificado"><time' in page and 'data-label="Verificado"><span class="muted">—' in page
    filtered = client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"}) + "?acceso=problemas").content.decode()
    assert "Cliente 001 SpA" in filtered and "Cliente 000 SpA" not in filtered
    assert selectors.access_problem_count(tenant=firm.tenant) == 1
    # One client, from its page; the staff role may not.
    one = reverse("staff:access_check_company", kwargs={"tenant_slug": "pyme", "company_id": bad.pk})
    assert client.post(one, {"volver": "https://evil.example/"})["Location"] == "/estudio/pyme/"
    assert AccessCheckRun.objects.filter(status=AccessCheckStatus.QUEUED).count() == 1
    client.force_login(cast.staff_a)
    assert client.post(one).status_code == 404
    client.force_login(cast.staff_b)
    assert client.post(one).status_code == 404


def test_company_access_panel_says_what_was_found(cast, firm, fake, sent) -> None:  # type: ignore[no-untyped-def]
    (company,) = firm.make(1)
    assert selectors.company_access_view(company=company).state == "unverified"
    fake.users = {company.rut: [full(registry=False)]}
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    run_all()
    company.refresh_from_db()
    view = selectors.company_access_view(company=company)
    assert (view.state, view.problem) == ("problem", "Permisos inferiores a los solicitados")
    assert view.found_permissions == ("Usuario Administrador", "Firmar Documentos") and view.found_rut == REP


def test_the_firm_key_never_reaches_task_arguments_or_logs(cast, firm, fake, sent, caplog, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    companies = firm.make(3)
    fake.users = {c.rut: [full()] for c in companies}
    caplog.set_level("DEBUG")
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    run_all()
    secret_lines = [line for line in certificate_bundle.key_pem.decode().splitlines() if len(line) > 40][:3]
    assert secret_lines
    for call in sent.call_args_list:
        assert all(isinstance(arg, str) and len(arg) == 36 for arg in call.args[0])
    logs = caplog.text
    assert not any(line in logs for line in secret_lines) and "PRIVATE KEY" not in logs


def test_the_latest_job_page_shows_what_the_last_check_found_with_the_verify_button(client, cast, firm, fake, sent) -> None:  # type: ignore[no-untyped-def]
    from onboarding.models import JobStatus
    from tests.onboarding.staff_factories import job_make

    (company,) = firm.make(1)
    older = job_make(company, status=JobStatus.FAILED, attempt=1)
    latest = job_make(company, status=JobStatus.SUCCEEDED, attempt=2, failure_code="", failure_message="")
    fake.users = {company.rut: [full(sign=False)]}
    services.access_check_request(tenant=firm.tenant, requested_by=cast.admin_a)
    run_all()
    client.force_login(cast.admin_a)
    page = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": latest.pk})).content.decode()
    assert "Acceso del estudio en el SII" in page and "Permisos inferiores a los solicitados" in page
    assert "Usuario Administrador, Consulta/Registro" in page  # the labels every page uses
    assert reverse("staff:access_check_company", kwargs={"tenant_slug": "pyme", "company_id": company.pk}) in page
    older_page = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": older.pk})).content.decode()
    assert "Acceso del estudio en el SII" not in older_page
    client.force_login(cast.staff_a)  # staff see it, without the button
    page = client.get(reverse("staff:job_detail", kwargs={"tenant_slug": "pyme", "job_id": latest.pk})).content.decode()
    assert "Acceso del estudio en el SII" in page and "/verificar/" not in page


def test_owners_set_the_schedule_or_turn_it_off_with_spanish_errors_and_an_audit_entry(client, cast) -> None:  # type: ignore[no-untyped-def]
    url = reverse("staff:access_check_schedule", kwargs={"tenant_slug": "pyme"})
    client.force_login(cast.owner_a)
    assert "cada 7 días" in client.get(url).content.decode()
    for bad, message in (("-1", "no puede ser negativo"), ("abc", "número entero"), ("365", "al menos cada 90")):
        page = client.post(url, {"dias": bad})
        assert page.status_code == 200 and message in page.content.decode()
    assert client.post(url, {"dias": "0"}).status_code == 302
    cast.tenant_a.refresh_from_db()
    assert cast.tenant_a.access_check_interval_days == 0
    assert AuditEntry.objects.filter(tenant=cast.tenant_a, summary="Verificación de acceso automática desactivada").exists()
    assert services.access_checks_schedule() == 0
    client.force_login(cast.admin_a)  # admins verify on demand; the schedule is the owners'
    assert client.get(url).status_code == 404
