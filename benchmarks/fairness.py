"""Fair scheduling and the cluster-wide SII limits under a bulk load, with a worker killed mid-run.

Two `celery worker` processes of 2 slots each (as two machines when REDIS_URL is set: separate var
folders, the same database and Redis; with the embedded default they share this machine's folders and
SQLite), the SII sandbox in its own process with a little latency per page. Two phases:

1. *alone*: a firm's live authorizations arrive one by one with nothing else running;
2. *under bulk*: another firm starts N background jobs (`--n`; the issue's 300 by default, 40 with
   --quick) that fill every slot, the 20 live authorizations arrive meanwhile, and one worker is
   killed with SIGKILL (its whole process group, Chromium included) a third of the way through, then
   started again as a supervisor would.

Measured: each live job's wait (created → the start of the run that did it), its p95 per phase; the
bulk jobs' run time (a "job duration"); whether a background job ever took a free slot while a live
job waited for one; the most concurrent SII sessions per certificate holder (from the bot's own
login → logout events, which sit inside the job's leases; the sandbox's own count too when it
reports `max_concurrent_sessions_by_rut`); jobs lost (not succeeded) and SII saves duplicated (the
sandbox's log per company); SII places still held once a lease TTL has passed after the end.

The bulk firm's certificates alternate between two holders (demo, lowercase_k: 2 holders × the cap
of 2 fill the 4 slots) and the live firm's between admin2 and lowercase_k (live clients have
certificates of their own; the sandbox has three valid personal ones, so one holder is shared), so the per-holder cap binds for both. The sandbox refuses a holder's login beyond cap + 2 live sessions (`max_sessions`):
the +2 are the SII sessions a killed worker leaves open (the SII ends them only at its own timeout).

The helpers below (`session_intervals`, `max_concurrent`, `live_figures`, …) are also what
tests/reliability/test_fairness.py asserts on.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sii_bot
from benchmarks.common import (
    PY,
    REPO,
    database_create,
    database_drop,
    database_kind,
    database_url,
    django_env,
    log,
    master_key,
    percentile,
    stop_process_group,
)
from benchmarks.sandbox import SandboxProcess
from sii_sandbox.pki import load_pki
from sii_sandbox.rut import company_rut

SLOTS_PER_WORKER = 2
PER_RUT_CAP = 2
LEASE_TTL_SECONDS = 10.0
LATENCY_MS = 50
LIVE_JOBS = 20
REPRESENTATIVE_RUT = "13322924-8"
REPRESENTATIVE_NAME = "ALEX BRITO MARDONES"
BULK_CERTIFICATES = ("demo", "lowercase_k")
# The sandbox's PKI has three valid personal certificates: the live firm shares lowercase_k's holder
# with the bulk firm (a live job then also competes with background jobs for that holder's places).
LIVE_CERTIFICATES = ("admin2", "lowercase_k")
# The policy every process of a run shares (the workers through their environment).
POLICY = {
    "AUTORIZA_SII_MAX_SESSIONS_PER_RUT": str(PER_RUT_CAP),
    "AUTORIZA_SII_LEASE_TTL_SECONDS": str(LEASE_TTL_SECONDS),
    "AUTORIZA_SII_LEASE_WAIT_SECONDS": "1",
    "AUTORIZA_BACKGROUND_IN_FLIGHT": str(2 * SLOTS_PER_WORKER),
    "AUTORIZA_JOB_LOST_AFTER_SECONDS": "20",
    "AUTORIZA_JOB_RETRY_DELAY_SCALE": "0.002",
    "SII_SCREENSHOTS": "0",
}


# --- What is measured (shared with tests/reliability/test_fairness.py) ------------------------------


def session_intervals(job_ids: Iterable[Any], *, killed_at: datetime | None = None) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per certificate holder RUT, each SII session a job's bot held: from its "login started" event
    to its "logout" event (done or failed). A session with no logout (its worker was killed) ends at
    `killed_at`, or at the job's next event."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding.models import EnrollmentJob, JobEvent

    holders = dict(EnrollmentJob.objects.filter(pk__in=list(job_ids)).values_list("pk", "certificate__holder_rut"))
    events = JobEvent.objects.filter(job_id__in=list(holders)).order_by("job_id", "created_at", "id")
    per_job: dict[Any, list[tuple[str, str, datetime]]] = {}
    for job_id, step, status, at in events.values_list("job_id", "step", "status", "created_at"):
        per_job.setdefault(job_id, []).append((step, status, at))
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for job_id, rows in per_job.items():
        opened: datetime | None = None
        for step, status, at in rows:
            if step == "login" and status == "started":
                if opened is not None:  # a new run began: the previous one died without logging out
                    out.setdefault(holders[job_id] or "?", []).append((opened, min(at, killed_at or at)))
                opened = at
            elif opened is not None and step == "logout" and status in ("done", "failed"):
                out.setdefault(holders[job_id] or "?", []).append((opened, at))
                opened = None
        if opened is not None:
            out.setdefault(holders[job_id] or "?", []).append((opened, killed_at or rows[-1][2]))
    return out


def max_concurrent(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an end and a start at the same instant don't overlap)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda p: (p[0], p[1]))
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def live_figures(live_ids: list[Any], bulk_ids: list[Any]) -> dict[str, Any]:
    """Live waits (created → the start of the run that did the job), split into the jobs that only
    waited for a slot and those that also waited for their SII session leases, were resumed after a
    kill or whose message the killed worker took with it; the bulk jobs' run times; and every background job that started while a live job was
    waiting for a slot (there should be none: live jobs are served first)."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding.models import EnrollmentJob, JobEvent

    live = list(EnrollmentJob.objects.filter(pk__in=live_ids))
    bulk = list(EnrollmentJob.objects.filter(pk__in=bulk_ids))
    waited_for_leases = set(JobEvent.objects.filter(job_id__in=live_ids, step="waiting").values_list("job_id", flat=True))
    # A live job is sent once, when it is created; a later `enqueued_at` means the dispatcher sent it
    # again because its first message was lost (taken by the worker that was killed before it
    # claimed the job): it waited for the loss to be noticed (AUTORIZA_JOB_LOST_AFTER_SECONDS), not
    # for a slot.
    sent_again = {j.pk for j in live if j.enqueued_at and (j.enqueued_at - j.created_at).total_seconds() > 1.0}
    plain = [j for j in live if j.started_at and j.retry_count == 0 and j.pk not in waited_for_leases
             and j.pk not in sent_again]
    waits = {str(j.pk): (j.started_at - j.created_at).total_seconds() for j in live if j.started_at}
    plain_waits = [waits[str(j.pk)] for j in plain]
    runs = [(j.finished_at - j.started_at).total_seconds() for j in bulk if j.started_at and j.finished_at]
    # A background job's start while a live job (that waited only for a slot) was waiting. The start is
    # the claim, written a moment after a slot took the message (up to a second on a loaded machine):
    # a background message taken just before the live one arrived, or just after the live one was
    # taken by another slot, is not an overtaking.
    # `close_calls` lists the starts within that second, for the record.
    before, after = 0.3, 1.0
    overtaken, close_calls = [], []
    for j in plain:
        for b in bulk:
            if b.started_at and (j.created_at.timestamp() + before < b.started_at.timestamp()
                                 < j.started_at.timestamp()) and b.started_at.timestamp() >= j.started_at.timestamp() - after:
                close_calls.append({"live_started_after_s": (j.started_at - b.started_at).total_seconds(),
                                    "same_worker": b.worker == j.worker})
            if b.started_at and (j.created_at.timestamp() + before < b.started_at.timestamp()
                                 < j.started_at.timestamp() - after):
                overtaken.append({
                    "live": str(j.pk), "live_created": j.created_at.isoformat(), "live_started": j.started_at.isoformat(),
                    "background": str(b.pk), "background_sent": b.enqueued_at.isoformat() if b.enqueued_at else None,
                    "background_started": b.started_at.isoformat(), "background_worker": b.worker,
                    "live_worker": j.worker,
                })
    return {
        "live": len(live),
        "live_waits_s": sorted(waits.values()),
        "live_wait_p50_s": percentile(list(waits.values()), 50),
        "live_wait_p95_s": percentile(list(waits.values()), 95),
        "live_wait_max_s": max(waits.values(), default=float("nan")),
        "live_slot_only": len(plain),
        "live_slot_only_waits_s": sorted(plain_waits),
        "live_slot_only_wait_max_s": max(plain_waits, default=float("nan")),
        "live_waited_for_leases": len(waited_for_leases),
        "live_resumed": sum(1 for j in live if j.retry_count),
        "live_sent_again_after_a_lost_message": len(sent_again),
        "bulk_run_p50_s": percentile(runs, 50),
        "bulk_run_p95_s": percentile(runs, 95),
        "bulk_run_max_s": max(runs, default=float("nan")),
        "overtaken_by_background": overtaken,
        "background_started_within_a_second_of_a_live_claim": close_calls,
    }


def outcome_figures(job_ids: list[Any], state: dict[str, Any]) -> dict[str, Any]:
    """Lost jobs (not SUCCEEDED), SII saves per company from the sandbox's log (duplicated: more than
    one; missing: none for a job that says it created or updated the user), refused logins."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding.models import EnrollmentJob, JobEvent

    jobs = list(EnrollmentJob.objects.filter(pk__in=job_ids).select_related("company"))
    saves: dict[str, int] = {}
    for entry in state.get("log", []):
        if entry.get("user") == REPRESENTATIVE_RUT and entry.get("action") in ("create", "update"):
            saves[entry.get("company")] = saves.get(entry.get("company"), 0) + 1
    lost = [str(j.pk) for j in jobs if j.status != "succeeded"]
    duplicated = sum(max(0, saves.get(j.company.rut, 0) - 1) for j in jobs)
    missing = sum(1 for j in jobs if j.status == "succeeded" and j.outcome in ("created", "updated")
                  and saves.get(j.company.rut, 0) == 0)
    outcomes: dict[str, int] = {}
    for j in jobs:
        outcomes[j.outcome or j.status] = outcomes.get(j.outcome or j.status, 0) + 1
    return {
        "jobs": len(jobs),
        "lost": len(lost),
        "lost_ids": lost[:10],
        "duplicated_saves": duplicated,
        "missing_saves": missing,
        "outcomes": outcomes,
        "resumed_after_kill": sum(1 for j in jobs if j.retry_count),
        "refused_logins": JobEvent.objects.filter(job_id__in=job_ids, step="login", status="failed").count(),
    }


def sessions_figures(job_ids: list[Any], state: dict[str, Any], *, killed_at: datetime | None) -> dict[str, Any]:
    per_rut = {rut: max_concurrent(spans) for rut, spans in session_intervals(job_ids, killed_at=killed_at).items()}
    sandbox_view = state.get("max_concurrent_sessions_by_rut")
    return {
        "max_sessions_by_rut": per_rut,
        "max_sessions_per_rut": max(per_rut.values(), default=0),
        "sandbox_max_concurrent_sessions_by_rut": sandbox_view,
        "measured_from": "sandbox state" if sandbox_view else "job events (login started → logout)",
    }


def fairness_line(figures: dict[str, Any]) -> str:
    return (f"FAIRNESS: live p95 wait {figures['alone']['live_wait_p95_s']:.2f} s alone, "
            f"{figures['bulk']['live_wait_p95_s']:.2f} s under bulk | max SII sessions per RUT "
            f"{figures['sessions']['max_sessions_per_rut']} (cap {figures['cap']}) | lost {figures['outcome']['lost']} | "
            f"duplicated {figures['outcome']['duplicated_saves']}")


# --- The scenario (shared with the test) ------------------------------------------------------------


@dataclass
class Scenario:
    """A run's firms, companies and certificates, and the jobs it made."""

    bulk_tenant: Any
    live_tenant: Any
    bulk_pairs: list[tuple[Any, Any]]
    live_pairs: list[tuple[Any, Any]]
    bulk_ids: list[Any] = field(default_factory=list)
    live_ids: list[Any] = field(default_factory=list)
    killed_at: datetime | None = None


def scenario_prepare(*, sb: Any, pki: Any, n_bulk: int, n_live: int, first_company: int, slug: str) -> Scenario:
    """Two sandbox firms, one company and one stored certificate per job, the companies in the sandbox
    with the certificates' holders as administrators."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding import services
    from onboarding.models import SiiEnvironment

    bundles = {name: sii_bot.open_pkcs12(Path(pki[name].path).read_bytes(), pki[name].password) for name in
               (*BULK_CERTIFICATES, *LIVE_CERTIFICATES)}
    tenants = []
    for suffix in ("bulk", "live"):
        tenant = services.tenant_create(name=f"Estudio {slug} {suffix}", slug=f"{slug}-{suffix}",
                                        sii_environment=SiiEnvironment.SANDBOX)
        services.representative_add(tenant=tenant, rut=REPRESENTATIVE_RUT, name=REPRESENTATIVE_NAME)
        tenants.append(tenant)
    def certificate_of(i: int) -> str:
        return BULK_CERTIFICATES[i % len(BULK_CERTIFICATES)] if i < n_bulk else LIVE_CERTIFICATES[i % len(LIVE_CERTIFICATES)]

    ruts = [company_rut(first_company + i) for i in range(n_bulk + n_live)]
    sb.add_companies([{"rut": rut, "name": f"EMPRESA {rut}", "admins": [pki[certificate_of(i)].holder_rut]}
                      for i, rut in enumerate(ruts)])
    pairs = []
    for i, rut in enumerate(ruts):
        tenant = tenants[0] if i < n_bulk else tenants[1]
        bundle = bundles[certificate_of(i)]
        company = services.client_company_create(tenant=tenant, rut=rut, legal_name=f"Empresa {rut}")
        pairs.append((company, services.certificate_store(company=company, bundle=bundle, uploaded_by=None)))
    return Scenario(bulk_tenant=tenants[0], live_tenant=tenants[1], bulk_pairs=pairs[:n_bulk], live_pairs=pairs[n_bulk:])


def _done(ids: list[Any]) -> int:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding.models import EnrollmentJob

    return EnrollmentJob.objects.filter(pk__in=ids, status__in=("succeeded", "failed")).count()


def _dispatch() -> None:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding import services

    services.enrollment_jobs_dispatch()  # what the scheduler runs periodically


def run_live_alone(sc: Scenario, *, gap_s: float, timeout: float) -> None:
    """Live authorizations one every `gap_s` seconds, nothing else running; wait for them to end."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding import services

    for company, certificate in sc.live_pairs:
        job = services.enrollment_job_create(company=company, certificate=certificate, created_by=None)
        sc.live_ids.append(job.pk)
        _sleep_dispatching(gap_s)
    _drain(sc.live_ids, timeout=timeout)


def run_under_bulk(
    sc: Scenario, *, gap_s: float, timeout: float, kill: Callable[[], None] | None, restart: Callable[[], None] | None,
    kill_fraction: float = 1 / 3, progress: Callable[[str], None] = lambda _: None, min_gap_s: float = 1.0,
) -> None:
    """The bulk firm's background jobs, then its live authorizations one every `gap_s` seconds (down to
    `min_gap_s` when the bulk would end first) once every slot is busy; `kill` (then `restart` 2 s later) when a third of the bulk jobs are done."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.utils import timezone

    from onboarding import services
    from onboarding.models import EnrollmentJob, JobLane

    for company, certificate in sc.bulk_pairs:
        sc.bulk_ids.append(services.enrollment_job_create(company=company, certificate=certificate, created_by=None,
                                                          lane=JobLane.BACKGROUND).pk)
    busy = min(len(sc.bulk_ids), 2 * SLOTS_PER_WORKER)
    deadline = time.monotonic() + 120
    while EnrollmentJob.objects.filter(pk__in=sc.bulk_ids, status="running").count() < busy:
        if time.monotonic() > deadline:
            raise RuntimeError("the bulk jobs never filled the slots")
        _sleep_dispatching(0.2)
    progress(f"bulk: {busy} slots busy; live jobs arrive every {min_gap_s:g}–{gap_s:g} s")
    live_todo = list(sc.live_pairs)
    bulk_started = next_live = time.monotonic()
    while live_todo or (kill is not None and sc.killed_at is None):
        if live_todo and time.monotonic() >= next_live:
            company, certificate = live_todo.pop(0)
            sc.live_ids.append(services.enrollment_job_create(company=company, certificate=certificate, created_by=None).pk)
            # Every live job should arrive while background jobs still fill the slots: closer together
            # when the bulk's pace says it will end before the last one would arrive.
            done = _done(sc.bulk_ids)
            left_s = (len(sc.bulk_ids) - done) * (time.monotonic() - bulk_started) / done if done else float("inf")
            next_live = time.monotonic() + max(min_gap_s, min(gap_s, left_s / (len(live_todo) + 1)))
        if kill is not None and sc.killed_at is None and (
            _done(sc.bulk_ids) >= len(sc.bulk_ids) * kill_fraction or not live_todo
        ):
            progress(f"kill -9 a worker ({_done(sc.bulk_ids)}/{len(sc.bulk_ids)} bulk jobs done)")
            kill()
            sc.killed_at = timezone.now()
            _sleep_dispatching(2.0)
            if restart is not None:
                restart()
                progress("worker restarted")
        _sleep_dispatching(0.2)
    _drain(sc.bulk_ids + sc.live_ids, timeout=timeout, progress=progress)


def _sleep_dispatching(seconds: float) -> None:
    end = time.monotonic() + seconds
    last = 0.0
    while (now := time.monotonic()) < end:
        if now - last >= 1.0:
            _dispatch()
            last = now
        time.sleep(min(0.1, max(0.0, end - now)))


def _drain(ids: list[Any], *, timeout: float, progress: Callable[[str], None] = lambda _: None) -> None:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding.models import EnrollmentJob

    deadline = time.monotonic() + timeout
    reported = -1
    while (done := _done(ids)) < len(ids):
        if time.monotonic() > deadline:
            left = list(EnrollmentJob.objects.filter(pk__in=ids).exclude(status__in=("succeeded", "failed"))
                        .values_list("status", "lane", "retry_count", "run_after", "enqueued_at")[:10])
            raise RuntimeError(f"{len(ids) - done} job(s) not finished after {timeout:.0f} s: {left}")
        if done // 25 != reported // 25:
            progress(f"{done}/{len(ids)} jobs done")
            reported = done
        _sleep_dispatching(0.5)


def leases_held_after_expiry(keys: Iterable[str]) -> dict[str, int]:
    """The places still held per key once every lease had one TTL (plus a second) to expire.

    Polled: nothing takes a place once every job has ended, so none held at any moment means none
    held a TTL later; the killed worker's places have usually expired long before the end."""
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.conf import settings

    from onboarding.services.jobs.leases import sii_leases_held

    deadline = time.monotonic() + settings.AUTORIZA_SII_LEASE_TTL_SECONDS + 1
    while True:
        held = {key: sii_leases_held(key) for key in keys}
        if not any(held.values()) or time.monotonic() >= deadline:
            return held
        time.sleep(0.2)


def lease_keys(sc: Scenario, sb_env: dict[str, str]) -> list[str]:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from onboarding.models import Certificate

    holders = set(Certificate.objects.filter(company__tenant__in=[sc.bulk_tenant, sc.live_tenant])
                  .values_list("holder_rut", flat=True))
    return [f"host:{urlsplit(sb_env['SII_ENROLL_URL']).hostname}", *(f"rut:{rut}" for rut in sorted(holders))]


# --- The benchmark section --------------------------------------------------------------------------


class _Worker:
    """A `celery worker` process of the run (one "machine": its own var folder when REDIS_URL is set)."""

    def __init__(self, name: str, queue: str, env: dict[str, str], var_dir: Path) -> None:
        self.name, self.queue, self.env, self.var_dir = name, queue, env, var_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> None:
        """Start the worker; with `wait`, return once it consumes its queues."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.var_dir / f"{self.name}-{self.starts}.log"
        self.starts += 1
        with log_path.open("wb") as logfile:
            self.process = subprocess.Popen(
                [PY, "-m", "celery", "-A", "portal", "worker", "-Q", self.queue, "-c", str(SLOTS_PER_WORKER),
                 "--loglevel=INFO", "-n", f"{self.name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=REPO, env={**self.env, "AUTORIZA_VAR_DIR": str(self.var_dir)}, stdout=logfile,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.log_path = log_path
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the worker logs "ready"; RuntimeError with its log if it exits or takes over 90 s."""
        assert self.process is not None and self.log_path is not None
        log_path = self.log_path
        deadline = time.monotonic() + 90
        while b" ready." not in log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, timeout=20, leader_only=True)


def run(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    var_dir = work / "fairness"
    var_dir.mkdir(parents=True, exist_ok=True)
    database = database_url("_fair", var_dir)
    database_create(database)
    try:
        os.environ.update(django_env(var_dir=var_dir, database=database, keys=master_key(), extra=POLICY))
        for folder in ("queue", "processed", "control"):
            (var_dir / "broker" / folder).mkdir(parents=True, exist_ok=True)
        # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        return _run(opts, var_dir, database)
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(database)


def _run(opts: argparse.Namespace, var_dir: Path, database: str) -> dict[str, Any]:
    # Loaded on use: Django and the app are set up at run time (django.setup()), after this module.
    from django.conf import settings

    from portal.celery import app

    n_bulk = opts.fairness_n or (40 if opts.quick else 300)
    queue = f"bench-fair-{uuid.uuid4().hex[:8]}"
    app.conf.task_routes = {"onboarding.tasks.enrollment_job_run": {"queue": queue}}
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)
    two_machines = bool(settings.REDIS_URL)
    figures: dict[str, Any] = {
        "database": database_kind(database), "broker": "Redis" if two_machines else "filesystem",
        "n_bulk": n_bulk, "n_live": LIVE_JOBS, "cap": PER_RUT_CAP, "lease_ttl_s": LEASE_TTL_SECONDS,
        "workers": 2, "slots_per_worker": SLOTS_PER_WORKER, "latency_ms": LATENCY_MS,
        "machines": "two (separate var folders, one database, one Redis)" if two_machines else "one (embedded default)",
    }
    with SandboxProcess(var_dir / "sandbox", latency_ms=LATENCY_MS) as sb:
        sb.control("POST", "/faults", {"max_sessions": PER_RUT_CAP + 2})
        pki = load_pki(sb.pki_dir)
        env = {**os.environ, **sb.env, "AUTORIZA_BROWSER_QUEUE": queue, "LOG_LEVEL": "INFO"}
        env.pop("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", None)
        workers = [_Worker(name, queue, env, var_dir / name if two_machines else var_dir)
                   for name in (f"{queue}-a", f"{queue}-b")]
        try:
            for worker in workers:
                worker.start()
            log("fairness: phase 1, live jobs alone")
            alone = scenario_prepare(sb=sb, pki=pki, n_bulk=0, n_live=LIVE_JOBS, first_company=40_000, slug="fair-alone")
            run_live_alone(alone, gap_s=2.0, timeout=300)
            figures["alone"] = live_figures(alone.live_ids, [])
            log(f"fairness: phase 2, {n_bulk} background jobs + {LIVE_JOBS} live, a worker killed mid-run")
            bulk = scenario_prepare(sb=sb, pki=pki, n_bulk=n_bulk, n_live=LIVE_JOBS, first_company=41_000, slug="fair-bulk")
            started = time.monotonic()
            run_under_bulk(bulk, gap_s=3.0, timeout=max(600.0, n_bulk * 3.0), kill=workers[0].kill,
                           restart=lambda: workers[0].start(wait=False), progress=lambda m: log(f"fairness: {m}"))
            figures["bulk_seconds"] = time.monotonic() - started
            workers[0].wait_ready()  # the restarted worker came up (the run did not wait for it)
            figures["bulk"] = live_figures(bulk.live_ids, bulk.bulk_ids)
            state = sb.state()
            all_ids = alone.live_ids + bulk.bulk_ids + bulk.live_ids
            figures["outcome"] = outcome_figures(all_ids, state)
            figures["sessions"] = sessions_figures(all_ids, state, killed_at=bulk.killed_at)
            figures["leases_held_after_ttl"] = leases_held_after_expiry(lease_keys(bulk, sb.env))
        finally:
            for worker in workers:
                worker.stop()
    log(fairness_line(figures))
    return figures
