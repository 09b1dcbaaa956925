"""Access checks end to end: the real services, the real bot and headless Chromium against the SII
sandbox, with the representative's own certificate (PKI "representative", 13322924-8) as firm key.

- 500 companies under faults (HTTP 500s, sessions that expire): every company ends verified with the
  state the sandbox holds, or a typed failure; none skipped; the admins' digest lists each problem once.
- drift made through the sandbox's control API shows on the dashboard after the next check.
- two worker processes of two slots each, checking the same firm, never open more than
  AUTORIZA_SII_MAX_SESSIONS_PER_RUT sessions at once for the representative (the sandbox counts them).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any
from unittest import mock

import pytest
from django.core import mail
from django.urls import reverse

from onboarding import services, tasks
from onboarding.models import (
    AccessCheckItem,
    AccessCheckItemStatus,
    AccessCheckRun,
    AccessCheckStatus,
    AccessProblem,
    ClientCompany,
    Relationship,
    Tenant,
)
from onboarding.services.firm_keys import firm_key_store
from sii_bot.certificates import open_pkcs12
from sii_bot.settings import default_chromium_path

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.browser,
    pytest.mark.skipif(default_chromium_path() is None, reason="no system Chromium"),
]

REP = "13322924-8"
COMPANIES = int(os.environ.get("AUTORIZA_CHECK_RUN_COMPANIES", "500"))


def _rut(n: int) -> str:
    body = 61_000_000 + n
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    r = 11 - total % 11
    return f"{body}-{'0' if r == 11 else 'K' if r == 10 else r}"


def _firm(tenant: Tenant, sandbox: Any, owner: Any, count: int, *, users: Any = None) -> list[ClientCompany]:
    """`count` clients of `tenant` authorized with the representative, the same in the sandbox, and
    the representative's own certificate stored as the firm key."""
    representative = tenant.representatives.get(rut=REP)
    entry = sandbox.pki["representative"]
    firm_key_store(representative=representative, bundle=open_pkcs12(entry.path.read_bytes(), entry.password),
                   uploaded_by=owner)
    ruts = [_rut(i) for i in range(count)]
    sandbox.add_companies([
        {"rut": rut, "name": f"CLIENTE {i:03d} SPA",
         "users": (users(i) if users else None) or [{"rut": REP, "admin": True, "sign": True, "registry": True}]}
        for i, rut in enumerate(ruts)
    ])
    ClientCompany.objects.bulk_create([
        ClientCompany(tenant=tenant, rut=rut, legal_name=f"Cliente {i:03d} SpA", relationship=Relationship.ACTIVE,
                      sii_user_rut=REP, sii_admin=True, sii_sign=True, sii_registry=True)
        for i, rut in enumerate(ruts)
    ])
    return list(ClientCompany.objects.filter(tenant=tenant, sii_user_rut=REP).order_by("rut"))


@pytest.fixture
def in_process(sandbox, monkeypatch, settings):  # type: ignore[no-untyped-def]
    """The sandbox's SII settings, no pause between companies, runs executed here (not sent)."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SII_STEP_TIMEOUT", "15")
    settings.AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS = 0
    settings.AUTORIZA_ACCESS_CHECK_SESSION_RETRY_SECONDS = 0
    monkeypatch.setattr(tasks.access_check_run, "apply_async", mock.Mock())


def _run_queued() -> None:
    while True:
        ids = list(AccessCheckRun.objects.filter(status=AccessCheckStatus.QUEUED).values_list("pk", flat=True))
        if not ids:
            return
        for run_id in ids:
            AccessCheckRun.objects.filter(pk=run_id).update(run_after=None)
            services.access_check_execute(run_id=str(run_id), worker="test")


@pytest.mark.timeout(900)
def test_500_companies_under_faults_end_verified_as_the_sandbox_holds_or_typed(  # type: ignore[no-untyped-def]
    cast, sandbox, in_process
) -> None:
    def users(i: int) -> list[dict[str, Any]] | None:
        if i % 25 == 3:  # permissions below those requested
            return [{"rut": REP, "admin": True, "sign": False, "registry": True}]
        return None

    companies = _firm(cast.tenant_a, sandbox, cast.owner_a, COMPANIES, users=users)
    # The representative lost the administrator attribute in a few; a few are not electronic issuers.
    for company in companies[7::50]:
        sandbox.update_user(company.rut, REP, admin=False)
    for company in companies[11::100]:
        sandbox.set_company(company.rut, may_operate=False)
    sandbox.set_faults({"http500_rate": 0.02, "seed": 7, "session_expiry_pages": 45, "session_expiry_count": 6})

    started = time.monotonic()
    services.access_checks_schedule()
    _run_queued()
    elapsed = time.monotonic() - started

    items = AccessCheckItem.objects.filter(tenant=cast.tenant_a)
    assert items.count() == COMPANIES and not items.filter(status=AccessCheckItemStatus.PENDING).exists()
    runs = AccessCheckRun.objects.filter(tenant=cast.tenant_a)
    assert all(run.status == AccessCheckStatus.DONE for run in runs)
    assert COMPANIES / runs.count() >= 20  # one login shared by at least 20 companies
    by_company = {item.company.rut: item for item in items.select_related("company")}
    for rut, item in by_company.items():
        if item.status == AccessCheckItemStatus.FAILED:
            assert item.failure_code and item.failure_message, rut  # typed, with a Spanish message
            continue
        held = {u["rut"]: u for u in sandbox.users(rut)}.get(REP)
        if item.problem == AccessProblem.NOT_ADMINISTRATOR:
            assert held is not None and not held["admin"], rut
            continue
        assert held is not None, rut
        expected = [p for p in ("admin", "sign", "registry") if held[p]]
        assert item.found["permissions"] == expected, rut
        assert (item.problem == AccessProblem.PERMISSIONS_BELOW) == (expected != ["admin", "sign", "registry"]), rut
    # The faults did strike: sessions died mid-run and new ones read the rest (one login per run otherwise).
    assert sandbox.state()["sessions"][REP]["logins"] > runs.count()
    statuses = Counter(item.status for item in by_company.values())
    failures = Counter(item.failure_code for item in by_company.values() if item.status == AccessCheckItemStatus.FAILED)
    # The non-issuers fail as such; the faults are got past by the bot's own retries and new sessions.
    assert failures["company_not_authorized"] == len(companies[11::100])
    assert sum(failures.values()) - failures["company_not_authorized"] <= COMPANIES * 0.02, failures
    problems = {rut for rut, item in by_company.items() if item.status == AccessCheckItemStatus.PROBLEM}
    assert problems >= {c.rut for c in companies[7::50]}
    print(f"\n  {COMPANIES} companies in {elapsed:.1f} s over {runs.count()} runs: {dict(statuses)} {dict(failures)}")

    # One digest per admin, every problem in it once; the periodic task and a new check add none.
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@a.cl", "dueno@a.cl"]
    body = mail.outbox[0].body
    assert all(body.count(f"Cliente {companies.index(ClientCompany.objects.get(rut=rut, tenant=cast.tenant_a)):03d} SpA") == 1
               for rut in list(problems)[:20])
    sandbox.clear_faults()
    tasks.access_checks_schedule()
    services.access_check_request(tenant=cast.tenant_a, company=companies[7], requested_by=cast.admin_a)
    _run_queued()
    assert len(mail.outbox) == 2
    # The sessions the checks opened were all closed.
    assert sandbox.state()["sessions"][REP]["active"] == 0


def test_drift_through_the_control_api_shows_on_the_dashboard_after_the_next_check(  # type: ignore[no-untyped-def]
    client, cast, sandbox, in_process
) -> None:
    _, second, third = _firm(cast.tenant_a, sandbox, cast.owner_a, 3)
    services.access_check_request(tenant=cast.tenant_a, requested_by=cast.admin_a)
    _run_queued()
    client.force_login(cast.admin_a)
    url = reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"})
    assert "Cliente 001 SpA" not in client.get(url + "?acceso=problemas").content.decode()

    import httpx

    control = sandbox.env["SANDBOX_CONTROL_URL"]
    assert httpx.post(f"{control}/users/update", json={"company": second.rut, "rut": REP,
                                                       "attributes": {"FIRMAR": False}}).status_code == 200
    assert httpx.delete(f"{control}/users", params={"company": third.rut, "rut": REP}).status_code == 200
    response = client.post(reverse("staff:access_check_all", kwargs={"tenant_slug": "pyme"}))
    assert response.status_code == 302
    _run_queued()
    page = client.get(url + "?acceso=problemas").content.decode()
    assert "Cliente 001 SpA" in page and "Cliente 002 SpA" in page and "Cliente 000 SpA" not in page
    assert "Permisos inferiores a los solicitados" in page and "El representante ya no administra la empresa" in page
    second.refresh_from_db()
    assert second.access_problem == AccessProblem.PERMISSIONS_BELOW
    assert second.access_state["permissions"] == ["admin", "registry"]


@pytest.mark.timeout(600)
def test_two_workers_of_two_slots_never_exceed_the_session_cap_of_the_representative(  # type: ignore[no-untyped-def]
    cast, sandbox, start_worker, broker, settings
) -> None:
    settings.AUTORIZA_ACCESS_CHECK_QUEUE = broker["queue"]
    settings.AUTORIZA_ACCESS_CHECK_MAX_COMPANIES = 4
    cap = settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT
    assert cap == 2
    sandbox.configure(latency_ms=40)
    sandbox.set_faults({"max_sessions": cap + 2})  # the SII would accept more: the cap is ours
    _firm(cast.tenant_a, sandbox, cast.owner_a, 24)
    env = {"AUTORIZA_ACCESS_CHECK_QUEUE": broker["queue"], "AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS": "0",
           "AUTORIZA_SII_LEASE_WAIT_SECONDS": "0.5"}
    workers = [start_worker(concurrency=2, env=env), start_worker(concurrency=2, env=env)]
    runs = services.access_check_request(tenant=cast.tenant_a, requested_by=cast.admin_a)
    for run in runs:  # what the on-commit hook does in production
        services.access_check_run_send(run_id=str(run.pk))
    assert len(runs) == 6
    deadline = time.monotonic() + 120
    while AccessCheckRun.objects.exclude(status=AccessCheckStatus.DONE).exists():
        assert time.monotonic() < deadline, (
            list(AccessCheckRun.objects.values_list("status", "failure_code")), [w.log()[-3000:] for w in workers]
        )
        time.sleep(0.5)
    assert not AccessCheckItem.objects.exclude(status=AccessCheckItemStatus.VERIFIED).exists()
    seen = sandbox.state()["max_concurrent_sessions_by_rut"][REP]
    assert seen == cap  # two at once (the workers overlapped), never three
