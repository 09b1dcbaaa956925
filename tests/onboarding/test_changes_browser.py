"""End to end, for real: in headless Chromium the owner replaces the firm's representative from the
settings page (choose the new one, read the affected clients, confirm); the REPLACE job of the
client whose certificate is stored runs in a real Celery worker against the SII sandbox while the job
page polls, and the sandbox ends with only the new representative; the other client is emailed.

Run it in its own pytest session (like test_client_browser.py / test_staff_browser.py): a second
browser test with a real worker in the same session currently finds its job never delivered to its
worker (a broker-fixture leak in tests/fixtures/worker.py, not specific to this test).

Playwright's sync API runs an asyncio loop in this thread while started, so every ORM call happens
before or after the browser phase (see test_staff_browser.py).
"""
from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(180)]

playwright_sync = pytest.importorskip("playwright.sync_api")
pytest.importorskip("sii_sandbox.testing")

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COMPANY_RUT = "76086428-5"  # the sandbox's demo company, administered by the demo certificate's holder
OLD_RUT, OLD_NAME = "13322924-8", "ALEX BRITO MARDONES"
NEW_RUT = "14567890-0"  # MARCELA IGNACIA ROJAS DÍAZ, a person of the sandbox
PASSWORD = "Clave-Del-Estudio-2026"


def _tail(process) -> str:  # type: ignore[no-untyped-def]
    path = getattr(process, "log_path", None)
    return path.read_text(errors="replace")[-6000:] if path else ""


def test_owner_replaces_the_representative_and_watches_the_jobs_succeed(  # type: ignore[no-untyped-def]
    plain_http, worker, live_server, sandbox, mailoutbox
) -> None:
    from django.contrib.auth import get_user_model

    from onboarding import services
    from onboarding.models import (
        ClientCompany,
        CompanyStage,
        EnrollmentJob,
        JobKind,
        JobStatus,
        Representative,
        Role,
        SiiEnvironment,
    )
    from sii_bot.certificates import open_pkcs12

    # --- Before the browser: the firm, two clients holding the old representative in the SII ---
    User = get_user_model()
    tenant = services.tenant_create(name="Estudio E2E", slug="estudio-e2e", sii_environment=SiiEnvironment.SANDBOX)
    old = services.representative_add(tenant=tenant, rut=OLD_RUT, name=OLD_NAME)
    owner = User.objects.create_user(username="duena@e2e.cl", email="duena@e2e.cl", password=PASSWORD)
    services.membership_add(tenant=tenant, user=owner, role=Role.OWNER)
    client_user = User.objects.create_user(username="cliente@demo.cl", email="cliente@demo.cl", password=PASSWORD)
    company = services.client_company_create(
        tenant=tenant, rut=COMPANY_RUT, legal_name="Comercial Demo SpA", owner=client_user,
        owner_name="Daniela Rojas", owner_email="cliente@demo.cl",
    )
    other = services.client_company_create(
        tenant=tenant, rut="76.354.771-K", legal_name="Otra Empresa SpA", owner_name="Juan Pérez",
        owner_email="juan@otra.cl",
    )
    ClientCompany.objects.filter(pk__in=[company.pk, other.pk]).update(
        sii_user_rut=OLD_RUT, sii_admin=True, sii_sign=True, sii_registry=True, stage=CompanyStage.AUTHORIZED
    )
    demo = sandbox.pki["demo"]
    services.certificate_store(company=company, bundle=open_pkcs12(demo.path.read_bytes(), demo.password),
                               uploaded_by=client_user)
    sandbox.add_user(COMPANY_RUT, OLD_RUT, admin=True, sign=True, registry=True)
    before = {u["rut"] for u in sandbox.users(COMPANY_RUT)}

    # --- In the browser ---
    seen: dict[str, str] = {}
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="es-CL").new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{live_server.url}/ingresar/")
            page.get_by_label("Correo electrónico").fill("duena@e2e.cl")
            page.get_by_label("Contraseña").fill(PASSWORD)
            page.get_by_role("button", name="Ingresar").click()
            page.wait_for_url("**/estudio/estudio-e2e/")
            page.goto(f"{live_server.url}/estudio/estudio-e2e/configuracion/")
            page.get_by_role("link", name=f"Reemplazar a {OLD_NAME}").click()
            page.wait_for_selector("text=Elija al nuevo representante")
            page.get_by_label("Agregar otro representante").check()
            page.get_by_label("RUT del nuevo representante").fill("14.567.890-0")
            page.get_by_label("Nombre completo").fill("Marcela Ignacia Rojas Díaz")
            page.get_by_role("button", name="Continuar").click()
            page.wait_for_selector("text=Confirme el cambio")
            seen["confirm"] = " ".join(page.inner_text("main").split())
            page.get_by_role("button", name="Confirmar el reemplazo").click()
            page.wait_for_url("**/estudio/estudio-e2e/")
            seen["dashboard"] = " ".join(page.inner_text("main").split())
            page.locator(f"#company-{company.pk}").get_by_role("link", name="Ver detalle").click()
            page.wait_for_selector("#job-live")
            try:
                page.wait_for_selector(".sii-result, .failure-box", timeout=90_000)
            except playwright_sync.TimeoutError:
                seen["timeout"] = page.inner_text("#job-live")
            else:
                seen["result"] = " ".join(page.inner_text(".sii-result").split()) if page.locator(".sii-result").count() else ""
                seen["live"] = page.inner_text("#job-live")
            seen["facts"] = " ".join(page.inner_text(".job-facts").split())
        finally:
            browser.close()

    # --- After the browser: what the pages said, the database and the sandbox ---
    job = EnrollmentJob.objects.get(company=company)
    assert "timeout" not in seen and seen["result"], (
        seen.get("timeout") or seen.get("live"), job.status, job.failure_code, job.failure_detail, _tail(worker)
    )
    assert "Comercial Demo SpA" in seen["confirm"] and "Otra Empresa SpA" in seen["confirm"]
    assert "Se hará de inmediato" in seen["confirm"] and "Se pedirá al cliente" in seen["confirm"]
    assert "Representante reemplazado" in seen["dashboard"]
    assert "REEMPLAZO DE REPRESENTANTE" in seen["result"] and OLD_NAME in seen["result"]
    assert "Reemplazar representante" in seen["facts"]
    job = EnrollmentJob.objects.get(company=company)
    assert (job.kind, job.status, job.user_rut, job.old_user_rut) == (JobKind.REPLACE, JobStatus.SUCCEEDED, NEW_RUT, OLD_RUT)
    assert not EnrollmentJob.objects.filter(company=other).exists()
    after = {u["rut"] for u in sandbox.users(COMPANY_RUT)}
    assert after == (before - {OLD_RUT}) | {NEW_RUT}
    company.refresh_from_db()
    assert company.sii_user_rut == NEW_RUT and company.stage == CompanyStage.AUTHORIZED
    assert not Representative.objects.get(pk=old.pk).is_active
    assert any(m.to == ["juan@otra.cl"] for m in mailoutbox)
