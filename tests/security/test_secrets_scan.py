"""After a demo-like run, the certificate's password and private key are nowhere.

The run: clients sign up, upload a certificate and consent through the web (Django's test client,
the real views and upload handler); real workers (screenshots on, DEBUG logging) drive Chromium
against the SII sandbox, through every way a job ends:
- one authorization succeeds (the key is erased), one fails (the holder does not administer the
  company: the key stays sealed for a re-run, the SII page is kept as evidence);
- one meets HTTP 500s until its automatic retries run out (retry-exhausted);
- one runs out of its time budget on a slow SII, twice (timeout);
- one loses its worker to kill -9 in the middle (crash): a new worker resumes and finishes it;
- the first client ends the relationship: they upload the certificate again and consent, and the
  representative is removed (removal); a company is removed from Autoriza with its kept key.

Then every place bytes could have landed is scanned for the secrets in every encoding we can think
of (the password raw and URL-encoded; the key as PEM, PEM body, base64 of the DER, DER in PKCS#8 and
PKCS#1, hex; the uploaded .pfx raw and base64):
- the database: every column of every row of every table; for SQLite also the raw file, -wal, -shm;
- Redis (when REDIS_URL is set): every key of the test's database index, kombu message bodies decoded;
- the logs: the worker's (DEBUG), this process's captured records, the emails sent;
- files: everything created or modified during the run in the temp directory (Chromium's profile
  included, scanned while the last worker still runs; a killed worker's leftovers too), the test's
  var dir (broker folders with the task messages, cache) and the media root;
- the evidence: every stored screenshot and page, decrypted.
A positive control proves the scanner finds the secrets where they legitimately are (the client's
own file) and that the database does hold the key — sealed.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
import signal
import tempfile
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.reliability.support import (
    REPRESENTATIVE_NAME,
    REPRESENTATIVE_RUT,
    figures_record,
    jobs_drain,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(600)]
# The workers' job policy here: one automatic retry, at 1/500 of production's delays, and the bot's
# page retries after 1/10 of its backoff, so that the retry-exhausted and timeout paths end within seconds.
JOB_POLICY = {"AUTORIZA_JOB_MAX_RETRIES": "1", "AUTORIZA_JOB_RETRY_DELAY_SCALE": "0.002",
              "SII_TRANSIENT_BACKOFF": "0.05,0.1,0.2"}

# Never scanned: the tool machinery's folders and other test sessions' folders (not ours to read).
SKIP_TEMP = re.compile(r"^(bash_jobs\.|bash_tool_)")
MAX_FILE_BYTES = 50 * 1024 * 1024


def needles_for(pfx: bytes, password: str, key_pem: bytes) -> dict[str, bytes]:
    key = serialization.load_pem_private_key(key_pem, None)
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pkcs1 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    body = b"".join(line for line in key_pem.splitlines() if not line.startswith(b"-----"))
    return {
        "password": password.encode(),
        "password_urlencoded": urllib.parse.quote_plus(password).encode(),
        "key_pem": key_pem,
        "key_pem_body": body,
        "key_pem_first_line": key_pem.splitlines()[1],
        "key_der_pkcs8": pkcs8,
        "key_der_pkcs1": pkcs1,
        "key_der_pkcs1_base64": base64.b64encode(pkcs1),
        "key_der_hex": binascii.hexlify(pkcs8),
        "key_pem_base64": base64.b64encode(key_pem),
        "pfx": pfx,
        "pfx_base64": base64.b64encode(pfx),
    }


class Scanner:
    def __init__(self, needles: dict[str, bytes]) -> None:
        self.needles = needles
        self.found: list[str] = []
        self.bytes_scanned: dict[str, int] = {}
        self.items_scanned: dict[str, int] = {}

    def scan(self, where: str, kind: str, data: bytes) -> None:
        self.bytes_scanned[kind] = self.bytes_scanned.get(kind, 0) + len(data)
        self.items_scanned[kind] = self.items_scanned.get(kind, 0) + 1
        for name, needle in self.needles.items():
            if needle in data:
                self.found.append(f"{name} in {kind}: {where}")

    def scan_file(self, path: Path, kind: str) -> None:
        try:
            with path.open("rb") as handle:
                self.scan(str(path), kind, handle.read(MAX_FILE_BYTES))
        except OSError:
            pass  # gone meanwhile (a temp file deleted), or unreadable (a socket)


def snapshot(root: Path, skip: list[Path]) -> dict[str, tuple[int, int]]:
    """path → (mtime_ns, size) of every regular file under `root`, except under `skip`."""
    files: dict[str, tuple[int, int]] = {}
    skipped = {str(p) for p in skip}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.path in skipped or (folder == root and SKIP_TEMP.match(entry.name)):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    files[entry.path] = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                continue
    return files


def other_pytest_sessions(basetemp: Path) -> list[Path]:
    parent = basetemp.parent
    return [p for p in parent.glob("pytest-*") if p.resolve() != basetemp.resolve()] + [parent / "pytest-current"]


def scan_database(scanner: Scanner) -> None:
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from introspection
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        scanner.scan(table, "database", bytes(value))
                    elif value is not None:
                        scanner.scan(table, "database", str(value).encode())
    if connection.vendor == "sqlite":
        name = Path(connection.settings_dict["NAME"])
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = Path(f"{name}{suffix}")
            if path.exists():
                scanner.scan_file(path, "sqlite_file")


def scan_redis(scanner: Scanner) -> None:
    if not django_settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        values: list[bytes] = [key]
        if kind == "string":
            values.append(client.get(key) or b"")
        elif kind == "list":
            values += client.lrange(key, 0, -1)
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                values += [field, value]
        elif kind == "set":
            values += list(client.smembers(key))
        elif kind == "zset":
            values += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        for value in values:
            scanner.scan(key.decode(errors="replace"), "redis", value)
            try:  # kombu messages: JSON whose body is base64
                message = json.loads(value)
                if isinstance(message, list):
                    message = message[0]
                if isinstance(message, dict) and "body" in message:
                    scanner.scan(key.decode(errors="replace"), "redis", base64.b64decode(message["body"]))
            except (ValueError, TypeError, KeyError, binascii.Error):
                pass


def run_client_flow(tenant_slug: str, company_rut: str, email: str, pfx: bytes, pfx_password: str) -> str:
    """A client signs up, uploads the certificate and consents through the web; returns the job id."""
    return run_client_flow_with(Client(), tenant_slug, company_rut, email, pfx, pfx_password)[1]


def run_client_flow_with(client: Client, tenant_slug: str, company_rut: str, email: str, pfx: bytes,
                         pfx_password: str) -> tuple[Client, str]:
    """`run_client_flow` with the given browser session; returns it (logged in) and the job id."""
    response = client.post(reverse("client:signup", kwargs={"tenant_slug": tenant_slug}), {
        "email": email, "password": "Clave-De-La-Cuenta-2026", "company_rut": company_rut,
        "legal_name": f"Empresa {company_rut}", "owner_name": "Daniela Rojas",
    })
    assert response.status_code == 302, response.content[:2000]
    return client, upload_and_consent(client, response["Location"], pfx, pfx_password)


def upload_and_consent(client: Client, upload_url: str, pfx: bytes, pfx_password: str) -> str:
    """Upload the certificate, review it and consent (to whatever the wizard asks); returns the job id."""
    response = client.post(upload_url, {"certificate": SimpleUploadedFile("firma.pfx", pfx), "password": pfx_password})
    assert response.status_code == 302, response.content.decode()[-3000:]
    review = response["Location"]
    assert client.get(review).status_code == 200
    consent_url = review + "autorizar/"
    page = client.get(consent_url).content.decode()
    version = re.search(r'name="terms_version" value="([^"]+)"', page).group(1)
    response = client.post(consent_url, {"consent": "on", "terms_version": version})
    assert response.status_code == 302 and "/trabajo/" in response["Location"], response.status_code
    client.get(response["Location"])
    return response["Location"].rstrip("/").split("/")[-1]


def end_relationship_through_the_web(client: Client, company_id: int, pfx: bytes, pfx_password: str) -> str:
    """The client ends the relationship: the key is gone after the authorization, so they upload the
    certificate again and consent to the removal; returns the REVOKE job's id."""
    response = client.post(reverse("client:company_end", kwargs={"company_id": company_id}))
    assert response.status_code == 302 and response["Location"].endswith("/certificado/"), response.status_code
    return upload_and_consent(client, response["Location"], pfx, pfx_password)


def test_no_password_or_private_key_anywhere_after_a_full_run(  # type: ignore[no-untyped-def]
    start_worker, routed_broker, sandbox, tmp_path_factory, tmp_path, caplog, settings
) -> None:
    from onboarding import services
    from onboarding.models import (
        Certificate,
        ClientCompany,
        EnrollmentJob,
        JobArtifact,
        JobEvent,
        JobStatus,
        SiiEnvironment,
    )
    from sii_sandbox.pki import legacy_pfx

    caplog.set_level(logging.DEBUG)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The client's certificate: the sandbox's demo holder, exported with a password of this run only.
    demo = sandbox.pki["demo"]
    from cryptography import x509

    key = serialization.load_pem_private_key(demo.key_pem.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(demo.cert_pem.read_bytes())
    chain = [x509.load_pem_x509_certificate(block) for block in re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", sandbox.pki.ca_bundle.read_bytes(), re.DOTALL)]
    password = "Pfx-" + secrets.token_urlsafe(18)
    pfx = legacy_pfx(key, cert, chain[:1], password, "firma")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    needles = needles_for(pfx, password, key_pem)
    client_machine = tmp_path / "client-machine"  # where the client keeps the file: legitimately there, not scanned
    client_machine.mkdir()
    (client_machine / "firma.pfx").write_bytes(pfx)

    temp_root = Path(tempfile.gettempdir())
    basetemp = tmp_path_factory.getbasetemp()
    skip = other_pytest_sessions(basetemp) + [client_machine, Path(demo.path).parent.parent]
    var_dirs = [Path(routed_broker["var_dir"]), Path(django_settings.VAR_DIR)]
    before = {**snapshot(temp_root, skip), **{k: v for d in var_dirs for k, v in snapshot(d, skip).items()}}

    # --- The run -----------------------------------------------------------------------------------
    tenant = services.tenant_create(name="Estudio Escaneado", slug="escaneo", sii_environment=SiiEnvironment.SANDBOX)
    services.representative_add(tenant=tenant, rut=REPRESENTATIVE_RUT, name=REPRESENTATIVE_NAME)
    holder = demo.holder_rut
    sandbox.add_companies([
        {"rut": "79500002-K", "name": "SIN ADMINISTRADOR SPA", "admins": []},
        *({"rut": rut, "name": f"EMPRESA {rut}", "admins": [holder]} for rut in ("79500003-8", "79500004-6", "79500005-4")),
    ])
    worker_env = {"LOG_LEVEL": "DEBUG", "SII_SCREENSHOTS": "1", "AUTORIZA_BROWSER_QUEUE": routed_broker["queue"], **JOB_POLICY}
    worker = start_worker(env=worker_env)
    workers = [worker]
    ok_client, ok_job = run_client_flow_with(Client(), "escaneo", "76.086.428-5", "duena@comercialdemo.cl", pfx, password)
    failing_job = run_client_flow("escaneo", "79.500.002-K", "dueno@sinadmin.cl", pfx, password)
    jobs_drain([ok_job, failing_job], timeout=180, dispatch=False, workers=workers)
    ok, failed = EnrollmentJob.objects.get(pk=ok_job), EnrollmentJob.objects.get(pk=failing_job)
    assert ok.status == JobStatus.SUCCEEDED, (ok.failure_code, ok.failure_detail)
    assert failed.status == JobStatus.FAILED and failed.failure_code == "holder_not_administrator"
    # The success's evidence screenshots, and the failure's page and screenshot (stored once).
    assert JobArtifact.objects.filter(job=ok).count() >= 2
    assert sorted(JobArtifact.objects.filter(job=failed).values_list("kind", flat=True)) == ["page_html", "screenshot"]

    # Retry-exhausted: the SII answers HTTP 500 to every attempt.
    sandbox.set_faults({"generic_error": True})
    exhausted_job = run_client_flow("escaneo", "79.500.003-8", "dueno@reintentos.cl", pfx, password)
    jobs_drain([exhausted_job], timeout=120, dispatch=True, workers=workers)
    sandbox.clear_faults()
    exhausted = EnrollmentJob.objects.get(pk=exhausted_job)
    assert (exhausted.status, exhausted.failure_code, exhausted.retry_count) == (JobStatus.FAILED, "sii_unavailable", 1)
    assert Certificate.objects.get(pk=exhausted.certificate_id).is_usable  # kept for a re-run

    # Removal: the first client ends the relationship; the representative is removed from the SII.
    revoke_job = end_relationship_through_the_web(ok_client, ok.company_id, pfx, password)
    jobs_drain([revoke_job], timeout=120, dispatch=True, workers=workers)
    revoked = EnrollmentJob.objects.get(pk=revoke_job)
    assert (revoked.kind, revoked.status) == ("revoke", JobStatus.SUCCEEDED), (revoked.failure_code, revoked.failure_detail)
    assert not Certificate.objects.filter(company_id=ok.company_id, sealed_material__isnull=False).exists()
    # ... and a company is removed from Autoriza with the key it kept.
    exhausted_company = ClientCompany.objects.get(pk=exhausted.company_id)
    services.client_company_remove(company=exhausted_company, actor=None)
    assert not Certificate.objects.filter(pk=exhausted.certificate_id).exists()

    # Timeout: a worker with a 4 s budget against a slow SII, for the attempt and its retry.
    worker.stop()
    worker = start_worker(env={**worker_env, "SII_JOB_TIMEOUT": "4"})
    workers.append(worker)
    sandbox.configure(latency_ms=2500)
    timeout_job = run_client_flow("escaneo", "79.500.004-6", "dueno@lento.cl", pfx, password)
    jobs_drain([timeout_job], timeout=120, dispatch=True, workers=workers)
    timed_out = EnrollmentJob.objects.get(pk=timeout_job)
    assert (timed_out.status, timed_out.failure_code, timed_out.retry_count) == (JobStatus.FAILED, "job_timeout", 1)

    # Crash: the worker is killed (-9, with its Chromium) in the middle of a job; a new one finishes it.
    sandbox.configure(latency_ms=300)
    crash_job = run_client_flow("escaneo", "79.500.005-4", "dueno@caida.cl", pfx, password)
    wait_for(lambda: JobEvent.objects.filter(job_id=crash_job, step="login").exists(), timeout=90, interval=0.05,
             what="the job to reach the login step")
    worker.kill(signal.SIGKILL)
    worker.process.wait(timeout=10)
    sandbox.configure(latency_ms=0)
    worker = start_worker(env=worker_env)
    workers.append(worker)
    jobs_drain([crash_job], timeout=120, dispatch=True, workers=workers)
    crashed = EnrollmentJob.objects.get(pk=crash_job)
    assert (crashed.status, crashed.retry_count) == (JobStatus.SUCCEEDED, 1), (crashed.failure_code, crashed.failure_detail)
    assert not Certificate.objects.get(pk=crashed.certificate_id).is_usable

    # --- The scan (the last worker still runs: Chromium's profile is still on disk) ----------------
    scanner = Scanner(needles)
    scan_database(scanner)
    scan_redis(scanner)
    for each in workers:
        scanner.scan_file(each.log_path, "worker_log")
    for artifact in JobArtifact.objects.all():
        scanner.scan(f"{artifact.job_id}/{artifact.kind}/{artifact.step}", "artifact", services.job_artifact_open(artifact=artifact))
    scanner.scan("caplog", "test_process_log", caplog.text.encode())
    for message in mail.outbox:
        scanner.scan(message.subject, "email", (message.subject + message.body).encode())
    after = {**snapshot(temp_root, skip), **{k: v for d in var_dirs for k, v in snapshot(d, skip).items()}}
    changed = [path for path, stamp in after.items() if before.get(path) != stamp]
    for path in changed:
        scanner.scan_file(Path(path), "temp_or_var_file")
    media = Path(django_settings.MEDIA_ROOT) if django_settings.MEDIA_ROOT else None
    if media and media.exists():
        for path in media.rglob("*"):
            if path.is_file():
                scanner.scan_file(path, "media")
    assert not scanner.found, "secrets found:\n" + "\n".join(scanner.found)

    # --- Positive controls: a planted leak is caught by the same pipeline, and the database does hold
    # the key — sealed.
    planted = Path(routed_broker["var_dir"]) / "planted-leak.bin"
    planted.write_bytes(b"log line " + key_pem + b" and " + pfx + password.encode())
    control = Scanner(needles)
    for path, stamp in {**snapshot(temp_root, skip), **{k: v for d in var_dirs for k, v in snapshot(d, skip).items()}}.items():
        if after.get(path) != stamp:
            control.scan_file(Path(path), "control")
    planted.unlink()
    assert {f.split(" in ")[0] for f in control.found} >= {"key_pem", "key_pem_first_line", "pfx", "password"}, control.found
    kept = Certificate.objects.get(pk=failed.certificate_id)
    with services.certificate_opened(certificate=kept) as material:
        assert material.key_pem.strip() == key_pem.strip()  # the key IS in the database — sealed
    assert not Certificate.objects.get(pk=ok.certificate_id).is_usable  # erased after success
    assert len(changed) > 0 and scanner.bytes_scanned["database"] > 0

    figures_record("secrets_scan", {
        "jobs": EnrollmentJob.objects.count(),
        "paths": ["succeeded", "failed", "retry_exhausted", "revoked", "company_removed", "timeout", "crash_resumed"], "needles": sorted(needles), "found": len(scanner.found),
        "bytes_scanned": scanner.bytes_scanned, "items_scanned": scanner.items_scanned,
        "files_changed_during_run": len(changed),
        "redis_scanned": bool(django_settings.REDIS_URL), "database": connection.vendor,
    })
