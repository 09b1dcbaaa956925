"""After access checks run by a real worker with a firm key, the firm key's private key and the
password of its .pfx are nowhere: the same scan as after a client's jobs (test_secrets_scan.py), over
a check run that reads companies, one the representative no longer administers, and a second run the
SII refuses the key in (the SII's code …35, certificate revoked).

Scanned: every column of the database (and SQLite's files), Redis when used, the worker's DEBUG log,
this process's log, the e-mails (the problem digest), every file created or changed in the temp and
var directories (broker messages: the task arguments). Positive control: the key is in the database
— sealed — and opens to the original.
"""
from __future__ import annotations

import logging
import re
import secrets
import tempfile
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings
from django.core import mail

from tests.security.test_secrets_scan import (
    Scanner,
    needles_for,
    other_pytest_sessions,
    scan_database,
    scan_redis,
    snapshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(300)]

REP = "13322924-8"


def test_no_firm_key_or_password_anywhere_after_access_checks(  # type: ignore[no-untyped-def]
    start_worker, routed_broker, sandbox, tmp_path_factory, tmp_path, caplog, settings
) -> None:
    from onboarding import services
    from onboarding.models import (
        AccessCheckItem,
        AccessCheckRun,
        AccessCheckStatus,
        AccessProblem,
        ClientCompany,
        FirmKey,
        Relationship,
        SiiEnvironment,
    )
    from onboarding.services.firm_keys import firm_key_opened, firm_key_store
    from sii_bot.certificates import open_pkcs12
    from sii_sandbox.pki import legacy_pfx
    from sii_sandbox.rut import company_rut

    caplog.set_level(logging.DEBUG)
    settings.AUTORIZA_ACCESS_CHECK_QUEUE = routed_broker["queue"]
    entry = sandbox.pki["representative"]
    key = serialization.load_pem_private_key(entry.key_pem.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(entry.cert_pem.read_bytes())
    chain = [x509.load_pem_x509_certificate(block) for block in re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", sandbox.pki.ca_bundle.read_bytes(), re.DOTALL)]
    password = "Llave-" + secrets.token_urlsafe(18)
    pfx = legacy_pfx(key, cert, chain[:1], password, "llave")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    needles = needles_for(pfx, password, key_pem)

    temp_root = Path(tempfile.gettempdir())
    skip = other_pytest_sessions(tmp_path_factory.getbasetemp()) + [Path(entry.path).parent.parent]
    var_dirs = [Path(routed_broker["var_dir"]), Path(django_settings.VAR_DIR)]
    before = {**snapshot(temp_root, skip), **{k: v for d in var_dirs for k, v in snapshot(d, skip).items()}}

    # --- The run -----------------------------------------------------------------------------------
    tenant = services.tenant_create(name="Estudio Llave", slug="llave", sii_environment=SiiEnvironment.SANDBOX,
                                    notification_emails="avisos@llave.cl")
    representative = services.representative_add(tenant=tenant, rut=REP, name="Alex Brito Mardones")
    firm_key = firm_key_store(representative=representative, bundle=open_pkcs12(pfx, password), uploaded_by=None)
    ruts = [company_rut(30_000 + i) for i in range(3)]
    sandbox.add_companies([
        {"rut": rut, "name": f"EMPRESA {rut}", "users": [{"rut": REP, "admin": i != 2, "sign": True, "registry": True}]}
        for i, rut in enumerate(ruts)
    ])
    for rut in ruts:
        ClientCompany.objects.create(tenant=tenant, rut=rut, legal_name=f"Empresa {rut}", sii_user_rut=REP,
                                     relationship=Relationship.ACTIVE)
    worker = start_worker(env={"LOG_LEVEL": "DEBUG", "SII_SCREENSHOTS": "1",
                               "AUTORIZA_ACCESS_CHECK_QUEUE": routed_broker["queue"],
                               "AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS": "0"})

    def check_and_wait() -> None:
        runs = services.access_check_request(tenant=tenant, requested_by=None)
        for run in runs:
            services.access_check_run_send(run_id=str(run.pk))
        deadline = time.monotonic() + 120
        while AccessCheckRun.objects.filter(pk__in=[r.pk for r in runs]).exclude(status=AccessCheckStatus.DONE).exists():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.3)

    check_and_wait()
    problems = dict(AccessCheckItem.objects.values_list("company__rut", "problem"))
    assert problems == {ruts[0]: "", ruts[1]: "", ruts[2]: AccessProblem.NOT_ADMINISTRATOR}
    sandbox.set_faults({"login_error": 35})
    check_and_wait()
    assert FirmKey.objects.get(pk=firm_key.pk).rejected_code == "certificate_revoked"
    # The worker sent the digest (its console mail backend writes it to its log, scanned below).
    assert "Acceso con problemas" in worker.log()

    # --- The scan ----------------------------------------------------------------------------------
    scanner = Scanner(needles)
    scan_database(scanner)
    scan_redis(scanner)
    scanner.scan_file(worker.log_path, "worker_log")
    scanner.scan("caplog", "test_process_log", caplog.text.encode())
    for message in mail.outbox:
        scanner.scan(message.subject, "email", (message.subject + message.body).encode())
    after = {**snapshot(temp_root, skip), **{k: v for d in var_dirs for k, v in snapshot(d, skip).items()}}
    changed = [path for path, stamp in after.items() if before.get(path) != stamp]
    for path in changed:
        scanner.scan_file(Path(path), "temp_or_var_file")
    assert not scanner.found, "secrets found:\n" + "\n".join(scanner.found)
    assert "access_check_run" in worker.log() and len(changed) > 0 and scanner.bytes_scanned["database"] > 0

    # --- Positive control: the key is in the database, sealed, and opens to the original.
    with firm_key_opened(firm_key=FirmKey.objects.get(pk=firm_key.pk), purpose="control") as material:
        assert material.key_pem.strip() == key_pem.strip()
