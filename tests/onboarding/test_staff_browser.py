"""End to end, for real, on the firm's side: a client's first attempt fails against the SII sandbox
(HTTP 500 on every enrolment page, automatic retries off); in headless Chromium a staff member finds
the client by RUT but may not re-run it; an admin re-runs it from the dashboard; the new attempt
succeeds against the sandbox in a real Celery worker process while the job page polls; the owner
sees the re-run in the audit log.

The worker, broker and plain-http fixtures are the client side's (tests/onboarding/
test_client_browser.py), imported rather than duplicated. Playwright's sync API runs an asyncio loop
in this thread while started, so every ORM call happens before or after the browser phase.
"""
from __future__ import annotations

import os
import time

import pytest
from django.conf import settings as django_settings


pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(300)]

playwright_sync = pytest.importorskip("playwright.sync_api")
pytest.importorskip("sii_sandbox.testing")
# The worker fixtures (`plain_http`, `broker`, `worker`) come from tests/fixtures/worker.py, a plugin.

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMPANY_RUT = "76086428-5"  # sii_sandbox.state.DEMO_COMPANY_RUT, administered by the demo certificate's holder
REPRESENTATIVE_RUT = "11111111-1"  # a person of the sandbox, not yet a user of the demo company
REPRESENTATIVE_NAME = "JUAN PEREZ GONZALEZ"
PASSWORD = "Clave-Del-Estudio-2026"


@pytest.fixture
def no_automatic_retries(monkeypatch, settings):  # type: ignore[no-untyped-def]
    """A transient SII failure ends the attempt at once (here and in the worker, which reads the env)."""
    monkeypatch.setenv("AUTORIZA_JOB_MAX_RETRIES", "0")
    settings.AUTORIZA_JOB_MAX_RETRIES = 0


@pytest.fixture
def staff_worker(no_automatic_retries, worker):  # type: ignore[no-untyped-def]
    """The shared worker fixture, started after retries are switched off (fixture order matters)."""
    return worker


def _wait_for_status(job_id: object, statuses: set[str], timeout: float = 150.0) -> object:
    from onboarding.models import EnrollmentJob

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = EnrollmentJob.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {EnrollmentJob.objects.get(pk=job_id).status} after {timeout:.0f} s")


def _log_in(page, base_url: str, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base_url}/ingresar/")
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Ingresar").click()
    page.wait_for_url("**/estudio/estudio-e2e/")


def _tail(process) -> str:  # type: ignore[no-untyped-def]
    path = getattr(process, "log_path", None)
    return path.read_text(errors="replace")[-6000:] if path else ""


def test_staff_finds_a_failed_client_an_admin_reruns_it_and_the_audit_shows_it(  # type: ignore[no-untyped-def]
    plain_http, staff_worker, live_server, sandbox
) -> None:
    from django.contrib.auth import get_user_model

    from onboarding import services
    from onboarding.models import AuditAction, AuditEntry, EnrollmentJob, JobStatus, Role, SiiEnvironment
    from sii_bot.certificates import open_pkcs12

    # --- Before the browser: the firm, its people, the client and its failed first attempt ---
    User = get_user_model()
    tenant = services.tenant_create(name="Estudio E2E", slug="estudio-e2e", sii_environment=SiiEnvironment.SANDBOX)
    services.representative_add(tenant=tenant, rut=REPRESENTATIVE_RUT, name=REPRESENTATIVE_NAME)
    people = {}
    for email, role in (("duena@e2e.cl", Role.OWNER), ("admin@e2e.cl", Role.ADMIN), ("personal@e2e.cl", Role.STAFF)):
        people[role] = User.objects.create_user(username=email, email=email, password=PASSWORD)
        services.membership_add(tenant=tenant, user=people[role], role=role)
    client_user = User.objects.create_user(username="duena@comercialdemo.cl", email="duena@comercialdemo.cl", password=PASSWORD)
    company = services.client_company_create(
        tenant=tenant, rut=COMPANY_RUT, legal_name="Comercial Demo SpA", owner=client_user, owner_name="Daniela Rojas",
        owner_email="duena@comercialdemo.cl",
    )
    demo = sandbox.pki["demo"]
    certificate = services.certificate_store(
        company=company, bundle=open_pkcs12(demo.path.read_bytes(), demo.password), uploaded_by=client_user
    )
    sandbox.set_faults({"http500_rate": 1.0})  # the SII is down: every enrolment page answers HTTP 500
    first = services.enrollment_job_create(company=company, certificate=certificate, created_by=client_user)
    first = _wait_for_status(first.pk, {JobStatus.FAILED, JobStatus.SUCCEEDED})
    assert first.status == JobStatus.FAILED, _tail(staff_worker)
    assert first.failure_code == "sii_unavailable", (first.failure_code, first.failure_detail)
    assert first.certificate.is_usable  # kept for a re-run
    sandbox.clear_faults()  # the SII is back
    assert REPRESENTATIVE_RUT not in {u["rut"] for u in sandbox.users(COMPANY_RUT)}

    # --- In the browser ---
    seen: dict[str, str] = {}
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            console: list[str] = []

            def new_page(width: int):  # type: ignore[no-untyped-def]
                context = browser.new_context(viewport={"width": width, "height": 900}, locale="es-CL")
                page = context.new_page()
                page.set_default_timeout(20_000)
                page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
                page.on("dialog", lambda dialog: dialog.accept())  # the "¿Reintentar…?" confirm
                return page

            # 1. Staff (no admin role), on a phone: finds the failed client by RUT, without dots.
            page = new_page(390)
            _log_in(page, live_server.url, "personal@e2e.cl")
            page.get_by_label("Buscar por RUT o nombre").fill("76086428-5")
            page.get_by_role("button", name="Filtrar").click()
            page.wait_for_url("**q=76086428-5**")
            row = page.locator(f"#company-{company.pk}")
            assert "Con error" in row.inner_text() and "Comercial Demo SpA" in row.inner_text()
            assert page.locator("input.rerun-pick").count() == 0
            assert page.get_by_role("button", name="Reintentar seleccionados").count() == 0
            row.get_by_role("link", name="Ver detalle").click()
            page.wait_for_selector("text=Falló")
            assert "HTTP" in page.inner_text("#job-live") or "sii_unavailable" in page.inner_text("#job-live")
            assert page.get_by_role("button", name="Reintentar").count() == 0
            page.context.close()

            # 2. Admin, on a desktop: searches another spelling, ticks the row, re-runs the selection.
            page = new_page(1280)
            _log_in(page, live_server.url, "admin@e2e.cl")
            page.get_by_label("Buscar por RUT o nombre").fill("76.086.428-5")
            page.get_by_label("Estado").select_option("failed")
            page.get_by_role("button", name="Filtrar").click()
            page.wait_for_url("**estado=failed**")
            page.locator(f"#company-{company.pk} input.rerun-pick").check()
            assert page.inner_text("#selected-count") == "1 cliente seleccionado."
            page.get_by_role("button", name="Reintentar seleccionados").click()
            page.wait_for_selector("text=Reintento de clientes con error")
            seen["report"] = " ".join(page.inner_text("main").split())
            page.get_by_role("link", name="Ver el nuevo intento").click()

            # 3. The new attempt runs in the worker; the job page polls until the SII's answer.
            page.wait_for_selector("#job-live")
            page.wait_for_selector(".sii-result, .failure-box", timeout=180_000)
            if page.locator(".failure-box").count():
                pytest.fail("the re-run failed: " + page.inner_text("#job-live") + "\n" + _tail(staff_worker))
            assert page.locator("#job-live[hx-trigger]").count() == 0  # polling stopped
            seen["result"] = " ".join(page.inner_text(".sii-result").split())
            seen["attempts"] = " ".join(page.inner_text("table.attempts").split())
            page.context.close()

            # 4. The owner reads the audit log.
            page = new_page(1280)
            _log_in(page, live_server.url, "duena@e2e.cl")
            page.get_by_role("link", name="Auditoría").click()
            page.get_by_label("Acción").select_option("rerun")
            page.get_by_role("button", name="Filtrar").click()
            page.wait_for_url("**accion=rerun**")
            seen["audit"] = " ".join(page.inner_text("table.audit").split())
            assert not console, console
        finally:
            browser.close()

    # --- After the browser: what the pages said, the database and the sandbox ---
    assert "1 en cola" in seen["report"] and "Comercial Demo SpA" in seen["report"]
    assert "Se ha grabado satisfactoriamente el nuevo usuario en la empresa" in seen["result"]
    assert "Rut Usuario 11.111.111-1" in seen["result"] and f"Nombre Usuario {REPRESENTATIVE_NAME}" in seen["result"]
    assert "Autorización, intento 2 (este) Autorizado" in seen["attempts"]
    assert "Autorización, intento 1 Con error" in seen["attempts"]
    assert "admin@e2e.cl" in seen["audit"] and "Reintento de Autorización, intento 1 de Comercial Demo SpA" in seen["audit"]

    second = EnrollmentJob.objects.get(rerun_of=first)
    assert (second.attempt, second.status, second.created_by) == (2, JobStatus.SUCCEEDED, people[Role.ADMIN])
    assert EnrollmentJob.objects.get(pk=first.pk).status == JobStatus.FAILED  # history kept
    assert AuditEntry.objects.filter(tenant=tenant, action=AuditAction.RERUN, actor=people[Role.ADMIN]).count() == 1
    assert REPRESENTATIVE_RUT in {u["rut"] for u in sandbox.users(COMPANY_RUT)}
    assert PASSWORD.encode() not in staff_worker.log_path.read_bytes()  # type: ignore[attr-defined]
    assert django_settings.AUTORIZA_JOB_MAX_RETRIES == 0
