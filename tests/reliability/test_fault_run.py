"""100 enrollments through the real services, two real workers, Chromium and the SII sandbox, with
every sandbox fault injected at a realistic rate. Every job must end in the right state, the retry
budget and the SII's session limits must hold, and nothing may be authorized twice.

How faults are injected (seeded, so a failure can be replayed):
- per company, deterministic: `company_not_authorized`, `holder_not_admin` (both final, expected
  FAILED with their code), `user_exists` (the race: the SII inserts the user and answers "already
  exists": expected SUCCEEDED), plus companies where the representative already is a user with all
  permissions (expected "already_authorized") or with fewer (expected "updated");
- all along: `http500_rate` (1 % of enrolment pages answer HTTP 500), `max_sessions` = 2 (the SII's
  limit of open sessions per holder: two workers that always log out never reach it) and
  `throttle_logins` (more than 40 logins of a holder within 10 s get throttled: we stay below);
- in bursts, one at a time with quiet gaps (a "chaos" thread): `waf` (both styles), `generic_error`,
  `login_throttled`, `too_many_sessions`, `session_expiry_pages`, `alt_layout`, `login_alert` (with
  SII's "certificate could not be validated" text, and with a text the bot does not know). A login
  alert is final by design (the bot stops on what it does not understand, or the SII refused the
  certificate): the jobs that met one must end FAILED with that code, and only those.
Not injected: `no_certificate` (a property of a certificate without RUT, refused at upload; see
tests/security) — a random one would be a different client, not a fault.

Retry delays run at AUTORIZA_JOB_RETRY_DELAY_SCALE = 0.002 (SII's one hour after throttling → 7.2 s);
the dispatcher (the scheduler's job) runs in this process every half second.
"""
from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from datetime import UTC, timedelta
from typing import Any

import pytest

from onboarding.models import EnrollmentJob, JobEvent, JobStatus
from sii_bot import errors
from tests.reliability.support import (
    MAX_RETRIES,
    REPRESENTATIVE_RUT,
    RETRY_SCALE,
    company_ruts,
    figures_record,
    firm_create,
    jobs_create,
    jobs_drain,
    saves_of,
)

pytestmark = [pytest.mark.faults, pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(900)]

JOBS = int(os.environ.get("AUTORIZA_FAULT_RUN_JOBS", "100"))
SEED = 20261124
PER_COMPANY = 5  # companies of each deterministic kind
CONSTANT_FAULTS = {"http500_rate": 0.01, "seed": SEED, "max_sessions": 2, "throttle_logins": 40, "throttle_window_s": 10}
# (name, faults switched on, the failure code it causes or None, seconds on: at least, at most). A
# burst with a code stays on until a job has met it (so every fault is proven, not just switched on),
# then off again with None; a quiet gap follows each burst.
BURSTS: list[tuple[str, dict[str, Any], str | None, float, float]] = [
    ("waf", {"waf": True}, "waf_rejected", 1.0, 10.0),
    ("generic_error", {"generic_error": True}, "sii_unavailable", 1.0, 10.0),
    ("login_throttled", {"login_throttled": True}, "login_throttled", 1.0, 10.0),
    ("alt_layout", {"alt_layout": True}, None, 4.0, 4.0),
    ("too_many_sessions", {"too_many_sessions": True}, "too_many_sessions", 1.0, 10.0),
    ("session_expiry", {"session_expiry_pages": 2}, "session_expired", 1.0, 10.0),
    ("login_alert", {"login_alert": True}, "certificate_rejected", 0.5, 10.0),
    ("login_alert_unknown", {"login_alert": "Estimado contribuyente: recuerde actualizar sus datos."},
     "unexpected_page", 0.5, 10.0),
    ("waf_f5", {"waf": ["eu_valida_empresa", "eu_graba_usuario"], "waf_style": "f5"}, "waf_rejected", 1.0, 10.0),
]
QUIET_SECONDS = 7.0  # faults on about 20 % of the time; a full cycle of bursts takes about 90 s
BURST_CODES = {name: code for name, _, code, _, _ in BURSTS if code}
RETRY_CLASSES = [cls for cls in errors.FAILURE_CODES.values() if cls.retryable]
FINAL_CODES = {"company_not_authorized": "company_not_authorized", "holder_not_admin": "holder_not_administrator"}
# Bursts whose failure is final, and its code.
BURST_FINAL_CODES = {name: BURST_CODES[name] for name in ("login_alert", "login_alert_unknown")}


class Chaos(threading.Thread):
    """Switches one burst of faults on at a time, until a job met it (or its time is up), with quiet
    gaps; records when, and whether it was met."""

    def __init__(self, sandbox: Any, tenant: Any) -> None:
        super().__init__(daemon=True)
        self.sandbox = sandbox
        self.tenant = tenant
        self.windows: list[tuple[str, float, float]] = []  # (burst, start, end) in time.time()
        self.met: Counter[str] = Counter()
        self.halt = threading.Event()

    def _met(self, code: str, since: float) -> bool:
        from datetime import datetime

        after = datetime.fromtimestamp(since, tz=UTC)
        cls = errors.FAILURE_CODES[code]
        return (JobEvent.objects.filter(job__tenant=self.tenant, step="retry", created_at__gte=after,
                                        message__startswith=cls.user_message).exists()
                or EnrollmentJob.objects.filter(tenant=self.tenant, finished_at__gte=after, failure_code=code).exists())

    def run(self) -> None:
        from django.db import connection

        index = 0
        try:
            while not self.halt.wait(QUIET_SECONDS):
                name, faults, code, at_least, at_most = BURSTS[index % len(BURSTS)]
                start = time.time()
                self.sandbox.set_faults(faults)
                met = False
                while not self.halt.wait(0.25):
                    elapsed = time.time() - start
                    met = met or (code is not None and self._met(code, start))
                    if elapsed >= at_most or (elapsed >= at_least and (met or code is None)):
                        break
                self.sandbox.set_faults({key: None for key in faults})
                self.windows.append((name, start, time.time()))
                self.met[name] += bool(met or code is None)
                index += 1
        finally:
            connection.close()


def classify(event: JobEvent) -> str:
    """The failure code behind a "retry" event (its message starts with that failure's user message)."""
    if "se interrumpió" in event.message:
        return "worker_lost"
    for cls in RETRY_CLASSES:
        if event.message.startswith(cls.user_message):
            return cls.code
    return "unknown"


def test_100_enrollments_under_every_sii_fault(  # type: ignore[no-untyped-def]
    start_worker, worker_env, sandbox, demo_bundle, fast_jobs
) -> None:
    rng = random.Random(SEED)
    holder = sandbox.pki["demo"].holder_rut
    ruts = company_ruts(JOBS, 79400001)
    shuffled = rng.sample(ruts, len(ruts))
    kinds: dict[str, str] = {rut: "plain" for rut in ruts}
    for index, kind in enumerate(("company_not_authorized", "holder_not_admin", "user_exists", "already_user", "partial_user")):
        for rut in shuffled[index * PER_COMPANY:(index + 1) * PER_COMPANY]:
            kinds[rut] = kind
    full = {"rut": REPRESENTATIVE_RUT, "admin": True, "sign": True, "registry": True}
    partial = {"rut": REPRESENTATIVE_RUT, "admin": False, "sign": True, "registry": False}
    sandbox.add_companies([
        {"rut": rut, "name": f"EMPRESA {rut}", "admins": [holder],
         "users": [full] if kinds[rut] == "already_user" else [partial] if kinds[rut] == "partial_user" else []}
        for rut in ruts
    ])
    sandbox.set_faults({
        **CONSTANT_FAULTS,
        **{kind: [r for r in ruts if kinds[r] == kind] for kind in ("company_not_authorized", "holder_not_admin", "user_exists")},
    })

    workers = [start_worker(env=worker_env, wait=False), start_worker(env=worker_env, wait=False)]
    for each in workers:
        each.wait_ready()
    tenant = firm_create("fault-run")
    chaos = Chaos(sandbox, tenant)
    started = time.time()
    jobs = jobs_create(tenant, ruts, demo_bundle)
    chaos.start()
    try:
        elapsed = jobs_drain([j.pk for j in jobs], timeout=720, dispatch=True, workers=workers)
    finally:
        chaos.halt.set()
        chaos.join(timeout=10)
    sandbox.clear_faults()
    state = sandbox.state()
    # Every kind of burst was switched on and met by at least one job (not merely switched on).
    assert set(chaos.met) == {name for name, *_ in BURSTS} and all(chaos.met.values()), chaos.met

    def in_burst(code: str, at: float, table: dict[str, str] = BURST_CODES) -> bool:
        """Whether a failure with `code` at `at` falls in (or just after) a burst that causes it."""
        return any(table.get(name) == code and start - 1 <= at <= end + 15 for name, start, end in chaos.windows)

    # --- Every job finished, in the right state, within its retry budget ----------------------------
    done = {j.company.rut: j for j in EnrollmentJob.objects.filter(tenant=tenant).select_related("company")}
    assert len(done) == JOBS
    assert not EnrollmentJob.objects.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).exists()
    wrong: list[str] = []
    burst_finals: Counter[str] = Counter()
    for rut, job in done.items():
        kind = kinds[rut]
        assert job.retry_count <= MAX_RETRIES, (rut, job.retry_count)
        if (job.status == JobStatus.FAILED and not job.failure_retryable
                and in_burst(job.failure_code, job.finished_at.timestamp(), BURST_FINAL_CODES)):
            burst_finals[job.failure_code] += 1  # met a login alert: final by design, the right code
            continue
        if job.status == JobStatus.FAILED and job.failure_retryable:
            # A transient failure only ends a job once the whole budget was used on it.
            if job.retry_count != MAX_RETRIES or errors.failure_from_code(job.failure_code) is errors.EnrollmentFailure:
                wrong.append(f"{rut} {kind}: gave up on {job.failure_code} after {job.retry_count} retries")
            continue
        if kind in FINAL_CODES:
            if (job.status, job.failure_code) != (JobStatus.FAILED, FINAL_CODES[kind]) or job.failure_retryable:
                wrong.append(f"{rut} {kind}: {job.status} {job.failure_code}")
            continue
        expected = {"already_user": {"already_authorized"}, "partial_user": {"updated"},
                    "user_exists": {"already_authorized", "created"}, "plain": {"created"}}[kind]
        if job.status != JobStatus.SUCCEEDED or job.outcome not in expected:
            wrong.append(f"{rut} {kind}: {job.status} {job.outcome or job.failure_code} {job.failure_detail[:200]}")
    assert not wrong, "\n".join(wrong)

    # --- The SII side: what succeeded is there with the requested permissions, once ------------------
    for rut, job in done.items():
        saves = saves_of(state, rut)
        users = [u for u in sandbox.users(rut) if u["rut"] == REPRESENTATIVE_RUT]
        assert len(saves) <= 1, (rut, kinds[rut], saves)  # never saved twice, whatever was retried
        if job.status == JobStatus.SUCCEEDED:
            assert len(users) == 1 and users[0]["admin"] and users[0]["sign"] and users[0]["registry"], (rut, users)
            assert len(saves) == {"plain": 1, "partial_user": 1, "already_user": 0}.get(kinds[rut], len(saves))
        elif kinds[rut] in FINAL_CODES and job.failure_code == FINAL_CODES[kinds[rut]]:
            assert users == [] and saves == [], (rut, kinds[rut])
        elif job.failure_code in BURST_FINAL_CODES.values():
            assert saves == [], (rut, kinds[rut], job.failure_code)

    # --- Retries: each waited at least what its failure demands (scaled), and the causes add up -----
    retry_events = list(JobEvent.objects.filter(job__tenant=tenant, step="retry").order_by("created_at"))
    causes = Counter(classify(e) for e in retry_events)
    assert causes.get("unknown", 0) == 0, [e.message for e in retry_events if classify(e) == "unknown"]
    minimum = {cls.code: (cls.retry_after_seconds or 0) * RETRY_SCALE for cls in RETRY_CLASSES}
    backoffs: dict[str, float] = {}
    for event in retry_events:
        following = (JobEvent.objects.filter(job_id=event.job_id, created_at__gt=event.created_at)
                     .exclude(step__in=("retry", "queued")).order_by("created_at").first())
        assert following is not None, f"job {event.job_id} was never attempted again after a retry"
        waited = (following.created_at - event.created_at).total_seconds()
        code = classify(event)
        assert waited >= minimum[code] - 0.25, f"{code}: retried after {waited:.2f} s < {minimum[code]:.2f} s"
        backoffs[code] = min(backoffs.get(code, waited), waited)

    # --- SII sessions: never over the limit because of us, every session we opened closed -----------
    finals = Counter(j.failure_code for j in done.values() if j.status == JobStatus.FAILED)
    for code in ("too_many_sessions", "login_throttled"):
        stray = [e for e in retry_events if classify(e) == code and not in_burst(code, e.created_at.timestamp())]
        stray += [j for j in done.values() if j.failure_code == code and not in_burst(code, j.finished_at.timestamp())]
        assert not stray, f"{code} outside its bursts: caused by us ({len(stray)})"
    sessions = state["sessions"][holder]
    # Sessions the SII ended: those that ended an attempt, and those the bot logged in again after,
    # within the same attempt (sii_bot resumes from the company step once per attempt).
    relogins = JobEvent.objects.filter(job__tenant=tenant, step="login", status="started",
                                       message__startswith="Volviendo a identificarse").count()
    expired = causes.get("session_expired", 0) + finals.get("session_expired", 0) + relogins
    assert sessions["active"] == 0, sessions
    assert sessions["logins"] == sessions["logouts"] + expired, (sessions, expired)

    attempts = sum(j.retry_count + 1 for j in done.values())
    outcomes = Counter(j.outcome if j.status == JobStatus.SUCCEEDED else f"failed:{j.failure_code}" for j in done.values())
    figures_record("fault_run", {
        "jobs": JOBS, "workers": len(workers), "attempts": attempts, "seconds": round(elapsed, 1),
        "wall_seconds": round(time.time() - started, 1), "outcomes": dict(outcomes),
        "retries_by_cause": dict(causes), "max_retry_count": max(j.retry_count for j in done.values()),
        "retry_budget": MAX_RETRIES, "retry_delay_scale": RETRY_SCALE,
        "shortest_wait_by_cause_seconds": {k: round(v, 2) for k, v in backoffs.items()},
        "required_wait_by_cause_seconds": {k: round(minimum[k], 2) for k in backoffs},
        "per_company_faults": {kind: PER_COMPANY for kind in ("company_not_authorized", "holder_not_admin", "user_exists",
                                                              "already_user", "partial_user")},
        "constant_faults": CONSTANT_FAULTS,
        "bursts_injected": dict(Counter(name for name, _, _ in chaos.windows)), "bursts_met_by_a_job": dict(chaos.met),
        "burst_seconds_total": round(sum(end - start for _, start, end in chaos.windows), 1),
        "sii_sessions": {"logins": sessions["logins"], "logouts": sessions["logouts"], "killed_by_sii": expired,
                         "left_open": sessions["active"]},
        "sii_saves": sum(len(saves_of(state, rut)) for rut in ruts),
        "wrong_state": len(wrong), "final_failures_from_login_alert_bursts": dict(burst_finals),
        "first_job_created": started, "dispatcher_interval_seconds": 0.5,
        "retry_delay_after_throttling_seconds": str(timedelta(seconds=3600 * RETRY_SCALE)),
    })
