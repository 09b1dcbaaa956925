"""Issue #19's walk-through, again, in headless Chromium: what people read on the pages.

1. A client ends the relationship ("Terminar la relación"); the removal runs; the firm's job page,
   attempts table, audit log and CSV say "Retirado"/"Retiro", never "Autorizado".
2. A client failed and its certificate is gone (the SII rejected it): the dashboard row says why it
   cannot be retried, its counter and hint agree, and an admin asks the client for a new certificate
   with the row's button (the e-mail goes out).
3. Back after an invited signup leads to the new company, not to "Este enlace de invitación no es
   válido" and a form to register another company.
4. A job waits ~30 minutes for its automatic retry after the SII failed: an admin clicks "Reintentar
   ahora", and the job page, polling, shows the authorization done.

The SII is `sii_bot`'s functions replaced by scripted fakes and the jobs run in this process (through
`services.enrollment_job_execute`, as the worker's task does): the pages and services are the real
ones, the browser is real, and the whole runs in well under a minute. The SII itself, a real worker
and the bot are covered by test_client_browser.py, test_staff_browser.py and test_changes_browser.py.

Playwright's sync API runs an asyncio loop in this thread while started, so the ORM work done during
the browser phase (running a job) happens in a helper thread with its own connection.

Screenshots of every page visited, at desktop and phone sizes, are saved under
`<AUTORIZA_VAR_DIR>/artifacts/walkthrough/` for people to look at.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connections
from django.urls import reverse
from django.utils import timezone

import sii_bot
from sii_bot import errors

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
NEW_PASSWORD = "Clave-Nueva-De-La-Invitada-2026"
# Words a person must never read on these pages: machine codes, the old label, internal noise.
NEVER_SHOWN = ("Re-ejecutar", "certificate_rejected", "sii_unavailable", "pid=", "boot=", "Traceback")

RECORD = sii_bot.SiiUserRecord(
    company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut="13322924-8",
    user_name="ALEX BRITO MARDONES", admin=True, sign=True, registry=True, authorized_by="MARIA JOSE SOTO",
)


class ScriptedSii:
    """Stands in for `sii_bot.enroll` and `sii_bot.revoke`: each call takes the next outcome of its
    queue (None: success; an exception: raised after the login step started)."""

    def __init__(self) -> None:
        self.enroll_outcomes: list[BaseException | None] = []
        self.revoke_outcomes: list[BaseException | None] = []

    def enroll(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="started", message=""))
        failure = self.enroll_outcomes.pop(0) if self.enroll_outcomes else None
        if failure is not None:
            raise failure
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="done", message=""))
        return sii_bot.EnrollmentResult(outcome="created", record=RECORD)

    def revoke(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="started", message=""))
        failure = self.revoke_outcomes.pop(0) if self.revoke_outcomes else None
        if failure is not None:
            raise failure
        on_progress(sii_bot.ProgressEvent(step=sii_bot.Step.LOGIN, status="done", message=""))
        return sii_bot.RevocationResult(outcome="revoked", company_rut=request.company_rut, user_rut=request.user_rut,
                                        final_entries={request.user_rut: None})


@pytest.fixture
def sii(monkeypatch) -> ScriptedSii:  # type: ignore[no-untyped-def]
    fake = ScriptedSii()
    monkeypatch.setattr(sii_bot, "enroll", fake.enroll)
    monkeypatch.setattr(sii_bot, "revoke", fake.revoke)
    return fake


@pytest.fixture
def artifacts() -> Path:
    """The folder the screenshots go to, emptied of a previous run's."""
    folder = Path(django_settings.VAR_DIR) / "artifacts" / "walkthrough"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


def in_own_thread(function: Callable[[], Any]) -> Any:
    """`function()`'s result, run in a thread of its own (its own database connection, closed after):
    the ORM refuses to run in this thread while Playwright's loop is running."""
    def run() -> Any:
        try:
            return function()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def run_job(job_id: object) -> Any:
    """What the worker's task does with a job it receives, with on-commit work done at commit."""
    from onboarding import services

    return services.enrollment_job_execute(job_id=str(job_id))


def text(page) -> str:  # type: ignore[no-untyped-def]
    return " ".join(page.inner_text("body").split())


# Every RUT on the page ("76.086.428-5", "10345678-9") that the browser laid out over two lines.
RUTS_BROKEN_ACROSS_LINES = """() => {
  const broken = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const pattern = /\\d{1,2}\\.?\\d{3}\\.?\\d{3}-[\\dkK]/g;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.data.matchAll(pattern)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      if (tops.size > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""

# The page's words without the small "código: …" support references the firm's job page keeps.
WORDS_BUT_CODE_REFERENCES = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll(".code-ref, script, style, template").forEach((element) => element.remove());
  return body.textContent;
}"""


def test_walkthrough_defects_1_to_4(  # type: ignore[no-untyped-def]
    plain_http, live_server, cast, certificate_bundle, sii, enqueued, artifacts
) -> None:
    from onboarding import services
    from onboarding.models import (
        AuditAction,
        AuditEntry,
        Certificate,
        ClientCompany,
        EnrollmentJob,
        Invitation,
        JobKind,
        JobStatus,
    )
    from tests.onboarding.staff_factories import certificate_make, company_make

    # --- Before the browser: the firm's clients, as the worker left them ---------------------------
    cast.tenant_a.notification_emails = "avisos@pyme.cl"
    cast.tenant_a.save()
    # Defect 1: Comercial Demo SpA was authorized; its certificate is stored again for the removal.
    first = services.enrollment_job_create(
        company=cast.company_a, certificate=certificate_make(cast.company_a, certificate_bundle), created_by=cast.client_a
    )
    assert run_job(first.pk).status == JobStatus.SUCCEEDED
    certificate_make(cast.company_a, certificate_bundle)
    # Defect 2: the SII rejected Ferretería's certificate, which was then erased.
    rejected = company_make(cast.tenant_a, "96874030-K", "Ferretería Sin Certificado Ltda.",
                            owner_name="José Peña", owner_email="jose@ferreteria.cl")
    sii.enroll_outcomes = [errors.CertificateRejected("tlsv1 alert unknown ca", step="login")]
    failed = services.enrollment_job_create(company=rejected, certificate=certificate_make(rejected, certificate_bundle),
                                            created_by=None)
    failed = run_job(failed.pk)
    assert failed.status == JobStatus.FAILED and not Certificate.objects.get(pk=failed.certificate_id).is_usable
    # Defect 4: the SII was down for Panadería's job, which waits ~30 minutes for its automatic retry.
    waiting = company_make(cast.tenant_a, "60803000-K", "Panadería Espera SpA", owner_name="Ana Díaz",
                           owner_email="ana@panaderia.cl")
    sii.enroll_outcomes = [errors.SiiUnavailable("HTTP 500 on eu_enrola_usuarios", step="login")]
    retry = services.enrollment_job_create(company=waiting, certificate=certificate_make(waiting, certificate_bundle),
                                           created_by=None)
    retry = run_job(retry.pk)
    assert retry.status == JobStatus.QUEUED and retry.retry_count == 1 and retry.failure_code == "sii_unavailable"
    # Defect 3: an invitation.
    invited = company_make(cast.tenant_a, "76369187-K", "Invitada Ltda.", stage="invited")
    invitation = Invitation.objects.create(
        tenant=cast.tenant_a, company=invited, email="invitada@empresa.cl", name="Jorge Invitado",
        expires_at=timezone.now() + timedelta(days=7),
    )
    invitation_url = reverse("client:signup", kwargs={"tenant_slug": "pyme"}) + (
        f"?invitacion={services.invitation_token(invitation=invitation)}"
    )
    mail.outbox.clear()
    enqueued.reset_mock()

    base = live_server.url
    dashboard_url = f"{base}{reverse('staff:dashboard', kwargs={'tenant_slug': 'pyme'})}"

    def staff_job_url(job_id: object) -> str:
        return f"{base}{reverse('staff:job_detail', kwargs={'tenant_slug': 'pyme', 'job_id': job_id})}"

    seen: dict[str, str] = {}
    shots: list[str] = []
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            def context(viewport: dict[str, int]):  # type: ignore[no-untyped-def]
                ctx = browser.new_context(viewport=viewport, locale="es-CL")
                ctx.set_default_timeout(15_000)
                return ctx

            def shoot(page, name: str) -> None:  # type: ignore[no-untyped-def]
                """A full-page screenshot, and the page's words checked for what must never show."""
                page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
                shots.append(name)
                words = " ".join(page.evaluate(WORDS_BUT_CODE_REFERENCES).split())
                assert page.evaluate(RUTS_BROKEN_ACROSS_LINES) == [], name
                assert not re.search(r"(?<!\.)\.\.(?!\.)", words), (name, "a name's period doubled", words)
                for never in NEVER_SHOWN:
                    assert never not in words, (name, never, words)

            def log_in(ctx, email: str):  # type: ignore[no-untyped-def]
                page = ctx.new_page()
                page.on("dialog", lambda dialog: dialog.accept())  # the "¿Reintentar…?" confirms
                page.goto(f"{base}/ingresar/")
                page.get_by_label("Correo electrónico").fill(email)
                page.get_by_label("Contraseña").fill(cast.password)
                page.get_by_role("button", name="Ingresar").click()
                page.wait_for_load_state()
                return page

            # --- Defect 3: Back after an invited signup (a phone) ---
            invitee = context(PHONE).new_page()
            invitee.goto(base + invitation_url)
            assert "Invitada Ltda." in text(invitee)
            shoot(invitee, "3-invitation-phone")
            invitee.get_by_label("Contraseña", exact=True).fill(NEW_PASSWORD)
            invitee.get_by_role("button", name="Crear cuenta y continuar").click()
            invitee.wait_for_url("**/certificado/")
            shoot(invitee, "3-wizard-upload-phone")
            # The wizard's three steps fit on one row of a phone ("3 Autorizar" does not wrap).
            def wizard_rows() -> int:
                steps = invitee.locator(".wizard-steps li").all()
                return len({round(box["y"]) for box in (step.bounding_box() for step in steps) if box})

            seen["wizard_rows"] = str(wizard_rows())
            invitee.set_viewport_size({"width": 320, "height": 640})  # the narrowest phones still in use
            seen["wizard_rows_320"] = str(wizard_rows())
            shoot(invitee, "3-wizard-upload-phone-320")
            invitee.set_viewport_size(PHONE)
            invitee.go_back()
            invitee.wait_for_load_state()
            seen["back"] = text(invitee)
            seen["back_url"] = invitee.url
            shoot(invitee, "3-back-after-signup-phone")
            invitee.goto(base + invitation_url)  # the link from the e-mail, opened again
            seen["again_url"] = invitee.url
            invitee.context.close()

            # --- Defect 1: the client ends the relationship; the removal runs ---
            client_page = log_in(context(DESKTOP), cast.client_a.email)
            client_page.goto(f"{base}{reverse('client:company', kwargs={'company_id': cast.company_a.pk})}")
            client_page.get_by_role("link", name=re.compile("Terminar la relación")).click()
            client_page.wait_for_url("**/terminar/")
            shoot(client_page, "1-client-end-desktop")
            client_page.get_by_role("button", name="Terminar la relación").click()
            client_page.wait_for_url("**/trabajo/*/")
            removal_id = client_page.url.rstrip("/").rsplit("/", 1)[1]
            removal = in_own_thread(lambda: run_job(removal_id))
            assert (removal.kind, removal.status) == (JobKind.REVOKE, JobStatus.SUCCEEDED)
            client_page.wait_for_selector("text=Retirado", timeout=20_000)  # the page polls
            shoot(client_page, "1-client-removal-desktop")
            client_page.context.close()

            owner_ctx = context(DESKTOP)
            owner = log_in(owner_ctx, cast.owner_a.email)
            owner.goto(staff_job_url(removal_id))
            seen["removal_status"] = " ".join(owner.inner_text("#status-title").split())
            seen["removal_attempts"] = " ".join(owner.inner_text("table.attempts").split())
            seen["removal_page"] = text(owner)
            shoot(owner, "1-staff-removal-desktop")
            owner.goto(f"{base}{reverse('staff:audit', kwargs={'tenant_slug': 'pyme'})}")
            seen["audit"] = " ".join(owner.inner_text("table.audit").split())
            shoot(owner, "1-staff-audit-desktop")
            export = owner.request.get(f"{base}{reverse('staff:dashboard_export', kwargs={'tenant_slug': 'pyme'})}")
            seen["csv"] = export.body().decode("utf-8-sig")
            owner_phone = log_in(context(PHONE), cast.owner_a.email)
            owner_phone.goto(staff_job_url(removal_id))
            shoot(owner_phone, "1-staff-removal-phone")
            owner_phone.goto(f"{base}{reverse('staff:audit', kwargs={'tenant_slug': 'pyme'})}")
            shoot(owner_phone, "1-staff-audit-phone")
            owner_phone.context.close()
            owner_ctx.close()

            # --- Defect 2: the dashboard says why, and the admin asks for a new certificate ---
            admin = log_in(context(DESKTOP), cast.admin_a.email)
            admin.goto(dashboard_url)
            row = admin.locator(f"#company-{rejected.pk}")
            seen["blocked_row"] = " ".join(row.inner_text().split())
            seen["blocked_checkboxes"] = str(row.locator("input.rerun-pick").count())
            seen["selected_count"] = admin.inner_text("#selected-count")
            seen["dashboard"] = text(admin)
            shoot(admin, "2-dashboard-desktop")
            admin_phone = log_in(context(PHONE), cast.admin_a.email)
            admin_phone.goto(dashboard_url)
            shoot(admin_phone, "2-dashboard-phone")
            row.get_by_role("button", name="Pedir nuevo certificado").click()
            admin.wait_for_selector("text=un nuevo certificado para Ferretería Sin Certificado Ltda.")
            seen["asked"] = text(admin)
            seen["asked_row"] = " ".join(admin.locator(f"#company-{rejected.pk}").inner_text().split())
            shoot(admin, "2-certificate-asked-desktop")

            # --- Defect 4: "Reintentar ahora" once the SII is back ---
            admin.goto(staff_job_url(retry.pk))
            seen["waiting"] = text(admin)
            shoot(admin, "4-waiting-retry-desktop")
            admin_phone.goto(staff_job_url(retry.pk))
            shoot(admin_phone, "4-waiting-retry-phone")
            admin.get_by_role("button", name="Reintentar ahora").click()
            admin.wait_for_selector("text=Reintentando ahora la autorización de Panadería Espera SpA.")
            done = in_own_thread(lambda: run_job(retry.pk))
            assert done.status == JobStatus.SUCCEEDED, (done.failure_code, done.failure_detail)
            admin.wait_for_selector(".sii-result", timeout=20_000)  # the page polls until the SII's answer
            assert admin.locator("#job-live[hx-trigger]").count() == 0  # polling stopped
            seen["retried_attempts"] = " ".join(admin.inner_text("table.attempts").split())
            shoot(admin, "4-retried-now-desktop")
            admin_phone.goto(staff_job_url(retry.pk))
            shoot(admin_phone, "4-retried-now-phone")
            admin_phone.goto(dashboard_url)
            shoot(admin_phone, "all-dashboard-after-phone")
        finally:
            browser.close()

    # --- After the browser: what the pages said, the mail, the audit --------------------------------
    # 1. The removal, everywhere the firm looks.
    assert seen["removal_status"] == "Estado: Retirado"
    assert "Retiro, intento 1 (este) Retirado" in seen["removal_attempts"]
    assert "Autorización, intento 1 Autorizado" in seen["removal_attempts"]
    assert "Intento 2" not in seen["removal_page"]
    assert "Retiro terminado" in seen["audit"]
    company_line = next(line for line in seen["csv"].splitlines() if "Comercial Demo SpA" in line)
    assert "Retiro, intento 1;Retirado" in company_line and "Autorizado" not in company_line
    assert company_line.startswith("76.086.428-5;")  # the RUT as every screen writes it
    # 2. The row says why, and what the admin can do; the counter and the hint agree.
    assert "Sin certificado: el cliente debe subir uno nuevo" in seen["blocked_row"]
    assert seen["blocked_checkboxes"] == "0"
    assert "No hay clientes con error en esta página" not in seen["dashboard"]
    assert "no se puede reintentar: falta su certificado" in seen["selected_count"]
    assert "Nuevo certificado pedido a las" in seen["asked_row"] and "Pedir nuevo certificado" not in seen["asked_row"]
    (asked,) = [message for message in mail.outbox if message.to == ["jose@ferreteria.cl"]]
    assert asked.subject == "Se necesita un nuevo certificado digital: Ferretería Sin Certificado Ltda."
    assert AuditEntry.objects.filter(tenant=cast.tenant_a, action=AuditAction.INVITATION, actor=cast.admin_a).count() == 1
    # 3. Back leads to the company; so does the spent link opened again by who used it.
    company_path = reverse("client:company", kwargs={"company_id": invited.pk})
    upload_path = reverse("client:certificate_upload", kwargs={"company_id": invited.pk})
    assert "Este enlace de invitación no es válido" not in seen["back"], seen["back"]
    assert seen["back_url"].endswith((company_path, upload_path)), seen["back_url"]
    assert "Invitada Ltda." in seen["back"]
    assert seen["wizard_rows"] == seen["wizard_rows_320"] == "1"
    assert seen["again_url"].endswith(company_path), seen["again_url"]
    assert ClientCompany.objects.filter(tenant=cast.tenant_a, rut="76369187-K").count() == 1
    # 4. The waiting retry was offered, run now, audited and done.
    assert "Reintentar ahora" in seen["waiting"] and "El sitio del SII no está disponible" in seen["waiting"]
    assert "Autorización, intento 1 (este) Autorizado" in seen["retried_attempts"]
    entry = AuditEntry.objects.get(tenant=cast.tenant_a, action=AuditAction.RERUN)
    assert entry.actor == cast.admin_a and entry.details["retry_now"] is True
    assert EnrollmentJob.objects.get(pk=retry.pk).status == JobStatus.SUCCEEDED
    assert {f"{name}.png" for name in shots} <= {path.name for path in artifacts.glob("*.png")}
