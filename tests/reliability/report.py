"""Render docs/reliability.md from the reliability and security suites' own output.

    python -m tests.reliability.report [--figures var/reliability] [--out docs/reliability.md]

The tests write JSON to var/reliability/ (or $AUTORIZA_RELIABILITY_DIR): `suite.<backend>.json` (the
outcome and duration of every test, merged across runs) and one `<figure>.<backend>.json` per test
that measures something. Backends: "sqlite+filesystem" (no services) and "postgresql+redis" (CI's
REDIS_URL + DATABASE_URL). Nothing here is typed by hand but the statements of the guarantees.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("sqlite+filesystem", "postgresql+redis")

# (title, statement, test node id prefixes, figure names)
GUARANTEES: list[tuple[str, str, list[str], list[str]]] = [
    (
        "A worker killed in the middle of a job: the job ends once, the SII shows one authorization",
        "kill -9 of the whole worker (before \"Grabar Usuario\", and right after the SII saved the user but "
        "before our database knew), and of only its pool process. The restarted worker re-queues the job "
        "its dead predecessor left RUNNING (process identity recorded at claim); a redelivered message takes "
        "over a job whose claiming process is provably dead. The bot reads the user list first, so the "
        "resumed job finds the user saved and reports that save (\"created\") instead of saving twice. No job is left "
        "RUNNING.",
        ["tests/reliability/test_worker_kill.py"],
        ["worker_kill_before_save", "worker_kill_after_save", "worker_kill_pool_process"],
    ),
    (
        "A job whose worker vanished for good is failed by the periodic reaper, in bounded time, and is re-runnable",
        "The real scheduler (`celery worker -B`, as docker-compose runs it) reaps a RUNNING job with a stale "
        "heartbeat as `worker_lost` (FAILED, retryable, certificate kept, nothing saved in the SII); an "
        "admin's re-run queues a new linked attempt. A live job is never reaped: one that runs for more than "
        "twice the threshold, reporting at every step, ends SUCCEEDED under the same scheduler. The threshold "
        "must exceed the longest a live job can go silent in the configured pool (threads, the default: "
        "SII_JOB_TIMEOUT + the engine's 30 s grace + 15 s to record the outcome; prefork: the smaller of that "
        "and the hard time limit); its default is derived from that bound, and production refuses to start "
        "with a threshold at or below it.",
        ["tests/reliability/test_reaper.py"],
        ["reaper"],
    ),
    (
        "A job's outcome is recorded once, on the job and the company together, even when it arrives late",
        "Every outcome (success, retry, final failure) is one compare-and-set on the worker's claim (RUNNING, "
        "this worker, this start), with the company's stage and SII state, the certificate erasure and the "
        "audit entry in the same transaction. A success reported after the reaper failed the job as lost (or "
        "after another process took it over) is still the SII's truth: the job becomes SUCCEEDED with a "
        "\"late_result\" event and an audit entry marked late (with the state it replaced), the company is "
        "written as for any success, and a re-run still queued for the job is closed without running "
        "(SUCCEEDED, \"superseded\", carrying the same confirmation): the SII sees one save. A late failure "
        "never overwrites a newer state (it is noted and audited only), and a worker that lost its claim "
        "cannot schedule a retry under the new owner.",
        ["tests/reliability/test_late_results.py"],
        [],
    ),
    (
        "A certificate is kept after a failure only while a re-run is possible; its owner can delete it now",
        "After a failure other than a certificate the SII refused, the sealed key is kept until "
        "AUTORIZA_CERT_RETENTION_DAYS after its upload (erased by the hourly purge), only so the firm can "
        "re-run without asking for it again, and it is erased at once when no re-run is possible: the "
        "relationship ended (at once, or by a succeeded revocation: every stored certificate of the company) "
        "or the company was removed (through the service, also from the platform admin; refused while a job "
        "is in flight). The failed job's page tells the owner what is kept, until when, and offers "
        "\"Eliminar mi certificado ahora\" (a confirmation page; the deletion is audited and noted on the "
        "job); every other user gets 404 there.",
        ["tests/reliability/test_certificate_erasure.py"],
        [],
    ),
    (
        "The broker may lose messages; the database does not",
        "Redis crashed without persistence (`shutdown nosave`) with jobs queued and running: the lost messages "
        "are sent again by the dispatcher (every QUEUED job whose message is older than "
        "AUTORIZA_JOB_LOST_AFTER_SECONDS); each job ends once. Redis killed -9 with production's persistence "
        "(docker-compose.yml: `--appendonly yes --appendfsync everysec`) keeps every queued message.",
        ["tests/reliability/test_broker_faults.py"],
        ["redis_crash_nosave", "redis_kill_aof"],
    ),
    (
        "100 enrollments under every SII fault: right end state, retry budget, session limits, once",
        "Two real workers, Chromium and the sandbox; per-company faults (company not authorized, holder not "
        "admin, user-exists race, already a user, fewer permissions), constant faults (HTTP 500s, a limit of "
        "two sessions per holder, login throttling past 40 logins/10 s) and bursts of every other fault, each "
        "kept on until a job met it. Every job ends SUCCEEDED or FAILED with the right code, retry_count <= "
        "AUTORIZA_JOB_MAX_RETRIES, every retry waits at least what its failure demands (one hour after "
        "throttling, scaled), logins == logouts + sessions the SII killed, no \"too many sessions\" or "
        "throttling outside their bursts, at most one save per company.",
        ["tests/reliability/test_fault_run.py"],
        ["fault_run"],
    ),
    (
        "Hostile uploads and hostile text are refused with their own message, store nothing, render escaped",
        "Through the real HTTP endpoints: the sandbox PKI's bad certificates, bombs (zip, gzip, ASN.1 depth, "
        "2 GB declared length), truncated/tampered/armoured files, oversized requests (400, never 500), "
        "hostile file names; invalid RUTs in every shape (homoglyph and non-ASCII digits, zero-width, RTL "
        "override, NUL), over-long fields, header injection. Row counts of every table unchanged. Markup, "
        "template syntax and CSV formulas in names are shown escaped / defused on the client's and the firm's pages.",
        ["tests/security/test_hostile_input.py"],
        ["hostile_input"],
    ),
    (
        "Fuzzing: RUTs, the certificate parser, the SII page parser",
        "Hypothesis, bounded examples: every RUT layer agrees (an independent Módulo 11, the form, the model, "
        "the sandbox, the display format); the parser only ever refuses with CertificateError, quickly, under "
        "structure-aware DER mutations; generated user lists are read back exactly, found RUTs are valid.",
        ["tests/security/test_fuzz_rut.py", "tests/security/test_fuzz_certificates.py", "tests/security/test_fuzz_pages.py"],
        [],
    ),
    (
        "Nobody reaches another tenant's data; every POST needs its CSRF token; every page has a strict CSP",
        "Every URL pattern of the project (walked from get_resolver(), the admin included) filled with tenant "
        "A's real ids: 404 for the other tenant's owner, admin, staff and client, the login page for "
        "anonymous visitors, the platform admin's login for everyone; a URL that names no object must be "
        "listed with its reason. A POST without token is 403 on every URL; every page's CSP has no "
        "'unsafe-inline'/'unsafe-eval', no foreign source, and forbids framing.",
        ["tests/security/test_url_probes.py"],
        ["url_probes"],
    ),
    (
        "Production hardening, observed",
        "A real login under production settings: session cookie Secure + HttpOnly + SameSite=Lax, CSRF cookie "
        "Secure, http redirected to https, HSTS with preload, nosniff, DENY framing. Password reset does not "
        "reveal accounts. `check --deploy --fail-level WARNING` is clean "
        "(tests/portal/test_settings.py::test_production_settings_pass_check_deploy_with_no_warnings); login "
        "brute force is throttled (tests/onboarding/test_login_throttle.py).",
        ["tests/security/test_hardening.py"],
        [],
    ),
    (
        "After a full run, the certificate's password and private key are nowhere",
        "Clients through the web, real workers with screenshots and DEBUG logs, every way a job ends: a "
        "success, a failure, automatic retries exhausted (HTTP 500s), a time budget run out twice, a worker "
        "killed -9 mid-job and the job resumed by a new worker, a revocation (the certificate uploaded again) "
        "and a company removed with its kept key; then the password and key (PEM, PEM body, DER "
        "PKCS#8/PKCS#1, base64, hex) and the .pfx (raw, base64) are searched in every column of every table "
        "(and SQLite's file, -wal, -shm), Redis, the logs, the emails, every stored screenshot and page "
        "(decrypted), and every file created or changed in the temp and var directories (broker messages, a "
        "killed worker's leftovers). A planted leak is caught by the same pipeline; the database does hold "
        "the key, sealed.",
        ["tests/security/test_secrets_scan.py"],
        ["secrets_scan"],
    ),
]


def load(folder: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    suites: dict[str, dict[str, Any]] = {}
    figures: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        payload = json.loads(path.read_text())
        if path.name.startswith("suite."):
            suites[payload["backend"]] = payload["tests"]
        else:
            figures[f"{payload['name']}.{payload['backend']}"] = payload
    return suites, figures


def status_of(tests: dict[str, Any], prefixes: list[str]) -> str:
    chosen = {k: v for k, v in tests.items() if k.startswith(tuple(prefixes))}
    if not chosen:
        return "not run"
    counts = Counter(v["outcome"] for v in chosen.values())
    seconds = sum(v["seconds"] for v in chosen.values())
    last = max(v.get("finished_at", "") for v in chosen.values())[:16].replace("T", " ")
    parts = [f"{n} {outcome}" for outcome, n in sorted(counts.items())]
    return f"{', '.join(parts)} ({seconds:.0f} s, {last})"


def fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def render(folder: Path) -> str:
    suites, figures = load(folder)
    out: list[str] = [
        "# Reliability and security: what Autoriza guarantees, and the tests that prove it",
        "",
        "Generated by `python -m tests.reliability.report` from the JSON the suites write to `var/reliability/`"
        " — do not edit by hand; run the suites, then the report. Run them with",
        "`make test PYTEST_ARGS=\"tests/reliability tests/security\"` (no services: SQLite and the filesystem broker) and",
        "`bash .ci/run` or `REDIS_URL=redis://127.0.0.1:6379/1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test`"
        " (PostgreSQL and Redis). The slow fault-injection tests carry the `faults` marker; they run by default"
        " (deselect with `-m 'not faults'`).",
        "",
        "## Last runs",
        "",
        "| backend | tests | outcomes | seconds (sum of tests) | last test finished |",
        "|---|---|---|---|---|",
    ]
    for backend in BACKENDS:
        tests = suites.get(backend, {})
        if not tests:
            out.append(f"| {backend} | – | not run | – | – |")
            continue
        counts = Counter(v["outcome"] for v in tests.values())
        seconds = sum(v["seconds"] for v in tests.values())
        last = max(v.get("finished_at", "") for v in tests.values())[:16].replace("T", " ")
        out.append(f"| {backend} | {len(tests)} | {', '.join(f'{n} {o}' for o, n in sorted(counts.items()))} | {seconds:.0f} | {last} |")
    failed = [(b, k) for b, tests in suites.items() for k, v in tests.items() if v["outcome"] in ("failed", "error", "xpassed")]
    out += ["", f"Failures in the last runs: {len(failed)}." + ("" if not failed else " " + "; ".join(f"{k} ({b})" for b, k in failed)), ""]

    out += ["## Guarantees", ""]
    for number, (title, statement, prefixes, figure_names) in enumerate(GUARANTEES, 1):
        out += [f"### {number}. {title}", "", statement, "", "Tests: " + ", ".join(f"`{p}`" for p in prefixes), ""]
        for backend in BACKENDS:
            out.append(f"- {backend}: {status_of(suites.get(backend, {}), prefixes)}")
        for name in figure_names:
            for backend in BACKENDS:
                payload = figures.get(f"{name}.{backend}")
                if payload:
                    out.append(f"- figures `{name}` ({backend}, {payload['recorded_at'][:16].replace('T', ' ')}): "
                               + fmt(_headline(name, payload["data"])))
        out.append("")

    xfails = {k: v["reason"] for tests in suites.values() for k, v in tests.items() if v["outcome"] == "xfailed"}
    out += ["## Open findings (strict xfail tests: they fail the suite the day the code is fixed, to be unmarked)", ""]
    if not xfails:
        out.append("None.")
    for nodeid, reason in sorted(xfails.items()):
        out.append(f"- `{nodeid}`: {reason}")
    skipped = {k: v["reason"] for tests in suites.values() for k, v in tests.items() if v["outcome"] == "skipped"}
    if skipped:
        out += ["", "## Skipped in the last runs", ""]
        out += [f"- `{k}`: {r}" for k, r in sorted(skipped.items())]
    out += ["", "## Code changes these guarantees needed", "", *CHANGES, ""]
    return "\n".join(out)


def _headline(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The figures worth a line in the doc (the JSON keeps everything)."""
    keep = {
        "fault_run": ["jobs", "workers", "attempts", "seconds", "outcomes", "retries_by_cause", "max_retry_count",
                      "retry_budget", "bursts_injected", "bursts_met_by_a_job", "constant_faults", "sii_sessions",
                      "sii_saves", "wrong_state", "final_failures_from_login_alert_bursts",
                      "required_wait_by_cause_seconds", "shortest_wait_by_cause_seconds"],
        "secrets_scan": ["jobs", "found", "bytes_scanned", "files_changed_during_run", "redis_scanned", "needles"],
        "url_probes": ["urls", "tenant_urls", "platform_urls", "requests"],
    }.get(name)
    return {k: data[k] for k in keep if k in data} if keep else data


CHANGES = [
    "- `onboarding/services/jobs/recovery.py`: `worker_identity()` (host, pid, process start time, PID namespace, "
    "boot id) recorded on claim; `worker_is_dead()`; `enrollment_job_take_over` resumes a RUNNING job whose "
    "claiming process provably died on this host (counts as a retry; past the budget it fails as `worker_lost`); "
    "`enrollment_jobs_recover_orphans()` re-queues such jobs at worker start; the reaper's and dispatcher's "
    "thresholds and the retry delays read settings; the reaper's compare-and-set also requires the stale heartbeat.",
    "- `onboarding/services/jobs/lifecycle.py`: create / claim / succeed / fail once for every kind of job, each one "
    "compare-and-set on the claim (worker and start); late results recorded (success: SUCCEEDED, marked and audited, "
    "queued re-runs closed; failure: noted only). What a success writes per kind is a table (`JOB_KIND_OUTCOMES`, "
    "`outcomes.py`).",
    "- `onboarding/services/certificates.py`: `company_certificates_destroy` (no re-run possible: relationship ended, "
    "company removed); `onboarding/services/tenants.py`: `client_company_remove` (also behind the platform admin's "
    "delete).",
    "- `portal/broker.py` (the embedded broker): each message is written under a hidden name and renamed into place, "
    "so a worker never takes a half-written file (kombu's own transport let it, and the worker stopped with "
    "\"Unrecoverable error: JSONDecodeError\"); an unreadable message is logged and dropped.",
    "- `onboarding/tasks.py`: the job task records `worker_identity()`; a `worker_ready` handler recovers orphaned jobs.",
    "- `portal/settings.py`: `AUTORIZA_JOB_REAP_AFTER_SECONDS` (default: the larger of the live-job bound of the "
    "configured pool and the hard limit, + 60 s; production refuses a value at or below the live-job bound, "
    "`JOB_SILENCE_BOUND_SECONDS`), `AUTORIZA_JOB_LOST_AFTER_SECONDS` (600), `AUTORIZA_JOB_RETRY_DELAY_SCALE` "
    "(1.0), `AUTORIZA_DISPATCH_EVERY_SECONDS` (30), `AUTORIZA_REAP_EVERY_SECONDS` (60), `AUTORIZA_BROWSER_QUEUE` "
    "(browser), `AUTORIZA_DEFAULT_QUEUE` (default).",
    "- `pyproject.toml`: the `faults` marker.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_folder = Path(os.environ.get("AUTORIZA_RELIABILITY_DIR") or ROOT / "var" / "reliability")
    parser.add_argument("--figures", type=Path, default=default_folder)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    args.out.write_text(render(args.figures) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
