"""End to end, for real: a client signs up in Chromium, uploads a legacy-encrypted certificate from the
sandbox PKI, consents, and watches the status page reach SII's confirmation while a real Celery
worker process runs the job against the SII sandbox; the sandbox then lists the representative.

Pieces: pytest-django's `live_server` (web), a `celery worker` subprocess sharing the test database
file and the broker (a tmp folder with the filesystem transport, or Redis when REDIS_URL is set), the
`sandbox` fixture of `sii_sandbox.testing`, and Playwright's sync API. Playwright runs an asyncio loop
in this thread while it is started, so every ORM call happens before or after it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(300)]

playwright_sync = pytest.importorskip("playwright.sync_api")
pytest.importorskip("sii_sandbox.testing")

BASE_DIR = Path(django_settings.BASE_DIR)
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPRESENTATIVE_RUT = "11111111-1"  # sii_sandbox.state.DEMO_USER_RUT, not yet a user of the demo company
REPRESENTATIVE_NAME = "JUAN PEREZ GONZALEZ"
COMPANY_RUT = "76086428-5"  # sii_sandbox.state.DEMO_COMPANY_RUT, administered by the demo holder
PASSWORD = "Clave-Segura-De-Prueba-2026"


# The worker fixtures (`plain_http`, `broker`, `worker`) come from tests/fixtures/worker.py, a plugin.


def test_client_signs_up_uploads_consents_and_sees_the_sii_confirmation(  # type: ignore[no-untyped-def]
    plain_http, worker, live_server, sandbox
) -> None:
    from onboarding import services
    from onboarding.models import Certificate, EnrollmentJob, JobStatus, SiiEnvironment

    # --- Before the browser: the firm (ORM work must not overlap Playwright in this thread) ---
    tenant = services.tenant_create(
        name="Contadores del Sandbox", slug="sandbox-e2e", sii_environment=SiiEnvironment.SANDBOX,
        grant_admin=False, grant_sign=True, grant_registry=True,
    )
    services.representative_add(tenant=tenant, rut=REPRESENTATIVE_RUT, name=REPRESENTATIVE_NAME)
    pfx = sandbox.pki["demo"]
    assert sandbox.users(COMPANY_RUT) and REPRESENTATIVE_RUT not in {u["rut"] for u in sandbox.users(COMPANY_RUT)}

    # --- The client, in a real browser ---
    confirmation: dict[str, str] = {}
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="es-CL")
            csp_violations: list[str] = []
            page.on("console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.set_default_timeout(20_000)

            page.goto(f"{live_server.url}/registro/sandbox-e2e/")
            assert "Contadores del Sandbox" in page.content()
            assert "11.111.111-1" in page.inner_text("main")
            page.get_by_label("Correo electrónico").fill("duena@comercialdemo.cl")
            page.get_by_label("Contraseña", exact=True).fill(PASSWORD)
            page.get_by_label("RUT de la empresa").fill("76.086.428-5")
            page.get_by_label("Razón social").fill("Comercial Demo SpA")
            page.get_by_label("Su nombre").fill("Daniela Rojas")
            page.get_by_role("button", name="Crear cuenta y continuar").click()

            page.wait_for_url("**/certificado/")
            page.get_by_label("Archivo del certificado digital (.pfx o .p12)").set_input_files(str(pfx.path))
            page.get_by_label("Contraseña del certificado").fill(pfx.password or "")
            page.get_by_role("button", name="Verificar certificado").click()

            page.wait_for_selector("text=Certificado verificado")
            review = page.inner_text("main")
            assert pfx.holder_name in review and "10.345.678-9" in review and "76.086.428-5" in review
            page.get_by_role("link", name="Continuar").click()

            page.wait_for_selector("text=Confirme la autorización")
            consent = " ".join(page.inner_text("main").split())
            assert REPRESENTATIVE_NAME in consent and "11.111.111-1" in consent
            assert "Usuario Administrador: NO" in consent and "Firmar Documentos: SI" in consent and "Registro: SI" in consent
            page.get_by_role("checkbox").check()
            page.get_by_role("button", name="Confirmar y autorizar").click()

            page.wait_for_url("**/trabajo/*/")
            assert page.locator('#job-status[hx-trigger="every 2s"]').count() == 1  # polling while unfinished
            page.wait_for_selector(".client-sii-table, .job-status .failure", timeout=180_000)
            if page.locator(".job-status .failure").count():
                pytest.fail("the job failed: " + page.inner_text("#job-status") + "\n" + _tail(worker))
            assert page.locator("#job-status[hx-trigger]").count() == 0  # polling stopped
            for cell in page.locator(".client-sii-table td").all():
                confirmation[cell.get_attribute("data-label") or ""] = cell.inner_text().strip()
            outcome = page.inner_text(".job-status .outcome")
            assert not csp_violations, csp_violations
        finally:
            browser.close()

    # --- After the browser: what the page said, the database and the sandbox ---
    assert outcome == "Usuario autorizado"
    assert confirmation["Rut Usuario"] == "11.111.111-1"
    assert confirmation["Nombre Usuario"] == REPRESENTATIVE_NAME
    assert (confirmation["Usuario-Administrador"], confirmation["Firmar Documentos"], confirmation["Registro"]) == ("NO", "SI", "SI")
    job = EnrollmentJob.objects.get(tenant=tenant)
    assert job.status == JobStatus.SUCCEEDED and job.outcome == "created"
    certificate = Certificate.objects.get(tenant=tenant)
    assert certificate.destroyed_at is not None and certificate.sealed_material is None  # erased after use
    users = {u["rut"]: u for u in sandbox.users(COMPANY_RUT)}
    added = users[REPRESENTATIVE_RUT]
    assert (added["admin"], added["sign"], added["registry"]) == (False, True, True)
    assert added["authorized_by"] == pfx.holder_rut
    assert any(entry.get("user") == REPRESENTATIVE_RUT for entry in sandbox.state()["log"])
    assert PASSWORD.encode() not in worker.log_path.read_bytes()  # type: ignore[attr-defined]
    assert (pfx.password or "").encode() not in worker.log_path.read_bytes()  # type: ignore[attr-defined]


def _tail(process) -> str:  # type: ignore[no-untyped-def]
    path = getattr(process, "log_path", None)
    return path.read_text(errors="replace")[-6000:] if path else ""

