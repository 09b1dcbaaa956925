"""Log lines: LOG_FORMAT=json writes one JSON object per line with a fixed set of fields (never what a
caller passes in `extra`), and a worker's lines carry the job id and the firm's slug while it runs a job."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import sii_bot
from portal.logging import JSON_FIELDS, JobContextFilter, JsonFormatter, TextFormatter, job_log_context

ROOT = Path(__file__).resolve().parents[2]
KEY_MATERIAL = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
PFX_PASSWORD = "clave-del-certificado-987"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged (INFO and up) during the test, through the JSON formatter and the job filter,
    as configured by LOGGING with LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(JobContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_json_object_with_only_the_listed_fields(json_lines: io.StringIO) -> None:
    log = logging.getLogger("onboarding.test")
    log.info("sin trabajo")
    with job_log_context(job_id="0b7c", tenant="pyme"):
        log.warning("línea 1\nlínea 2", extra={"password": PFX_PASSWORD, "key_pem": KEY_MATERIAL, "job_id": "x"})
        try:
            raise ValueError("algo falló")
        except ValueError:
            log.exception("con traza")
    log.info("después")

    text = json_lines.getvalue()
    assert len(text.splitlines()) == 4  # the message's newline and the traceback stay inside their line
    outside, inside, failed, after = parsed(json_lines)
    assert set(outside) == {"time", "level", "logger", "message", "process", "thread"}
    assert (outside["level"], outside["logger"], outside["message"]) == ("INFO", "onboarding.test", "sin trabajo")
    assert inside["message"] == "línea 1\nlínea 2"
    assert (inside["job_id"], inside["tenant"]) == ("0b7c", "pyme")  # the context wins over `extra`
    assert set(inside) == set(JSON_FIELDS) - {"exception"}
    assert failed["exception"].startswith("Traceback") and "ValueError: algo falló" in failed["exception"]
    assert "job_id" not in after and "tenant" not in after
    # What a caller passed in `extra` is not written, whatever it holds.
    assert PFX_PASSWORD not in text and "PRIVATE KEY" not in text and "MIIEvQ" not in text


def test_the_text_format_adds_the_job_to_lines_inside_one() -> None:
    formatter = TextFormatter()
    record = logging.LogRecord("onboarding", logging.INFO, __file__, 1, "job %s claimed", ("0b7c",), None)
    JobContextFilter().filter(record)
    assert formatter.format(record).endswith(" INFO onboarding job 0b7c claimed")
    with job_log_context(job_id="0b7c", tenant="pyme"):
        JobContextFilter().filter(record)
    assert formatter.format(record).endswith(" INFO onboarding job 0b7c claimed job=0b7c tenant=pyme")


RECORD = sii_bot.SiiUserRecord(
    company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut="13322924-8",
    user_name="ALEX BRITO MARDONES", admin=True, sign=True, registry=True, authorized_by="MARIA JOSE SOTO",
)


@pytest.mark.django_db
def test_a_worker_s_lines_carry_the_job_and_the_firm_while_it_runs_the_job(  # type: ignore[no-untyped-def]
    cast, certificate_bundle, monkeypatch, django_capture_on_commit_callbacks, json_lines
) -> None:
    from onboarding import services, tasks

    monkeypatch.setattr(tasks.enrollment_job_run, "delay", mock.Mock())
    monkeypatch.setattr(sii_bot, "enroll", lambda request, certificate, settings=None, on_progress=None:
                        sii_bot.EnrollmentResult(outcome="created", record=RECORD))
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=None)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=None)

    # The task as a worker runs it (Celery sends task_prerun / task_postrun around it).
    tasks.enrollment_job_run.apply(args=(str(job.pk),))
    logging.getLogger("onboarding.test").info("la siguiente línea del hilo")

    lines = parsed(json_lines)
    job_lines = [line for line in lines if line["logger"].startswith("onboarding.services.jobs")]
    assert f"job {job.pk} (authorize) succeeded (created)" in [line["message"] for line in job_lines]
    assert {(line["job_id"], line["tenant"]) for line in job_lines} == {(str(job.pk), "pyme")}
    assert "job_id" not in lines[-1]  # after the task, the thread's lines carry no job


def run_python(code: str, tmp_path: Path, **env_values: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUTORIZA_", "DATABASE_", "REDIS_", "LOG_"))}
    env.update(DJANGO_DEBUG="1", AUTORIZA_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portal.settings", **env_values)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


_LOG_SOME_LINES = """
import logging, django
django.setup()
from portal.logging import job_log_context
log = logging.getLogger("onboarding.services.core")
log.info("antes")
with job_log_context(job_id="5f1e", tenant="pyme"):
    log.warning("durante", extra={"password": "%s"})
"""


def test_log_format_json_configures_every_line_as_json(tmp_path: Path) -> None:
    completed = run_python(_LOG_SOME_LINES % PFX_PASSWORD, tmp_path, LOG_FORMAT="json")
    assert completed.returncode == 0, completed.stderr
    before, during = [json.loads(line) for line in completed.stderr.splitlines()]
    assert (before["message"], "job_id" in before) == ("antes", False)
    assert (during["message"], during["level"], during["job_id"], during["tenant"]) == ("durante", "WARNING", "5f1e", "pyme")
    assert PFX_PASSWORD not in completed.stderr


def test_the_default_is_text_and_an_unknown_format_stops_the_start(tmp_path: Path) -> None:
    text = run_python(_LOG_SOME_LINES % PFX_PASSWORD, tmp_path)
    assert text.returncode == 0, text.stderr
    before, during = text.stderr.splitlines()
    assert before.endswith(" INFO onboarding.services.core antes")
    assert during.endswith(" WARNING onboarding.services.core durante job=5f1e tenant=pyme")
    wrong = run_python("import django; django.setup()", tmp_path, LOG_FORMAT="xml")
    assert wrong.returncode == 1 and "LOG_FORMAT must be 'text' or 'json'." in wrong.stderr
