"""Enrollment throughput through the real path, per number of browser slots.

Per variant (slots K, screenshots on/off): a fresh `celery -A portal worker -Q <queue> -c K`
(the threads pool of portal/settings.py, as in production: K slots in one process sharing one Playwright
driver and one Chromium, a browser context per job) on a
throwaway database and broker, the sandbox at 0 ms in its own process, and N jobs created through
`services.enrollment_job_create` (tenant in the *sandbox* SII environment, one company per job whose
certificate was stored with `services.certificate_store` from the sandbox's demo .pfx opened with
`sii_bot.open_pkcs12`). Jobs are submitted in a closed loop that keeps `backlog` (default 2×K) jobs
queued or running, so the worker never starves and created→finished is a job's real latency
(a short wait in the queue plus its run), not an artifact of dumping N jobs at once.

Measured: enrollments per minute (N / first created → last finished, Chromium launches included),
p50/p95 of created→finished and started→finished, failures (FAILED, or retried), the peak PSS of the
worker's process tree (the worker, its Playwright driver, Chromium's processes) per slot, CPU use of the
machine and of the sandbox, and per-step medians from the job events.
"""
from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import sii_bot
from benchmarks.common import (
    CLK_TCK,
    PY,
    REPO,
    TreeMemorySampler,
    database_create,
    database_drop,
    database_kind,
    database_url,
    django_env,
    log,
    master_key,
    median,
    percentile,
    stop_process_group,
    system_cpu,
    tree_cpu_seconds,
)
from benchmarks.sandbox import SandboxProcess
from sii_sandbox import pki as pki_mod
from sii_sandbox.rut import company_rut

USER_RUT = "11111111-1"
USER_NAME = "JUAN PEREZ GONZALEZ"
FIRST_COMPANY = 10_000  # sii_sandbox.rut.company_rut(n): this section uses n >= 10,000
STALL_SECONDS = 120.0  # a run with no finished job for this long is stopped (and reported)


def parse_variants(text: str) -> list[tuple[int, bool]]:
    """`"1,2,4,2:noshots"` → [(1, True), (2, True), (4, True), (2, False)]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        slots, _, flag = part.partition(":")
        out.append((int(slots), flag.strip().lower() not in ("noshots", "off", "0", "no")))
    return out


def _setup_django(var_dir: Path, database: str) -> None:
    os.environ.update(django_env(var_dir=var_dir, database=database, keys=master_key()))
    for folder in ("queue", "processed", "control"):
        (var_dir / "broker" / folder).mkdir(parents=True, exist_ok=True)
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _start_worker(queue: str, slots: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    logfile = log_path.open("wb")
    process = subprocess.Popen(
        [PY, "-m", "celery", "-A", "portal", "worker", "-Q", queue, "-c", str(slots), "--loglevel=INFO",
         "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
    )
    logfile.close()
    deadline = time.monotonic() + 90
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process_group(process)
            raise RuntimeError(f"the worker did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    return process


def _step_medians(job_ids: list[Any]) -> dict[str, float]:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding.models import JobEvent

    per_step: dict[str, list[float]] = {}
    started: dict[tuple[Any, str], Any] = {}
    events = JobEvent.objects.filter(job_id__in=job_ids).order_by("id").values_list("job_id", "step", "status",
                                                                                    "created_at")
    for job_id, step, status, at in events:
        if status == "started":
            started[(job_id, step)] = at
        elif (job_id, step) in started:
            per_step.setdefault(step, []).append((at - started.pop((job_id, step))).total_seconds())
    return {step: median(values) for step, values in per_step.items()}


def _run_variant(
    *, slots: int, screenshots: bool, n: int, backlog: int, pairs: list[tuple[Any, Any]], sb: SandboxProcess,
    var_dir: Path, max_seconds: float,
) -> dict[str, Any]:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.db.models import Max, Min

    from onboarding import services
    from onboarding.models import EnrollmentJob, JobEvent, JobStatus
    from portal.celery import app

    queue = f"bench-browser-{uuid.uuid4().hex[:8]}"
    app.conf.task_routes = {"onboarding.tasks.enrollment_job_run": {"queue": queue}}
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()
    env = {**os.environ, **sb.env, "SII_SCREENSHOTS": "1" if screenshots else "0", "LOG_LEVEL": "INFO"}
    env.pop("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", None)
    label = f"{slots} slot{'s' if slots > 1 else ''}, screenshots {'on' if screenshots else 'off'}"
    log(f"throughput: {label}: starting the worker")
    worker = _start_worker(queue, slots, env, var_dir / f"worker-{slots}-{int(screenshots)}.log")
    sampler = TreeMemorySampler(worker.pid, interval=1.0).start()
    worker_cpu0 = tree_cpu_seconds(worker.pid)
    busy0, total0 = system_cpu()
    sandbox_cpu0 = sb.cpu_seconds()
    created: list[Any] = []
    todo = list(pairs)
    done_count = 0
    stalled = False
    capped = False
    t0 = time.monotonic()
    last_progress = t0
    try:
        while done_count < len(created) or todo:
            if todo and time.monotonic() - t0 > max_seconds:
                # Bounded time: stop submitting, let what is queued or running finish.
                capped = True
                log(f"throughput: {label}: {max_seconds:.0f} s budget spent after {len(created)} jobs; "
                    f"finishing those")
                todo = []
            outstanding = len(created) - done_count
            while todo and outstanding < backlog:
                company, certificate = todo.pop(0)
                job = services.enrollment_job_create(company=company, certificate=certificate, created_by=None)
                created.append(job.pk)
                outstanding += 1
            finished = EnrollmentJob.objects.filter(pk__in=created).filter(
                status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]
            ).count() + EnrollmentJob.objects.filter(pk__in=created, status=JobStatus.QUEUED, retry_count__gt=0).count()
            if finished != done_count:
                if finished // max(1, n // 5) != done_count // max(1, n // 5):
                    log(f"throughput: {label}: {finished}/{n} done")
                done_count = finished
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > STALL_SECONDS:
                stalled = True
                log(f"throughput: {label}: no job finished for {STALL_SECONDS:.0f} s; stopping this run")
                break
            time.sleep(0.1)
    finally:
        wall_loop = time.monotonic() - t0
        busy1, total1 = system_cpu()
        sandbox_cpu = sb.cpu_seconds() - sandbox_cpu0
        worker_cpu = tree_cpu_seconds(worker.pid) - worker_cpu0
        sampler.stop()
        stop_process_group(worker, timeout=20, leader_only=True)
    jobs = list(EnrollmentJob.objects.filter(pk__in=created))
    succeeded = [j for j in jobs if j.status == JobStatus.SUCCEEDED]
    failed = [j for j in jobs if j.status == JobStatus.FAILED or j.retry_count > 0]
    unfinished = [j for j in jobs if j.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED) and j.retry_count == 0]
    span = EnrollmentJob.objects.filter(pk__in=created).aggregate(first=Min("created_at"), last=Max("finished_at"))
    wall = (span["last"] - span["first"]).total_seconds() if span["last"] and span["first"] else wall_loop
    job_times = [(j.finished_at - j.created_at).total_seconds() for j in succeeded]
    run_times = [(j.finished_at - j.started_at).total_seconds() for j in succeeded if j.started_at]
    # One slot: how long the slot sat idle between a job's end and the next job's start (broker
    # delivery, the claim, and the worker's own bookkeeping).
    ordered = sorted((j for j in jobs if j.started_at and j.finished_at), key=lambda j: j.started_at)
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(ordered)] if slots == 1 else []
    missing = sum(1 for j in succeeded if not any(u["rut"] == USER_RUT for u in sb.users(j.company.rut)))
    failure_codes: dict[str, int] = {}
    for j in failed:
        failure_codes[j.failure_code or "?"] = failure_codes.get(j.failure_code or "?", 0) + 1
    events = JobEvent.objects.filter(job_id__in=created).count()
    out = {
        "slots": slots,
        "screenshots": screenshots,
        "n": len(created),
        "n_requested": n,
        "capped_at_s": max_seconds if capped else None,
        "backlog": backlog,
        "succeeded": len(succeeded),
        "failures": len(failed) + len(unfinished),
        "failure_codes": failure_codes,
        "unfinished": len(unfinished),
        "stalled": stalled,
        "missing_in_sandbox": missing,
        "wall_s": wall,
        "per_minute": len(succeeded) / wall * 60 if wall > 0 else 0.0,
        "job_p50_s": percentile(job_times, 50),
        "job_p95_s": percentile(job_times, 95),
        "run_p50_s": percentile(run_times, 50),
        "run_p95_s": percentile(run_times, 95),
        "idle_gap_p50_s": percentile(gaps, 50) if gaps else None,
        "peak_tree_mb": sampler.peak_total_kb / 1024,
        "peak_tree_per_slot_mb": sampler.peak_total_kb / 1024 / slots,
        "peak_child_mb": sampler.peak_child_kb / 1024,
        "peak_processes": sampler.peak_processes,
        "peak_breakdown_mb": sampler.peak_breakdown,
        "slot_utilization": sum(run_times) / (slots * wall) if wall > 0 else float("nan"),
        "memory_samples": sampler.samples,
        "machine_cpu_util": (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan"),
        # All CPU the machine spent during the run (worker, Chromium, database, sandbox, this process,
        # and anything else running) per enrollment: the bound on enrollments/min for this many cores.
        "machine_cpu_s_per_enrollment": (busy1 - busy0) / CLK_TCK / len(succeeded) if succeeded else float("nan"),
        "worker_cpu_s_per_enrollment": worker_cpu / len(succeeded) if succeeded else float("nan"),
        "sandbox_cpu_s": sandbox_cpu,
        "sandbox_cpu_util_of_one_core": sandbox_cpu / wall_loop if wall_loop else float("nan"),
        "events": events,
        "steps_median_s": _step_medians(created),
    }
    log(f"throughput: {label}: {out['per_minute']:.1f}/min, p50 {out['job_p50_s']:.2f} s, "
        f"failures {out['failures']}, peak {out['peak_tree_per_slot_mb']:.0f} MB/slot")
    return out


def run(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    var_dir = work / "throughput"
    var_dir.mkdir(parents=True, exist_ok=True)
    database = database_url("_tp", var_dir)
    database_create(database)
    try:
        _setup_django(var_dir, database)
        return _run_all(opts, var_dir, database)
    finally:
        # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
        from django.db import connections

        connections.close_all()
        database_drop(database)


def _run_all(opts: argparse.Namespace, var_dir: Path, database: str) -> dict[str, Any]:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.conf import settings

    from onboarding import services
    from onboarding.models import SiiEnvironment

    variants = parse_variants(opts.tp_variants)
    n = opts.n
    total = n * len(variants)
    result: dict[str, Any] = {
        "database": database_kind(database),
        "broker": "Redis" if settings.REDIS_URL else "filesystem",
        "n": n,
        "variants": [],
    }
    with SandboxProcess(var_dir / "sandbox", latency_ms=0) as sb:
        log(f"throughput: preparing {total} companies and certificates ({result['database']}, "
            f"{result['broker']} broker)")
        tenant = services.tenant_create(name="Estudio Benchmark", slug="bench-throughput",
                                        sii_environment=SiiEnvironment.SANDBOX)
        services.representative_add(tenant=tenant, rut=USER_RUT, name=USER_NAME)
        bundle = sii_bot.open_pkcs12(Path(sb.demo["pfx"]).read_bytes(), sb.demo["password"])
        ruts = [company_rut(FIRST_COMPANY + i) for i in range(total)]
        sb.add_companies([{"rut": rut, "name": f"EMPRESA THROUGHPUT {i:05d} SPA", "admins": [pki_mod.DEMO_HOLDER_RUT]}
                          for i, rut in enumerate(ruts)])
        pairs = []
        for i, rut in enumerate(ruts):
            company = services.client_company_create(tenant=tenant, rut=rut, legal_name=f"Empresa Throughput {i:05d} SpA")
            certificate = services.certificate_store(company=company, bundle=bundle, uploaded_by=None)
            pairs.append((company, certificate))
        for index, (slots, screenshots) in enumerate(variants):
            backlog = opts.backlog or 2 * slots
            chunk = pairs[index * n : (index + 1) * n]
            result["variants"].append(_run_variant(slots=slots, screenshots=screenshots, n=n, backlog=backlog,
                                                   pairs=chunk, sb=sb, var_dir=var_dir,
                                                   max_seconds=opts.variant_seconds))
    return result
