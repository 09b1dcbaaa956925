"""Portal latency under concurrent clients: the client's status partial and the staff dashboard.

Against gunicorn (`portal.wsgi` with production's gunicorn.conf.py unless `--gunicorn` overrides its
workers, DEBUG off, plain http on loopback) on a dedicated database (`autoriza_bench` on the
DATABASE_URL PostgreSQL server, else SQLite in the throwaway var dir), seeded with one tenant of
`companies` client companies (10,000 by default, each with its latest job in a realistic mix of
stages), `owners` owners each watching a running job of their own (what the live page polls: 11
events so far), and `staff` firm members; then ANALYZEd, as autovacuum would have done.

Scenarios (each client cycling over all users):

- status 200: `GET /trabajo/<job>/estado/` with the owner's session, no validators: the partial is
  rendered every time; closed loop, K keep-alive clients (capacity, and the latency at saturation);
- status 304: the same with `If-None-Match: <current ETag>` and `If-Modified-Since`, as a poll that
  finds nothing new (the view answers 304 Not Modified);
- both again in an open loop: requests due at a fixed rate (400/s by default), latency counted from
  when each was due (`loadgen.run_open_loop`), which is what a latency target at a rate describes;
- dashboard: `GET /estudio/<slug>/` as staff, 10 concurrent clients by default, closed loop.

Results: requests/s, p50/p90/p99/max latency, errors (connect/read/timeouts and HTTP ≥ 400), and
the CPU the gunicorn processes used per request.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import loadgen
from benchmarks.common import (
    PY,
    REPO,
    database_create,
    database_drop,
    database_kind,
    database_url,
    django_env,
    free_port,
    log,
    master_key,
    stop_process_group,
    system_cpu,
    tree_cpu_seconds,
)
from sii_sandbox.rut import company_rut

TENANT_SLUG = "estudio-bench"
USER_RUT = "11111111-1"
USER_NAME = "JUAN PEREZ GONZALEZ"
FIRST_COMPANY = 100_000
STEPS = ("open_page", "login", "company", "user_list", "new_user", "fill_form", "confirm", "save", "result", "logout")


def _setup_django(var_dir: Path, database: str) -> dict[str, str]:
    env = django_env(var_dir=var_dir, database=database, keys=master_key())
    os.environ.update(env)
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    return env


def _seed(companies: int, owners: int, staff: int) -> dict[str, Any]:
    """Rows as production has them, written in bulk. Returns the users' ids and the watched jobs."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from onboarding import services
    from onboarding.models import (
        ClientCompany,
        CompanyStage,
        EnrollmentJob,
        JobEvent,
        JobStatus,
        Membership,
        Role,
        SiiEnvironment,
    )

    User = get_user_model()
    rng = random.Random(7)
    now = timezone.now()
    tenant = services.tenant_create(name="Estudio Benchmark", slug=TENANT_SLUG, sii_environment=SiiEnvironment.SANDBOX)
    representative = services.representative_add(tenant=tenant, rut=USER_RUT, name=USER_NAME)
    unusable = make_password(None)
    owner_users = User.objects.bulk_create(
        [User(username=f"duena{i:04d}@empresa.cl", email=f"duena{i:04d}@empresa.cl", password=unusable)
         for i in range(owners)]
    )
    staff_users = User.objects.bulk_create(
        [User(username=f"personal{i:02d}@estudio.cl", email=f"personal{i:02d}@estudio.cl", password=unusable)
         for i in range(staff)]
    )
    if owner_users and owner_users[0].pk is None:  # backends that do not return ids from bulk_create
        owner_users = list(User.objects.filter(username__startswith="duena").order_by("id"))
        staff_users = list(User.objects.filter(username__startswith="personal").order_by("id"))
    Membership.objects.bulk_create([Membership(tenant=tenant, user=u, role=Role.STAFF) for u in staff_users])

    # Stages: the watched companies are running; the rest follow a plausible mix.
    mix = [(CompanyStage.AUTHORIZED, 60), (CompanyStage.FAILED, 8), (CompanyStage.QUEUED, 2),
           (CompanyStage.RUNNING, 2), (CompanyStage.WAITING_CERTIFICATE, 18), (CompanyStage.INVITED, 10)]
    population = [stage for stage, weight in mix for _ in range(weight)]
    rows = []
    for i in range(companies):
        stage = CompanyStage.RUNNING if i < owners else rng.choice(population)
        changed = now - dt.timedelta(seconds=rng.randint(0, 60 * 24 * 3600)) if i >= owners else now
        rows.append(ClientCompany(
            tenant=tenant, rut=company_rut(FIRST_COMPANY + i), legal_name=f"Empresa Cliente {i:05d} SpA",
            owner=owner_users[i] if i < owners else None, owner_name=f"Dueña {i:05d}",
            owner_email=f"contacto{i:05d}@empresa.cl", stage=stage, stage_changed_at=changed,
            created_at=changed - dt.timedelta(days=rng.randint(0, 30)),
        ))
    for batch in range(0, len(rows), 2000):
        ClientCompany.objects.bulk_create(rows[batch : batch + 2000])
    saved = list(ClientCompany.objects.filter(tenant=tenant).order_by("id"))
    status_for = {CompanyStage.AUTHORIZED: JobStatus.SUCCEEDED, CompanyStage.FAILED: JobStatus.FAILED,
                  CompanyStage.QUEUED: JobStatus.QUEUED, CompanyStage.RUNNING: JobStatus.RUNNING}
    jobs = []
    for company in saved:
        status = status_for.get(company.stage)
        if status is None:
            continue
        created = company.stage_changed_at - dt.timedelta(seconds=40)
        finished = status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
        jobs.append(EnrollmentJob(
            tenant=tenant, company=company, representative=representative, user_rut=USER_RUT, user_name=USER_NAME,
            status=status, attempt=1, created_at=created,
            started_at=created + dt.timedelta(seconds=2) if status != JobStatus.QUEUED else None,
            heartbeat_at=company.stage_changed_at if status != JobStatus.QUEUED else None,
            finished_at=company.stage_changed_at if finished else None,
            outcome="created" if status == JobStatus.SUCCEEDED else "",
            result={"company_name": company.legal_name.upper(), "company_rut": company.rut, "user_rut": USER_RUT,
                    "user_name": USER_NAME, "admin": True, "sign": True, "registry": True,
                    "authorized_by": "13322924-8"} if status == JobStatus.SUCCEEDED else None,
            failure_code="sii_unavailable" if status == JobStatus.FAILED else "",
            failure_message="El SII no está disponible en este momento." if status == JobStatus.FAILED else "",
        ))
    for batch in range(0, len(jobs), 2000):
        EnrollmentJob.objects.bulk_create(jobs[batch : batch + 2000])
    watched = list(EnrollmentJob.objects.filter(tenant=tenant, company__owner__isnull=False)
                   .select_related("company").order_by("company_id"))
    events = []
    for job in watched:
        at = job.created_at
        events.append(JobEvent(tenant=tenant, job=job, step="queued", status="info", created_at=at,
                               message="Solicitud recibida; en cola para el SII."))
        # A job half-way: five steps done, the sixth started (11 events).
        for step in STEPS[:5]:
            at += dt.timedelta(milliseconds=300)
            events.append(JobEvent(tenant=tenant, job=job, step=step, status="started", created_at=at,
                                   message=f"Paso {step} en curso."))
            at += dt.timedelta(milliseconds=300)
            events.append(JobEvent(tenant=tenant, job=job, step=step, status="done", created_at=at,
                                   message=f"Paso {step}: listo."))
        events.append(JobEvent(tenant=tenant, job=job, step=STEPS[5], status="started", created_at=at,
                               message="Ingresando el RUT del usuario y los permisos solicitados."))
    JobEvent.objects.bulk_create(events, batch_size=2000)
    # Planner statistics, as a running database has them: autovacuum analyzes a table within about a
    # minute of a bulk load like this one, but the scenarios start at once. Without them PostgreSQL
    # guessed 5 companies for the tenant and sorted all 10,000 for every dashboard page (5 ms of its
    # CPU a page instead of 0.1), and the figures depended on when autovacuum happened to run.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "owners": [(u.pk, j.pk) for u, j in zip(owner_users, watched)],
        "staff": [u.pk for u in staff_users],
        "jobs": len(jobs),
        "companies": len(saved),
    }


def _sessions(user_ids: list[int]) -> list[str]:
    """A logged-in session per user (Django's test client's force_login: a real session row)."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.contrib.auth import get_user_model
    from django.test import Client

    users = get_user_model().objects.in_bulk(user_ids)
    out = []
    for pk in user_ids:
        client = Client()
        client.force_login(users[pk])
        out.append(client.cookies["sessionid"].value)
    return out


def gunicorn_described(workers: int | None, threads: int | None, cpu: str | None) -> str:
    """What gunicorn runs: production's gunicorn.conf.py (evaluated as gunicorn would, on `cpu` if
    pinned) unless `workers` × `threads` override it."""
    if workers is not None:
        kind = "gthread" if (threads or 1) > 1 else "sync"
        return f"{workers} {kind} workers x {threads or 1} threads (--gunicorn)"
    command = [PY, "-c", "import runpy; c = runpy.run_path('gunicorn.conf.py'); print(c['workers'], c['worker_class'])"]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, timeout=30).stdout.split()
    return f"gunicorn.conf.py: {out[0]} {out[1]} workers"


def _start_gunicorn(env: dict[str, str], port: int, workers: int | None, threads: int | None, cpu: str | None,
                    var_dir: Path) -> subprocess.Popen[bytes]:
    # Production's configuration file, with the address and the logs moved to the run's own.
    command = [PY, "-m", "gunicorn", "-c", "gunicorn.conf.py", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
               "--log-level", "warning", "--error-logfile", str(var_dir / "gunicorn.log")]
    if workers is not None:
        command += ["--workers", str(workers), "--threads", str(threads or 1),
                    "--worker-class", "gthread" if (threads or 1) > 1 else "sync"]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process_group(process)
            log_text = (var_dir / "gunicorn.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"gunicorn did not start:\n{log_text}")
        time.sleep(0.3)


def run(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    var_dir = work / "portal"
    var_dir.mkdir(parents=True, exist_ok=True)
    database = database_url("", var_dir)
    database_create(database)
    try:
        env = _setup_django(var_dir, database)
        return _run(opts, var_dir, database, env)
    finally:
        # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
        from django.db import connections

        connections.close_all()
        database_drop(database)


def _run(opts: argparse.Namespace, var_dir: Path, database: str, env: dict[str, str]) -> dict[str, Any]:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.utils.http import http_date

    t0 = time.monotonic()
    seeded = _seed(opts.companies, opts.owners, opts.dashboard_k)
    owner_sessions = _sessions([uid for uid, _ in seeded["owners"]])
    staff_sessions = _sessions(seeded["staff"])
    log(f"portal: seeded {seeded['companies']} companies, {seeded['jobs']} jobs, {len(owner_sessions)} owners, "
        f"{len(staff_sessions)} staff in {time.monotonic() - t0:.1f} s ({database_kind(database)})")
    workers, threads = opts.gunicorn_workers, opts.gunicorn_threads
    pin = opts.pin and (os.cpu_count() or 1) >= 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn = _start_gunicorn(env, port, workers, threads, "0" if pin else None, var_dir)
    result: dict[str, Any] = {
        "database": database_kind(database),
        "companies": seeded["companies"],
        "jobs": seeded["jobs"],
        "owners": len(owner_sessions),
        "staff": len(staff_sessions),
        "gunicorn": gunicorn_described(workers, threads, "0" if pin else None),
        "cores": "gunicorn on core 0, load generator on core 1 (taskset), PostgreSQL/SQLite unpinned"
        if pin else "shared: gunicorn, the database and the load generator on both cores",
        "scenarios": {},
        "checks": {},
    }
    try:
        status_plain: list[loadgen.Request] = []
        status_cond: list[loadgen.Request] = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for (_, job_id), sid in zip(seeded["owners"], owner_sessions):
                path = f"/trabajo/{job_id}/estado/"
                headers = {"Cookie": f"sessionid={sid}", "HX-Request": "true"}
                first = http.get(path, headers=headers)
                etag = first.headers.get("ETag", "")
                if first.status_code != 200 or not etag:
                    raise RuntimeError(f"status partial answered {first.status_code} (ETag {etag!r}) for {path}")
                status_plain.append((path, headers))
                status_cond.append((path, {**headers, "If-None-Match": etag,
                                           "If-Modified-Since": http_date(time.time())}))
            again = http.get(status_cond[0][0], headers=status_cond[0][1])
            result["checks"]["status_conditional"] = again.status_code
            result["checks"]["status_200_bytes"] = len(first.content)
            dashboard_path = f"/estudio/{TENANT_SLUG}/"
            dashboard = [(dashboard_path, {"Cookie": f"sessionid={sid}"}) for sid in staff_sessions]
            probe = http.get(dashboard_path, headers=dashboard[0][1]) if dashboard else None
            result["checks"]["dashboard"] = probe.status_code if probe is not None else None
            result["checks"]["dashboard_bytes"] = len(probe.content) if probe is not None else 0
            if probe is not None and (probe.status_code != 200 or "Empresa Cliente" not in probe.text):
                log(f"portal: the dashboard answered {probe.status_code}; measuring it anyway")
        if result["checks"]["status_conditional"] != 304:
            log(f"portal: a conditional poll answered {result['checks']['status_conditional']}, not 304")

        wrk = None if opts.loadgen == "python" else loadgen.ensure_wrk()
        if opts.loadgen == "wrk" and wrk is None:
            raise RuntimeError("wrk was requested but is not installed and could not be installed")
        result["loadgen"] = "wrk" if wrk else (
            "python (threads, http.client keep-alive; "
            + ("requested)" if opts.loadgen == "python" else "wrk unavailable)")
        )
        # Closed loop (K clients, each sending as soon as it is answered): capacity and the latency at
        # saturation. Open loop (a fixed rate, latency from when each request was due): the latency at
        # the target rate, which is what "400 requests/s with p99 under 100 ms" describes.
        scenarios = [
            ("status_200", status_plain, opts.portal_k, None),
            ("status_304", status_cond, opts.portal_k, None),
            ("status_200_at_rate", status_plain, opts.portal_k, opts.status_rate),
            ("status_304_at_rate", status_cond, opts.portal_k, opts.status_rate),
            ("dashboard", dashboard, opts.dashboard_k, None),
        ]
        for name, requests, connections, rate in scenarios:
            if not requests or rate == 0:
                continue

            def load(duration: float, requests: list[loadgen.Request] = requests,
                     connections: int = connections, rate: float | None = rate) -> dict[str, Any]:
                if rate:
                    return loadgen.run_open_loop(base, requests, rate=rate, duration=duration,
                                                 connections=connections, work=var_dir, cpu="1" if pin else None)
                if wrk:
                    return loadgen.run_wrk(wrk, base, requests, connections=connections, duration=duration,
                                           work=var_dir, cpu="1" if pin else None)
                return loadgen.run_python(base, requests, connections=connections, duration=duration)

            load(opts.warmup)  # every gunicorn worker: imports, template compilation, connections
            cpu0 = tree_cpu_seconds(gunicorn.pid)
            busy0, total0 = system_cpu()
            figures = load(opts.duration)
            busy1, total1 = system_cpu()
            cpu = tree_cpu_seconds(gunicorn.pid) - cpu0
            figures["server_cpu_ms_per_request"] = cpu * 1000 / figures["requests"] if figures["requests"] else None
            figures["machine_cpu_util"] = (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
            result["scenarios"][name] = figures
            log(f"portal: {name}: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']:.1f} ms, "
                f"p99 {figures['p99_ms']:.1f} ms, errors {figures['errors']} (K={connections})")
    finally:
        stop_process_group(gunicorn)
    return result
