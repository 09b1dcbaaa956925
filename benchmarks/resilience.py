"""Resilience of one attempt: the bot against a sandbox where 20 % of the enrolment pages answer HTTP
500 and the session expires once mid-flow.

Each run is one `BrowserEngine.enroll` call (one attempt, no job-level retry) of a person not yet
in the demo company, from a freshly reset sandbox with `http500_rate` 0.2 (every enrolment CGI,
"Grabar Usuario" included; a new seed per run) and `expire_sessions()` called once when a random
step between the company and the confirmation starts (the callback runs in this thread, so the
expiry lands on one of the next pages). Counted per run: completed or not, the saves the sandbox
logged (must be exactly one for a completed run, none otherwise), new logins, page retries.
Runs share one browser (as a worker does). The backoff between page retries is shortened
(`--resilience-backoff`, default 0.1,0.2,0.4 s): it changes the time, not what is retried.
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import sii_bot
from benchmarks.common import log, median, percentile
from sii_bot import BrowserEngine, EnrollmentFailure, EnrollmentRequest, Permission, SiiSettings, Step
from sii_sandbox import ensure_pki
from sii_sandbox.server import Sandbox

DEMO_COMPANY = "76086428-5"  # COMERCIAL DEMO SPA (the demo holder administers it)
USER_RUT = "11111111-1"  # JUAN PEREZ GONZALEZ, not a user of it in the seeded state
TARGET_COMPLETED = 0.95
HTTP500_RATE = 0.2


def run(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    runs: int = opts.resilience_runs
    backoff = tuple(float(x) for x in str(opts.resilience_backoff).split(",") if x.strip())
    rng = random.Random(20240917)
    expire_steps = [Step.COMPANY, Step.USER_LIST, Step.NEW_USER, Step.FILL_FORM, Step.CONFIRM]
    pki_dir = work / "pki-resilience"
    ensure_pki(pki_dir)
    figures: dict[str, Any] = {"runs": runs, "http500_rate": HTTP500_RATE, "backoff_seconds": list(backoff),
                               "completed": 0, "saves_per_completed_run": {}, "saves_in_failed_runs": 0,
                               "failures": {}, "relogins": 0, "runs_with_relogin": 0, "page_retries": 0,
                               "save_resumes": 0, "failure_details": [], "durations": []}
    with Sandbox(pki_dir=pki_dir, state_path=None) as sb, BrowserEngine(name="bench-resilience") as engine:
        entry = sb.pki["demo"]
        material = sii_bot.open_pkcs12(Path(entry.path).read_bytes(), entry.password or "").material
        settings = SiiSettings.from_env(sb.env).replace(screenshots=False, transient_backoff_seconds=backoff)
        request = EnrollmentRequest(DEMO_COMPANY, USER_RUT, Permission.parse_list("sign,registry"))
        for index in range(runs):
            sb.reset()
            sb.set_faults(http500_rate=HTTP500_RATE, seed=index)
            at = rng.choice(expire_steps)
            events: list[Any] = []
            fired: list[bool] = []

            def progress(event: Any, at: Step = at, events: list[Any] = events, fired: list[bool] = fired) -> None:
                events.append(event)
                if event.step is at and event.status == "started" and not fired:
                    fired.append(True)
                    sb.expire_sessions()

            started = time.perf_counter()
            try:
                result = engine.enroll(request, material, settings, on_progress=progress)
                ok = result.outcome == "created"
                code = None if ok else f"outcome {result.outcome}"
            except EnrollmentFailure as failure:
                ok, code = False, failure.code
                figures["failure_details"].append({"run": index, "code": failure.code, "step": failure.step,
                                                   "detail": failure.detail[:300], "expired_at": at.value})
            elapsed = time.perf_counter() - started
            saves = sum(1 for e in sb.state()["log"] if e["action"] == "create")
            logins = sum(1 for e in events if e.step is Step.LOGIN and e.status == "done")
            figures["durations"].append(elapsed)
            figures["relogins"] += max(logins - 1, 0)
            figures["runs_with_relogin"] += logins > 1
            figures["page_retries"] += sum(1 for e in events if e.message.startswith("Reintentando: el SII respondió "
                                                                                   "con un error ("))
            figures["save_resumes"] += sum(1 for e in events if e.message.startswith("Reintentando: el SII respondió "
                                                                                   "con un error al grabar"))
            if ok:
                figures["completed"] += 1
                key = str(saves)
                figures["saves_per_completed_run"][key] = figures["saves_per_completed_run"].get(key, 0) + 1
            else:
                figures["saves_in_failed_runs"] += saves
                figures["failures"][code or "?"] = figures["failures"].get(code or "?", 0) + 1
            if (index + 1) % 10 == 0:
                log(f"resilience: {index + 1}/{runs} runs, {figures['completed']} completed")
    durations = figures.pop("durations")
    figures["run_p50_s"] = median(durations)
    figures["run_p95_s"] = percentile(durations, 95)
    figures["completed_share"] = figures["completed"] / runs if runs else 0.0
    figures["met"] = (figures["completed_share"] >= TARGET_COMPLETED
                      and set(figures["saves_per_completed_run"]) <= {"1"} and figures["saves_in_failed_runs"] == 0)
    print(f"RESILIENCE: {figures['completed']}/{runs} single attempts completed with {HTTP500_RATE:.0%} HTTP 500s "
          f"and one session expiry (target >= {TARGET_COMPLETED:.0%}); saves per completed run "
          f"{figures['saves_per_completed_run']}, saves in failed runs {figures['saves_in_failed_runs']}; "
          f"{figures['page_retries']} page retries, {figures['save_resumes']} save resumes, "
          f"{figures['relogins']} new logins; failures {figures['failures'] or 'none'}; "
          f"run p50 {figures['run_p50_s']:.2f} s, p95 {figures['run_p95_s']:.2f} s; "
          f"met: {'yes' if figures['met'] else 'NO'}", flush=True)
    return figures
