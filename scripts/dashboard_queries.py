#!/usr/bin/env python
"""Benchmark of the firm's dashboard: SQL queries and time per page for N client companies.

    .venv/bin/python scripts/dashboard_queries.py            # 10 and 10,000 companies
    .venv/bin/python scripts/dashboard_queries.py 50000      # any sizes
    .venv/bin/python scripts/dashboard_queries.py --explain  # also SQLite's query plans

Runs on a throwaway SQLite database in a temporary AUTORIZA_VAR_DIR (never var/, never
DATABASE_URL), through Django's test client, so it measures what a browser's request costs on the
server: session, membership, counts by stage, the page's COUNT, the page and its latest jobs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["AUTORIZA_VAR_DIR"] = tempfile.mkdtemp(prefix="autoriza-bench-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("AUTORIZA_MASTER_KEYS", "bench:" + "A" * 43 + "=")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

PAGES: list[dict[str, str]] = [
    {},
    {"pagina": "2"},
    {"orden": "nombre", "pagina": "3"},
    {"orden": "-rut"},
    {"orden": "estado"},
    {"estado": "failed"},
    {"q": "40.000.12"},
    {"q": "empresa 0001", "fecha": "creado"},
]


def rut_for(body: int) -> str:
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    check = 11 - total % 11
    return f"{body}-{'0' if check == 11 else 'K' if check == 10 else check}"


def populate(tenant, count: int) -> None:  # type: ignore[no-untyped-def]
    """`count` companies spread over every stage; the queued/running/authorized/failed ones have a
    job, half of the failed ones two attempts."""
    from onboarding.models import ClientCompany, CompanyStage, EnrollmentJob, JobStatus

    representative = tenant.representatives.get()
    stages = [stage for stage, _ in CompanyStage.choices]
    now = timezone.now()
    companies = ClientCompany.objects.bulk_create(
        (
            ClientCompany(
                tenant=tenant, rut=rut_for(40_000_000 + i), legal_name=f"Empresa {i:06d} SpA",
                owner_name=f"Contacto {i}", owner_email=f"c{i}@empresa.cl", stage=stages[i % len(stages)],
                stage_changed_at=now - dt.timedelta(minutes=i), created_at=now - dt.timedelta(minutes=2 * i),
            )
            for i in range(count)
        ),
        batch_size=2000,
    )
    status_for = {"queued": JobStatus.QUEUED, "running": JobStatus.RUNNING, "authorized": JobStatus.SUCCEEDED, "failed": JobStatus.FAILED}
    jobs = []
    for i, company in enumerate(companies):
        if company.stage not in status_for:
            continue
        attempts = 2 if company.stage == "failed" and i % 2 else 1
        for attempt in range(1, attempts + 1):
            status = status_for[company.stage] if attempt == attempts else JobStatus.FAILED
            jobs.append(
                EnrollmentJob(
                    id=uuid.uuid4(), tenant=tenant, company=company, representative=representative,
                    user_rut=representative.rut, user_name=representative.name, status=status, attempt=attempt,
                    failure_code="sii_unavailable" if status == JobStatus.FAILED else "",
                    failure_message="El SII no respondió." if status == JobStatus.FAILED else "",
                )
            )
    EnrollmentJob.objects.bulk_create(jobs, batch_size=2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[10, 10_000])
    parser.add_argument("--explain", action="store_true", help="print SQLite's plan of each page's queries")
    args = parser.parse_args()

    from django.contrib.auth import get_user_model

    from onboarding import services
    from onboarding.models import ClientCompany, Role

    setup_test_environment()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench@estudio.cl", password="x")
    print(f"database: {settings.DATABASES['default']['NAME']}")
    for size in args.sizes:
        tenant = services.tenant_create(name=f"Bench {size}", slug=f"bench-{size}")
        services.representative_add(tenant=tenant, rut="13.322.924-8", name="Alex Brito Mardones")
        services.membership_add(tenant=tenant, user=user, role=Role.ADMIN)
        start = time.perf_counter()
        populate(tenant, size)
        print(f"\n{size:,} companies ({ClientCompany.objects.filter(tenant=tenant).count():,} stored) in "
              f"{time.perf_counter() - start:.1f} s")
        client = Client()
        client.force_login(user)
        url = reverse("staff:dashboard", kwargs={"tenant_slug": tenant.slug})
        client.get(url)  # warm-up: templates, content types
        for params in PAGES:
            timings = []
            for _ in range(3):
                with CaptureQueriesContext(connection) as queries:
                    begin = time.perf_counter()
                    response = client.get(url, params)
                    timings.append(time.perf_counter() - begin)
            assert response.status_code == 200, response.status_code
            rows = len(response.context["rows"])
            print(f"  {str(params):42} {len(queries):2d} queries  {min(timings) * 1000:6.1f} ms  {rows:3d} rows")
            if args.explain:
                with connection.cursor() as cursor:
                    for query in queries.captured_queries[-3:]:
                        cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
                        plan = "; ".join(row[-1] for row in cursor.fetchall())
                        print(f"      {query['sql'][:90]}…\n        plan: {plan}")
        with CaptureQueriesContext(connection) as queries:
            begin = time.perf_counter()
            response = client.get(reverse("staff:dashboard_export", kwargs={"tenant_slug": tenant.slug}))
            lines = sum(chunk.count(b"\n") for chunk in response.streaming_content)
        print(f"  CSV export: {lines:,} lines, {len(queries)} queries, {time.perf_counter() - begin:.2f} s")


if __name__ == "__main__":
    main()
