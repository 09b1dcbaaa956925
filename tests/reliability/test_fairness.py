"""Fair scheduling and the cluster-wide SII limits with two workers as two machines, one killed.

Real pieces: two `celery worker` processes (2 slots each) with separate var folders (AUTORIZA_VAR_DIR),
sharing PostgreSQL and Redis as two machines would; Chromium; the SII sandbox with a little latency.
One firm starts N background jobs (FAIRNESS_BULK_JOBS, default 40; the benchmark runs the issue's
300: `python -m benchmarks --only fairness`), filling every slot; another firm's 20 live
authorizations arrive meanwhile; one worker is killed with SIGKILL (its process group, Chromium
included) a third of the way through and restarted, as a supervisor would.

Asserted:
- every live job that waited only for a slot (not for its SII leases, not resumed after the kill, not
  sent again because the killed worker took its message) started within one job duration (the longest background
  run) of its creation, and no background job took a slot while one of them waited;
- no certificate holder ever had more than AUTORIZA_SII_MAX_SESSIONS_PER_RUT SII sessions at once:
  measured from the bot's own login → logout events (inside each job's leases), and no login was
  refused by the sandbox, which allows cap + 2 (the two sessions a killed worker leaves open on the
  SII until its own timeout);
- 0 jobs lost (all SUCCEEDED), 0 duplicated SII saves (the sandbox's log per company);
- one lease TTL after the end, no SII place is still held (the killed worker's expired).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from benchmarks import fairness
from tests.reliability.support import figures_record

pytestmark = [
    pytest.mark.services, pytest.mark.faults, pytest.mark.sandbox, pytest.mark.browser, pytest.mark.timeout(420),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set: two machines share Redis"),
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                       reason="DATABASE_URL is not a PostgreSQL URL: two machines share PostgreSQL"),
]

BULK_JOBS = int(os.environ.get("FAIRNESS_BULK_JOBS", "40"))


@pytest.fixture
def policy(settings, fast_jobs):  # type: ignore[no-untyped-def]
    """This process (it creates the jobs and runs the dispatcher) shares the workers' policy."""
    for name, value in fairness.POLICY.items():
        if name.startswith("AUTORIZA_"):
            setattr(settings, name, type(getattr(settings, name))(value))
    return settings


def test_live_jobs_first_sii_caps_held_nothing_lost_with_two_machines_and_a_kill(  # type: ignore[no-untyped-def]
    start_worker, worker_env, routed_broker, sandbox, policy, tmp_path: Path
) -> None:
    sandbox.configure(latency_ms=fairness.LATENCY_MS)
    sandbox.set_faults(max_sessions=fairness.PER_RUT_CAP + 2)
    scenario = fairness.scenario_prepare(sb=sandbox, pki=sandbox.pki, n_bulk=BULK_JOBS, n_live=fairness.LIVE_JOBS,
                                         first_company=42_000, slug="fair")
    env = {**worker_env, **fairness.POLICY}
    machines = {name: tmp_path / f"machine-{name}" for name in ("a", "b")}
    workers = {name: start_worker(concurrency=fairness.SLOTS_PER_WORKER, env={**env, "AUTORIZA_VAR_DIR": str(path)},
                                  wait=False)
               for name, path in machines.items()}
    for each in workers.values():
        each.wait_ready()

    def kill() -> None:
        workers["a"].kill(signal.SIGKILL)
        workers["a"].process.wait(timeout=10)

    def restart() -> None:
        # Not waiting for it: the run goes on dispatching (as the scheduler would) while it starts.
        workers["a"] = start_worker(concurrency=fairness.SLOTS_PER_WORKER, env={**env, "AUTORIZA_VAR_DIR": str(machines["a"])},
                                    wait=False)

    fairness.run_under_bulk(scenario, gap_s=3.0, timeout=240, kill=kill, restart=restart)
    workers["a"].wait_ready()

    state = sandbox.state()
    job_ids = scenario.bulk_ids + scenario.live_ids
    outcome = fairness.outcome_figures(job_ids, state)
    live = fairness.live_figures(scenario.live_ids, scenario.bulk_ids)
    sessions = fairness.sessions_figures(job_ids, state, killed_at=scenario.killed_at)
    held = fairness.leases_held_after_expiry(fairness.lease_keys(scenario, sandbox.env))
    figures_record("fairness_two_machines", {
        "bulk_jobs": BULK_JOBS, "live_jobs": fairness.LIVE_JOBS, **outcome, **sessions, "leases_held_after_ttl": held,
        **{k: v for k, v in live.items() if k != "overtaken_by_background"},
        "overtaken_by_background": live["overtaken_by_background"],
    })

    assert scenario.killed_at is not None
    assert outcome["lost"] == 0, outcome
    assert outcome["duplicated_saves"] == 0, outcome
    assert outcome["missing_saves"] == 0, outcome
    assert outcome["refused_logins"] == 0, outcome
    assert sessions["max_sessions_per_rut"] == fairness.PER_RUT_CAP, sessions  # reached, never exceeded
    assert held == dict.fromkeys(held, 0)
    assert live["live"] == fairness.LIVE_JOBS
    assert live["live_slot_only"] >= fairness.LIVE_JOBS // 2, live  # most waited for a slot only
    assert live["live_slot_only_wait_max_s"] <= live["bulk_run_max_s"], live
    assert live["overtaken_by_background"] == [], live
