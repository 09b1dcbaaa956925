"""The Prometheus endpoint: who may read it, the job figures it reads from the database (and that they
follow the jobs' state), the web request latency histogram, alone and in multiprocess mode."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

import sii_bot
from onboarding import services
from onboarding.models import EnrollmentJob
from sii_bot import errors

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "token-de-metricas-de-prueba-0123456789"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
RECORD = sii_bot.SiiUserRecord(
    company_name="COMERCIAL DEMO SPA", company_rut="76086428-5", user_rut="13322924-8",
    user_name="ALEX BRITO MARDONES", admin=True, sign=True, registry=True, authorized_by="MARIA JOSE SOTO",
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _metrics_on(settings):  # type: ignore[no-untyped-def]
    settings.AUTORIZA_METRICS_TOKEN = TOKEN
    settings.AUTORIZA_METRICS_ALLOWED_NETS = ["127.0.0.1/32", "::1/128"]


def scrape(client: Client, **extra: str) -> Samples:
    """GET /metrics with the right token; every sample as (name, labels) → value."""
    response = client.get("/metrics", **{**AUTH, **extra})
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# --- Access -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_token_configured_the_endpoint_does_not_exist(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_METRICS_TOKEN = ""
    assert client.get("/metrics", **AUTH).status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    assert client.post("/metrics", **AUTH).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer"],
    ids=["missing", "longer", "shorter", "other-scheme", "no-scheme", "empty"],
)
def test_a_wrong_or_missing_token_gets_401(client: Client, header: str | None) -> None:
    response = client.get("/metrics", **({"HTTP_AUTHORIZATION": header} if header is not None else {}))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"autoriza_" not in response.content


@pytest.mark.django_db
def test_the_right_token_from_outside_the_allowed_networks_gets_403(client: Client) -> None:
    response = client.get("/metrics", REMOTE_ADDR="10.20.30.40", **AUTH)
    assert response.status_code == 403 and b"autoriza_" not in response.content
    # A forwarded header does not make a remote scraper local: only the TCP peer counts.
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40", HTTP_X_FORWARDED_FOR="127.0.0.1", **AUTH).status_code == 403


@pytest.mark.django_db
def test_the_right_token_from_an_allowed_network_gets_the_metrics(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    assert value(scrape(client), "autoriza_metrics_database_up") == 1.0  # loopback, the default
    assert value(scrape(client, REMOTE_ADDR="::1"), "autoriza_metrics_database_up") == 1.0
    settings.AUTORIZA_METRICS_ALLOWED_NETS = ["10.20.0.0/16"]
    assert value(scrape(client, REMOTE_ADDR="10.20.30.40"), "autoriza_metrics_database_up") == 1.0
    assert value(scrape(client, REMOTE_ADDR="::ffff:10.20.30.40"), "autoriza_metrics_database_up") == 1.0
    assert client.get("/metrics", **AUTH).status_code == 403  # loopback is no longer listed
    assert client.post("/metrics", **AUTH).status_code == 405


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A development environment (none of the developer's settings leak in) plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUTORIZA_", "DATABASE_", "REDIS_"))}
    return {**env, "DJANGO_DEBUG": "1", "AUTORIZA_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "portal.settings",
            **values}


def test_a_malformed_network_setting_stops_the_start(tmp_path: Path) -> None:
    env = clean_env(tmp_path, AUTORIZA_METRICS_ALLOWED_NETS="127.0.0.1/32,10.0.0/8x")
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert completed.returncode == 1
    assert "AUTORIZA_METRICS_ALLOWED_NETS: '10.0.0/8x' is not a CIDR network." in completed.stderr


# --- Job figures, from the database ---------------------------------------------------------------


class FakeBot:
    """Stands in for sii_bot.enroll: returns a result or raises what it was told."""

    def __init__(self) -> None:
        self.outcome: Any = "created"

    def __call__(self, request: Any, certificate: Any, settings: Any = None, on_progress: Any = None) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return sii_bot.EnrollmentResult(outcome=self.outcome, record=RECORD)


@pytest.fixture
def bot(monkeypatch):  # type: ignore[no-untyped-def]
    fake = FakeBot()
    monkeypatch.setattr(sii_bot, "enroll", fake)
    return fake


@pytest.fixture
def new_job(cast, certificate_bundle, monkeypatch, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Makes a QUEUED job for a company (the broker is a mock: nothing is sent)."""
    from onboarding import tasks

    monkeypatch.setattr(tasks.enrollment_job_run, "delay", mock.Mock())

    def make(company: Any) -> EnrollmentJob:
        certificate = services.certificate_store(company=company, bundle=certificate_bundle, uploaded_by=None)
        with django_capture_on_commit_callbacks(execute=True):
            return services.enrollment_job_create(company=company, certificate=certificate, created_by=None)

    return make


def run_for(job: EnrollmentJob, seconds: int) -> None:
    """Make the job's last run have lasted exactly `seconds`."""
    row = EnrollmentJob.objects.get(pk=job.pk)
    EnrollmentJob.objects.filter(pk=job.pk).update(started_at=row.finished_at - timedelta(seconds=seconds))


@pytest.mark.django_db
def test_job_figures_follow_the_jobs_state(client: Client, cast, new_job, bot) -> None:  # type: ignore[no-untyped-def]
    empty = scrape(client)
    assert value(empty, "autoriza_jobs", kind="authorize", status="queued") == 0.0
    assert value(empty, "autoriza_queue_depth", state="due") == 0.0
    assert value(empty, "autoriza_queue_oldest_due_age_seconds") == 0.0
    assert value(empty, "autoriza_job_duration_seconds_count", kind="authorize", status="succeeded") == 0.0

    # Two firms, one job each, queued.
    job_a, job_b = new_job(cast.company_a), new_job(cast.company_b)
    now = timezone.now()
    EnrollmentJob.objects.filter(pk=job_a.pk).update(created_at=now - timedelta(seconds=120))
    EnrollmentJob.objects.filter(pk=job_b.pk).update(created_at=now - timedelta(seconds=30))
    with mock.patch("onboarding.metrics.timezone.now", return_value=now):
        queued = scrape(client)
    assert value(queued, "autoriza_jobs", kind="authorize", status="queued") == 2.0
    assert value(queued, "autoriza_queue_depth", state="due") == 2.0
    assert value(queued, "autoriza_queue_depth", state="scheduled") == 0.0
    assert value(queued, "autoriza_queue_oldest_due_age_seconds") == 120.0
    assert value(queued, "autoriza_tenant_jobs_active", tenant="pyme", status="queued") == 1.0
    assert value(queued, "autoriza_tenant_jobs_active", tenant="otro", status="queued") == 1.0

    # A's job runs and succeeds in 42 s.
    services.enrollment_job_execute(job_id=str(job_a.pk), worker="w1")
    run_for(job_a, 42)
    after_success = scrape(client)
    assert value(after_success, "autoriza_jobs", kind="authorize", status="queued") == 1.0
    assert value(after_success, "autoriza_jobs", kind="authorize", status="succeeded") == 1.0
    assert value(after_success, "autoriza_queue_depth", state="due") == 1.0
    assert ("autoriza_tenant_jobs_active", frozenset({("tenant", "pyme"), ("status", "queued")})) not in after_success
    succeeded = {"kind": "authorize", "status": "succeeded"}
    assert value(after_success, "autoriza_job_duration_seconds_count", **succeeded) == 1.0
    assert value(after_success, "autoriza_job_duration_seconds_sum", **succeeded) == 42.0
    assert value(after_success, "autoriza_job_duration_seconds_bucket", le="30.0", **succeeded) == 0.0
    assert value(after_success, "autoriza_job_duration_seconds_bucket", le="45.0", **succeeded) == 1.0
    assert value(after_success, "autoriza_job_duration_seconds_bucket", le="+Inf", **succeeded) == 1.0

    # B's job hits the SII down: a scheduled retry (queued, not due), then the SII refuses the holder.
    bot.outcome = errors.SiiUnavailable("HTTP 500")
    services.enrollment_job_execute(job_id=str(job_b.pk), worker="w1")
    retrying = scrape(client)
    assert value(retrying, "autoriza_queue_depth", state="due") == 0.0
    assert value(retrying, "autoriza_queue_depth", state="scheduled") == 1.0
    assert value(retrying, "autoriza_queue_oldest_due_age_seconds") == 0.0
    assert value(retrying, "autoriza_job_retries_total", kind="authorize") == 1.0
    assert value(retrying, "autoriza_jobs_retried_total", kind="authorize") == 1.0

    EnrollmentJob.objects.filter(pk=job_b.pk).update(run_after=timezone.now() - timedelta(seconds=1))
    bot.outcome = errors.HolderNotAdministrator("holder is not admin", page_html="<HTML>no</HTML>", step="company")
    services.enrollment_job_execute(job_id=str(job_b.pk), worker="w1")
    run_for(job_b, 7)
    failed = scrape(client)
    assert value(failed, "autoriza_jobs", kind="authorize", status="queued") == 0.0
    assert value(failed, "autoriza_jobs", kind="authorize", status="failed") == 1.0
    assert value(failed, "autoriza_job_failures_total", code="holder_not_administrator") == 1.0
    assert ("autoriza_job_failures_total", frozenset({("code", "sii_unavailable")})) not in failed  # retried, not failed
    assert value(failed, "autoriza_job_duration_seconds_sum", kind="authorize", status="failed") == 7.0
    assert value(failed, "autoriza_job_duration_seconds_bucket", kind="authorize", status="failed", le="5.0") == 0.0
    assert value(failed, "autoriza_job_duration_seconds_bucket", kind="authorize", status="failed", le="10.0") == 1.0
    assert value(failed, "autoriza_job_retries_total", kind="authorize") == 1.0
    assert not [key for key in failed if key[0] == "autoriza_tenant_jobs_active"]


@pytest.mark.django_db
def test_labels_carry_no_names_ruts_or_secrets(client: Client, cast, new_job, bot) -> None:  # type: ignore[no-untyped-def]
    new_job(cast.company_a)
    text = client.get("/metrics", **AUTH).content.decode()
    for private in ("PyME Contadores", "76086428-5", "13322924-8", "Comercial Demo", "cliente@empresa.cl", TOKEN):
        assert private not in text


@pytest.mark.django_db
def test_a_database_that_does_not_answer_is_reported_not_a_500(client: Client) -> None:
    from django.db import OperationalError

    with mock.patch("onboarding.metrics.jobs_snapshot", side_effect=OperationalError("down")):
        samples = scrape(client)
    assert value(samples, "autoriza_metrics_database_up") == 0.0
    assert not [key for key in samples if key[0] == "autoriza_jobs"]


# --- Web request latency ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_request_latency_histogram_counts_each_request(client: Client) -> None:
    labels = {"route": "healthz", "method": "GET", "status": "2xx"}
    before = scrape(client).get(("autoriza_http_request_duration_seconds_count", frozenset(labels.items())), 0.0)
    assert client.get("/healthz").status_code == 200
    after = scrape(client)
    assert value(after, "autoriza_http_request_duration_seconds_count", **labels) == before + 1
    assert value(after, "autoriza_http_request_duration_seconds_bucket", le="+Inf", **labels) == before + 1
    # A path that matches no URL pattern is counted under one bounded label, not its path.
    unresolved = {"route": "unresolved", "method": "GET", "status": "4xx"}
    before = after.get(("autoriza_http_request_duration_seconds_count", frozenset(unresolved.items())), 0.0)
    assert client.get("/no-existe/12345/").status_code == 404
    later = scrape(client)
    assert value(later, "autoriza_http_request_duration_seconds_count", **unresolved) == before + 1
    assert not [key for key in later if "no-existe" in str(key)]


_OBSERVE = """
import django; django.setup()
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import resolve
from portal.metrics import RequestLatencyMiddleware
request = RequestFactory().get("/healthz")
request.resolver_match = resolve("/healthz")
RequestLatencyMiddleware(lambda r: HttpResponse(status=204))(request)
"""
_COLLECT = """
import django; django.setup()
from prometheus_client import generate_latest
from portal.metrics import _scrape_registry
print(generate_latest(_scrape_registry()).decode())
"""


def test_multiprocess_mode_adds_up_every_web_process(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, a scrape answered by any gunicorn worker counts the requests
    every worker served: two processes observe one request each, a third reads two."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = clean_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder))

    def python(code: str) -> str:
        completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=120, check=False)
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed.stdout

    python(_OBSERVE)
    python(_OBSERVE)
    text = python(_COLLECT)
    counts = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "autoriza_http_request_duration_seconds_count"
        and sample.labels == {"route": "healthz", "method": "GET", "status": "2xx"}
    ]
    assert counts == [2.0]


@pytest.mark.django_db
def test_a_scrape_costs_five_aggregate_queries_whatever_the_number_of_jobs(  # type: ignore[no-untyped-def]
    cast, new_job, bot, django_assert_num_queries
) -> None:
    from onboarding.metrics import jobs_snapshot

    new_job(cast.company_a)
    new_job(cast.company_b)
    with django_assert_num_queries(5):
        snapshot = jobs_snapshot()
    assert snapshot.by_kind_status == {("authorize", "queued"): 2}
