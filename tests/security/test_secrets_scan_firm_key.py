"""After a run of changes made with the firm's own keys, the keys' passwords and private keys are
nowhere (the secrets scan of `test_secrets_scan.py`, for firm keys).

The run: an admin uploads two representatives' certificates through the firm's keys page (Django's
test client, the real view and in-memory upload handler), each exported with a password of this run
only; the owner replaces the old representative by the new one through the web; a real worker (DEBUG
logging, screenshots on) drives Chromium against the SII sandbox: for one client the old key adds the
new representative and the new key removes the old one; for another the sandbox says the old one
does not administer the company, and the change falls back to e-mailing the client. Then the
database, Redis (with REDIS_URL), the worker's log, this process's log, the e-mails, every file
created or changed in the temp and var directories, and the decrypted evidence are scanned for both
keys and passwords in every encoding `needles_for` knows.
"""
from __future__ import annotations

import logging
import re
import secrets
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.reliability.support import jobs_drain
from tests.security.test_secrets_scan import (
    Scanner,
    needles_for,
    other_pytest_sessions,
    scan_database,
    scan_redis,
    snapshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(600)]

OLD, NEW = "13322924-8", "12531909-2"  # the sandbox PKI's "representative" and "admin2" holders
ADMINISTERED, NOT_ADMINISTERED = "79600001-5", "79600002-3"


def exported(sandbox, name: str, password: str) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    """The PKI entry `name` exported as a .pfx with `password`: (pfx, its private key as PKCS#8 PEM)."""
    from sii_sandbox.pki import legacy_pfx

    entry = sandbox.pki[name]
    key = serialization.load_pem_private_key(entry.key_pem.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(entry.cert_pem.read_bytes())
    chain = [x509.load_pem_x509_certificate(block) for block in re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", sandbox.pki.ca_bundle.read_bytes(), re.DOTALL)]
    pfx = legacy_pfx(key, cert, chain[:1], password, "llave")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pfx, key_pem


def test_no_firm_key_password_or_private_key_anywhere_after_changes_made_with_it(  # type: ignore[no-untyped-def]
    start_worker, routed_broker, sandbox, tmp_path_factory, tmp_path, caplog, settings
) -> None:
    from onboarding import services
    from onboarding.domain.firm_access import CONSENT_EDITION
    from onboarding.models import (
        ClientCompany,
        CompanyStage,
        EnrollmentJob,
        FirmKey,
        JobArtifact,
        JobStatus,
        Role,
        SiiEnvironment,
    )
    from onboarding.services.firm_keys import firm_key_opened

    caplog.set_level(logging.DEBUG)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    passwords = {OLD: "Llave-" + secrets.token_urlsafe(18), NEW: "Llave-" + secrets.token_urlsafe(18)}
    files = {OLD: exported(sandbox, "representative", passwords[OLD]), NEW: exported(sandbox, "admin2", passwords[NEW])}
    needles: dict[str, bytes] = {}
    for rut, (pfx, key_pem) in files.items():
        needles.update({f"{rut}:{name}": value for name, value in needles_for(pfx, passwords[rut], key_pem).items()})
    admins_machine = tmp_path / "admin-machine"  # where the admin keeps the files: legitimately there
    admins_machine.mkdir()
    for rut, (pfx, _) in files.items():
        (admins_machine / f"{rut}.pfx").write_bytes(pfx)

    temp_root = Path(tempfile.gettempdir())
    skip = other_pytest_sessions(tmp_path_factory.getbasetemp()) + [admins_machine, Path(sandbox.pki["demo"].path).parent.parent]
    var_dirs = [Path(routed_broker["var_dir"]), Path(django_settings.VAR_DIR)]
    before = {**snapshot(temp_root, skip), **{k: v for d in var_dirs for k, v in snapshot(d, skip).items()}}

    # --- The run -----------------------------------------------------------------------------------
    tenant = services.tenant_create(name="Estudio Llaves", slug="llaves", sii_environment=SiiEnvironment.SANDBOX)
    old = services.representative_add(tenant=tenant, rut=OLD, name="Alex Brito Mardones")
    new = services.representative_add(tenant=tenant, rut=NEW, name="Carolina Andrea Muñoz Tapia")
    owner = get_user_model().objects.create_user(username="dueno@llaves.cl", email="dueno@llaves.cl", password="x")
    services.membership_add(tenant=tenant, user=owner, role=Role.OWNER)
    web = Client()
    web.force_login(owner)
    for representative in (old, new):
        prefix = f"k{representative.pk}"
        response = web.post(
            reverse("staff:firm_key_upload", kwargs={"tenant_slug": "llaves", "representative_id": representative.pk}),
            {f"{prefix}-certificate": SimpleUploadedFile("llave.pfx", files[representative.rut][0]),
             f"{prefix}-password": passwords[representative.rut]},
        )
        assert response.status_code == 302, response.content.decode()[-2000:]
    assert FirmKey.objects.filter(tenant=tenant, destroyed_at__isnull=True).count() == 2

    sandbox.add_companies([
        {"rut": ADMINISTERED, "name": "CLIENTE ADMINISTRADO SPA", "admins": [],
         "users": [{"rut": OLD, "admin": True, "sign": True, "registry": True}]},
        {"rut": NOT_ADMINISTERED, "name": "CLIENTE SIN ACCESO SPA", "admins": []},
    ])
    companies = []
    for rut, email in ((ADMINISTERED, "dueno@administrado.cl"), (NOT_ADMINISTERED, "dueno@sinacceso.cl")):
        company = services.client_company_create(tenant=tenant, rut=rut, legal_name=f"Cliente {rut}",
                                                 owner_name="Daniela Rojas", owner_email=email)
        ClientCompany.objects.filter(pk=company.pk).update(
            sii_user_rut=OLD, sii_admin=True, sii_sign=True, sii_registry=True, sii_synced_at=timezone.now(),
            stage=CompanyStage.AUTHORIZED, consent_edition=CONSENT_EDITION,
        )
        companies.append(company)

    worker = start_worker(env={"LOG_LEVEL": "DEBUG", "SII_SCREENSHOTS": "1", "AUTORIZA_BROWSER_QUEUE": routed_broker["queue"]})
    response = web.post(
        reverse("staff:representative_replace", kwargs={"tenant_slug": "llaves", "representative_id": old.pk}),
        {"nuevo": str(new.pk), "confirmar": "1"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    jobs = list(EnrollmentJob.objects.filter(tenant=tenant))
    assert len(jobs) == 2 and all(job.firm_key_id is not None for job in jobs)
    jobs_drain([job.pk for job in jobs], timeout=240, dispatch=True, workers=[worker])
    done = {job.company.rut: EnrollmentJob.objects.get(pk=job.pk) for job in jobs}
    ok, fell_back = done[ADMINISTERED], done[NOT_ADMINISTERED]
    assert ok.status == JobStatus.SUCCEEDED, (ok.failure_code, ok.failure_detail)
    assert fell_back.status == JobStatus.FAILED and fell_back.failure_code == "holder_not_administrator"
    assert {u["rut"] for u in sandbox.users(ADMINISTERED)} == {NEW}
    # The worker's e-mails go to its log (the console backend): the client was asked, once.
    assert worker.log().count("Se necesita su certificado digital: Cliente " + NOT_ADMINISTERED) == 1
    assert fell_back.events.filter(step="firm_key_fallback", message__contains="dueno@sinacceso.cl").exists()

    # --- The scan -----------------------------------------------------------------------------------
    scanner = Scanner(needles)
    scan_database(scanner)
    scan_redis(scanner)
    scanner.scan_file(worker.log_path, "worker_log")
    for artifact in JobArtifact.objects.all():
        scanner.scan(f"{artifact.job_id}/{artifact.kind}/{artifact.step}", "artifact", services.job_artifact_open(artifact=artifact))
    scanner.scan("caplog", "test_process_log", caplog.text.encode())
    for message in mail.outbox:
        scanner.scan(message.subject, "email", (message.subject + message.body).encode())
    after = {**snapshot(temp_root, skip), **{k: v for d in var_dirs for k, v in snapshot(d, skip).items()}}
    changed = [path for path, stamp in after.items() if before.get(path) != stamp]
    for path in changed:
        scanner.scan_file(Path(path), "temp_or_var_file")
    assert not scanner.found, "secrets found:\n" + "\n".join(scanner.found)

    # --- Positive control: the keys ARE in the database, sealed, and the scanner finds a planted leak.
    planted = Path(routed_broker["var_dir"]) / "planted-leak.bin"
    planted.write_bytes(b"log " + files[NEW][1] + passwords[NEW].encode())
    control = Scanner(needles)
    control.scan_file(planted, "control")
    planted.unlink()
    assert {f.split(" in ")[0] for f in control.found} >= {f"{NEW}:key_pem", f"{NEW}:password"}, control.found
    live = FirmKey.objects.get(tenant=tenant, representative=new, destroyed_at__isnull=True)
    with firm_key_opened(firm_key=live, purpose="control de la prueba") as material:
        assert material.key_pem.strip() == files[NEW][1].strip()
    assert len(changed) > 0 and scanner.bytes_scanned["database"] > 0
