"""`python -m benchmarks`: runs the parts, prints one table and a summary line, saves JSON.

Options (each also read from the environment variable in brackets):

  --only bot,throughput,portal,fairness,checks   parts to run [BENCH_ONLY]; default all of these; also
                                 "resilience" (one attempt against 20 % HTTP 500s + a session expiry).
                                 "checks": access checks, many companies' users read in one SII session
                                 (companies/min, requests per company, against a plain-HTTP lower bound)
  --resilience-runs R            runs of the resilience part [BENCH_RESILIENCE_RUNS]; default 100 (quick 20)
  --resilience-backoff S,S,S     page-retry backoff in that part, seconds [BENCH_RESILIENCE_BACKOFF]; 0.1,0.2,0.4
  --quick                        a quick version (< 3 min): few runs, small N, short loads [BENCH_QUICK=1]
  --n N                          enrollments per throughput variant [BENCH_N]; default 200 (quick 12)
  --variants 1,2,4               throughput variants: slots, ":noshots" for SII_SCREENSHOTS=0 [BENCH_VARIANTS]
  --variant-seconds S            stop submitting a throughput variant after S s [BENCH_VARIANT_SECONDS]; 300
  --bot-runs R                   timed runs per bot variant [BENCH_BOT_RUNS]; default 10 (quick 3)
  --latencies 0,200              sandbox latencies per page, ms [BENCH_LATENCIES]
  --screenshots both|on|off      bot variants [BENCH_SCREENSHOTS]
  --companies C --owners O       portal data: client companies, owners polling [BENCH_COMPANIES, BENCH_OWNERS]
  --portal-k K --dashboard-k D   concurrent clients [BENCH_PORTAL_K, BENCH_DASHBOARD_K]
  --status-rate R                the open-loop status scenarios' arrival rate, requests/s [BENCH_STATUS_RATE];
                                 default 400 (the target); 0 skips them
  --duration S                   seconds per load scenario [BENCH_DURATION]
  --gunicorn WxT                 gunicorn workers x threads [BENCH_GUNICORN]; default: gunicorn.conf.py as
                                 production runs it ((2 x cores) + 1 synchronous workers)
  --loadgen auto|wrk|python      load generator [BENCH_LOADGEN]
  --pin                          taskset: gunicorn on core 0, the load generator on core 1 [BENCH_PIN=1]
  --fairness-n N                 background jobs in the fairness run [BENCH_FAIRNESS_N]; default 300 (quick 40)
  --json PATH                    where to save all figures; default var/bench/bench-<date>.json

The database is PostgreSQL when DATABASE_URL is set (dedicated databases are created and dropped),
else SQLite; the broker is Redis when REDIS_URL is set, else the filesystem broker.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import bot, checks, fairness, portal, resilience, throughput
from benchmarks.checks import table_rows as checks_table_rows
from benchmarks.common import PY, REPO, fmt_ms, fmt_s, loadavg, log, machine_info, write_json
from benchmarks.fairness import fairness_line

PARTS = ("bot", "throughput", "portal", "fairness", "resilience", "checks")
DEFAULT_PARTS = ("bot", "throughput", "portal", "fairness", "checks")

# The targets.
TARGET_OVERHEAD = 1.5
TARGET_PER_MINUTE = 60.0
TARGET_STATUS_RPS = 400.0
TARGET_STATUS_P99_MS = 100.0
TARGET_DASHBOARD_P99_MS = 150.0
TARGET_MB_PER_SLOT = 400.0


def _memory_parts(breakdown: dict[str, float]) -> str:
    """``python 98, node 120, chromium 240 (renderer 2×80, …)`` from a sampler's peak breakdown."""
    groups: dict[str, float] = {}
    for kind, mb in breakdown.items():
        group = "chromium" if kind.startswith("chromium") else kind
        groups[group] = groups.get(group, 0.0) + mb
    return ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(groups.items(), key=lambda kv: -kv[1]) if mb >= 1)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=_env("BENCH_ONLY", ",".join(DEFAULT_PARTS)))
    p.add_argument("--resilience-runs", type=int, default=int(_env("BENCH_RESILIENCE_RUNS", "0")) or None)
    p.add_argument("--resilience-backoff", default=_env("BENCH_RESILIENCE_BACKOFF", "0.1,0.2,0.4"))
    p.add_argument("--quick", action="store_true", default=_env("BENCH_QUICK", "0") not in ("0", "", "no"))
    p.add_argument("--n", type=int, default=int(_env("BENCH_N", "0")) or None)
    p.add_argument("--variants", dest="tp_variants", default=_env("BENCH_VARIANTS", ""))
    p.add_argument("--backlog", type=int, default=int(_env("BENCH_BACKLOG", "0")))
    p.add_argument("--variant-seconds", type=float, default=float(_env("BENCH_VARIANT_SECONDS", "0")) or None)
    p.add_argument("--bot-runs", type=int, default=int(_env("BENCH_BOT_RUNS", "0")) or None)
    p.add_argument("--latencies", default=_env("BENCH_LATENCIES", "0,200"))
    p.add_argument("--screenshots", default=_env("BENCH_SCREENSHOTS", "both"), choices=("both", "on", "off"))
    p.add_argument("--companies", type=int, default=int(_env("BENCH_COMPANIES", "0")) or None)
    p.add_argument("--owners", type=int, default=int(_env("BENCH_OWNERS", "0")) or None)
    p.add_argument("--portal-k", type=int, default=int(_env("BENCH_PORTAL_K", "32")))
    p.add_argument("--dashboard-k", type=int, default=int(_env("BENCH_DASHBOARD_K", "10")))
    p.add_argument("--status-rate", type=float, default=float(_env("BENCH_STATUS_RATE", str(TARGET_STATUS_RPS))))
    p.add_argument("--duration", type=float, default=float(_env("BENCH_DURATION", "0")) or None)
    p.add_argument("--gunicorn", default=_env("BENCH_GUNICORN", "conf"))
    p.add_argument("--loadgen", default=_env("BENCH_LOADGEN", "auto"), choices=("auto", "wrk", "python"))
    p.add_argument("--pin", action="store_true", default=_env("BENCH_PIN", "0") not in ("0", "", "no"))
    p.add_argument("--fairness-n", type=int, default=int(_env("BENCH_FAIRNESS_N", "0")) or None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the throwaway directory")
    # Internal: run one part in this process and write its figures to --section-json.
    p.add_argument("--section", choices=PARTS, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--section-json", type=Path, help=argparse.SUPPRESS)
    return p


def resolve(opts: argparse.Namespace) -> argparse.Namespace:
    """Fill in the defaults that depend on --quick."""
    quick = opts.quick
    opts.parts = [p.strip() for p in opts.only.split(",") if p.strip()]
    unknown = [p for p in opts.parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    opts.n = opts.n or (12 if quick else 200)
    opts.tp_variants = opts.tp_variants or ("1,2" if quick else "1,2,4")
    opts.bot_runs = opts.bot_runs or (3 if quick else 10)
    opts.resilience_runs = opts.resilience_runs or (20 if quick else 100)
    opts.variant_seconds = opts.variant_seconds or (60.0 if quick else 300.0)
    opts.latencies = [float(x) for x in str(opts.latencies).split(",") if str(x).strip()] \
        if isinstance(opts.latencies, str) else opts.latencies
    opts.screenshot_modes = {"both": [True, False], "on": [True], "off": [False]}[opts.screenshots]
    opts.companies = opts.companies or (1000 if quick else 10_000)
    opts.owners = opts.owners or (50 if quick else 200)
    opts.duration = opts.duration or (3.0 if quick else 10.0)
    opts.warmup = 1.0 if quick else 2.0
    if opts.gunicorn.lower() in ("", "conf"):
        opts.gunicorn, opts.gunicorn_workers, opts.gunicorn_threads = "conf", None, None
    else:
        workers, _, threads = opts.gunicorn.lower().partition("x")
        opts.gunicorn_workers, opts.gunicorn_threads = int(workers), int(threads or 1)
    return opts


def _passthrough(opts: argparse.Namespace) -> list[str]:
    args = ["--n", str(opts.n), "--variants", opts.tp_variants, "--bot-runs", str(opts.bot_runs),
            "--latencies", ",".join(f"{x:g}" for x in opts.latencies), "--screenshots", opts.screenshots,
            "--companies", str(opts.companies), "--owners", str(opts.owners), "--portal-k", str(opts.portal_k),
            "--dashboard-k", str(opts.dashboard_k), "--status-rate", f"{opts.status_rate:g}", "--duration", str(opts.duration), "--gunicorn", opts.gunicorn,
            "--loadgen", opts.loadgen, "--backlog", str(opts.backlog), "--variant-seconds", str(opts.variant_seconds),
            "--resilience-runs", str(opts.resilience_runs), "--resilience-backoff", opts.resilience_backoff]
    if opts.fairness_n:
        args += ["--fairness-n", str(opts.fairness_n)]
    if opts.quick:
        args.append("--quick")
    if opts.pin:
        args.append("--pin")
    return args


def run_section(opts: argparse.Namespace) -> int:
    module = {"bot": bot, "throughput": throughput, "portal": portal, "fairness": fairness, "resilience": resilience,
              "checks": checks}[
        opts.section
    ]
    assert opts.work is not None and opts.section_json is not None
    started = time.monotonic()
    figures = module.run(opts, opts.work)
    figures["seconds"] = time.monotonic() - started
    figures["loadavg_end"] = loadavg()
    write_json(opts.section_json, figures)
    return 0


# --- The table --------------------------------------------------------------------------------


def _yes(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(part, configuration, result, target, met) rows."""
    rows: list[tuple[str, str, str, str, str]] = []
    bot = results.get("bot")
    if isinstance(bot, dict) and "lower_bound" in bot:
        for key, lower in bot["lower_bound"].items():
            rows.append(("bot", f"plain HTTP lower bound, {key} ms/page",
                         (f"median {fmt_s(lower['median'])}, p95 {fmt_s(lower['p95'])} ({lower['requests']} requests; "
                         f"{fmt_s(lower.get('cpu_median', float('nan')))} CPU)"),
                         "", ""))
            for label, figures in bot["bot"].get(key, {}).items():
                overhead = bot["overhead"][key][label]
                shots = "screenshots on" if label == "screenshots" else "screenshots off"
                target = f"<= {TARGET_OVERHEAD}x" if key == "200" else ""
                met = _yes(overhead <= TARGET_OVERHEAD) if key == "200" else ""
                rows.append(("bot", f"Playwright bot, {key} ms/page, {shots}",
                             (f"median {fmt_s(figures['median'])}, p95 {fmt_s(figures['p95'])}; "
                             f"{overhead:.2f}x the lower bound; "
                             f"{fmt_s(figures['steps_median'].get('cpu', float('nan')))} CPU"), target, met))
        requests = bot.get("bot_requests", {})
        for key, counts in requests.items():
            rows.append(("bot", f"requests by the bot's context, {key} ms/page",
                         ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-", "", ""))
        rows.append(("bot", "failures", f"{bot['failures']} (+{bot.get('missing_in_sandbox', 0)} not in the sandbox)",
                     "0", _yes(bot["failures"] == 0 and not bot.get("missing_in_sandbox"))))
    elif isinstance(bot, dict) and "error" in bot:
        rows.append(("bot", "ERROR", bot["error"][:200], "", "NO"))
    checks_figures = results.get("checks")
    if isinstance(checks_figures, dict):
        rows += checks_table_rows(checks_figures)
    tp = results.get("throughput")
    if isinstance(tp, dict) and "variants" in tp:
        for v in tp["variants"]:
            shots = "" if v["screenshots"] else ", screenshots off"
            ok_rate = v["per_minute"] >= TARGET_PER_MINUTE and v["failures"] == 0
            capped = f" (of {v['n_requested']}: {v['capped_at_s']:.0f} s cap)" if v.get("capped_at_s") else ""
            rows.append(("throughput", f"{v['slots']} slot{'s' if v['slots'] > 1 else ''}{shots}, N={v['n']}{capped}, 0 ms",
                         (f"{v['per_minute']:.1f}/min; job p50 {fmt_s(v['job_p50_s'])} p95 {fmt_s(v['job_p95_s'])} "
                         f"(run p50 {fmt_s(v['run_p50_s'])}"
                         + (f", idle between jobs p50 {fmt_s(v['idle_gap_p50_s'])}" if v.get("idle_gap_p50_s") else "")
                         + f"); failures {v['failures']}"),
                         f">= {TARGET_PER_MINUTE:g}/min, 0 failures", _yes(ok_rate)))
            rows.append(("memory", f"worker tree peak PSS, {v['slots']} slot{'s' if v['slots'] > 1 else ''}{shots}",
                         (f"{v['peak_tree_per_slot_mb']:.0f} MB/slot (tree {v['peak_tree_mb']:.0f} MB: "
                         f"{_memory_parts(v['peak_breakdown_mb'])})"),
                         f"< {TARGET_MB_PER_SLOT:g} MB/slot", _yes(v["peak_tree_per_slot_mb"] < TARGET_MB_PER_SLOT)))
        for v in tp["variants"]:
            shots = "" if v["screenshots"] else ", screenshots off"
            rows.append(("throughput", f"CPU, {v['slots']} slot{'s' if v['slots'] > 1 else ''}{shots}",
                         (f"machine {v['machine_cpu_util'] * 100:.0f}% busy, "
                         f"worker tree (Python, Playwright, Chromium) {v['worker_cpu_s_per_enrollment']:.2f} "
                         f"CPU-s/enrollment; slots "
                         f"{v['slot_utilization'] * 100:.0f}% busy; sandbox "
                         f"{v['sandbox_cpu_util_of_one_core'] * 100:.0f}% of one core"), "", ""))
    elif isinstance(tp, dict) and "error" in tp:
        rows.append(("throughput", "ERROR", tp["error"][:200], "", "NO"))
    portal = results.get("portal")
    if isinstance(portal, dict) and "scenarios" in portal:
        names = {"status_200": "status partial, 200 (rendered)", "status_304": "status partial, 304 (If-None-Match)",
                 "dashboard": f"dashboard, {portal['companies']:,} clients"}
        for name, s in portal["scenarios"].items():
            base_name = name.removesuffix("_at_rate")
            if name == "dashboard":
                how = f"K={s['connections']}"
                target, met = f"p99 < {TARGET_DASHBOARD_P99_MS:g} ms", _yes(
                    s["p99_ms"] < TARGET_DASHBOARD_P99_MS and s["errors"] == 0)
            elif name.endswith("_at_rate"):
                how = f"open loop at {s['offered_rps']:g}/s over {s['connections']} connections"
                target = f"p99 < {TARGET_STATUS_P99_MS:g} ms at >= {TARGET_STATUS_RPS:g}/s"
                met = _yes(_status_rate_met(s))
            else:
                how = f"closed loop, K={s['connections']} (capacity; p99 at saturation)"
                target = f">= {TARGET_STATUS_RPS:g}/s"
                met = _yes(s["rps"] >= TARGET_STATUS_RPS and s["errors"] == 0)
            cpu = s.get("server_cpu_ms_per_request")
            generator = s.get("generator_cpu_util")
            rows.append(("portal", f"{names.get(base_name, base_name)}, {how}",
                         f"{s['rps']:.0f} req/s; p50 {fmt_ms(s['p50_ms'])} p99 {fmt_ms(s['p99_ms'])}; "
                         f"errors {s['errors']}" + (f"; {cpu:.1f} ms CPU/req in gunicorn" if cpu else "")
                         + (f"; generator {generator * 100:.0f}% of a core" if generator is not None else ""),
                         target, met))
    elif isinstance(portal, dict) and "error" in portal:
        rows.append(("portal", "ERROR", portal["error"][:200], "", "NO"))
    res = results.get("resilience")
    if isinstance(res, dict) and "completed" in res:
        rows.append(("resilience", (f"one attempt, {res['http500_rate']:.0%} HTTP 500 + 1 session expiry, "
                                   f"{res['runs']} runs"),
                     (f"{res['completed']}/{res['runs']} completed; saves per completed run "
                      f"{res['saves_per_completed_run']}, in failed runs {res['saves_in_failed_runs']}; "
                      f"{res['page_retries']} page retries, {res['save_resumes']} save resumes, "
                      f"{res['relogins']} new logins; run p50 {fmt_s(res['run_p50_s'])} p95 {fmt_s(res['run_p95_s'])}"),
                     ">= 95% completed, 1 save each", _yes(res["met"])))
    elif isinstance(res, dict) and "error" in res:
        rows.append(("resilience", "ERROR", res["error"][:200], "", "NO"))
    fair = results.get("fairness")
    if isinstance(fair, dict) and "bulk" in fair:
        how = f"{fair['workers']}x{fair['slots_per_worker']} slots, {fair['machines']}"
        rows.append(("fairness", f"{fair['n_live']} live jobs alone, {how}",
                     f"wait p50 {fmt_s(fair['alone']['live_wait_p50_s'])} p95 {fmt_s(fair['alone']['live_wait_p95_s'])}",
                     "", ""))
        bulk = fair["bulk"]
        slot_only_ok = bulk["live_slot_only_wait_max_s"] <= bulk["bulk_run_max_s"] + 2.0
        rows.append(("fairness", f"{fair['n_live']} live jobs under {fair['n_bulk']} background, a worker killed",
                     (f"wait p50 {fmt_s(bulk['live_wait_p50_s'])} p95 {fmt_s(bulk['live_wait_p95_s'])}; waiting only "
                      f"for a slot: max {fmt_s(bulk['live_slot_only_wait_max_s'])} ({bulk['live_slot_only']} jobs) vs a "
                      f"job's run p95 {fmt_s(bulk['bulk_run_p95_s'])} max {fmt_s(bulk['bulk_run_max_s'])}; background "
                      f"jobs started ahead of a waiting live one: {len(bulk['overtaken_by_background'])}"),
                     "<= one job duration, 0 overtaken",
                     _yes(slot_only_ok and not bulk["overtaken_by_background"])))
        sessions, outcome = fair["sessions"], fair["outcome"]
        rows.append(("fairness", "SII sessions per certificate holder",
                     (f"max {sessions['max_sessions_per_rut']} ({sessions['measured_from']}); refused logins "
                     f"{outcome['refused_logins']}; held after a TTL: {sum(fair['leases_held_after_ttl'].values())}"),
                     f"<= {fair['cap']}", _yes(sessions["max_sessions_per_rut"] <= fair["cap"]
                                                and not any(fair["leases_held_after_ttl"].values()))))
        rows.append(("fairness", f"{outcome['jobs']} jobs, {outcome['resumed_after_kill']} resumed after the kill",
                     (f"lost {outcome['lost']}, duplicated SII saves {outcome['duplicated_saves']}, missing "
                     f"{outcome['missing_saves']}; {fair['bulk_seconds']:.0f} s"), "0 lost, 0 duplicated",
                     _yes(outcome["lost"] == 0 and outcome["duplicated_saves"] == 0)))
    elif isinstance(fair, dict) and "error" in fair:
        rows.append(("fairness", "ERROR", fair["error"][:200], "", "NO"))
    return rows


def _status_rate_met(s: dict[str, Any]) -> bool:
    """The status target at a fixed rate: offered at least the target rate, answered it all (within
    2 %: the last requests of the window), p99 under the target, no errors."""
    return (s["offered_rps"] >= TARGET_STATUS_RPS and s["rps"] >= 0.98 * s["offered_rps"]
            and s["p99_ms"] < TARGET_STATUS_P99_MS and s["errors"] == 0)


def render_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    header = ("part", "configuration", "result", "target", "met")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |", line]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    out.append(line)
    return "\n".join(out)


def summary_line(results: dict[str, Any], seconds: float) -> str:
    parts = []
    bot = results.get("bot")
    if isinstance(bot, dict) and "overhead" in bot and "200" in bot["overhead"]:
        o = bot["overhead"]["200"]
        shown = ", ".join(f"{v:.2f}x {'shots' if k == 'screenshots' else 'no shots'}" for k, v in o.items())
        parts.append(f"bot overhead @200ms {shown} (<= {TARGET_OVERHEAD}x: "
                     f"{_yes(o.get('screenshots', min(o.values())) <= TARGET_OVERHEAD)})")
    tp = results.get("throughput")
    if isinstance(tp, dict) and tp.get("variants"):
        best = max(tp["variants"], key=lambda v: v["per_minute"])
        failures = sum(v["failures"] for v in tp["variants"])
        worst_mem = max(v["peak_tree_per_slot_mb"] for v in tp["variants"])
        slots = f"{best['slots']} slot{'s' if best['slots'] > 1 else ''}"
        parts.append(f"throughput best {best['per_minute']:.1f}/min ({slots}), failures {failures} "
                     f"(>= {TARGET_PER_MINUTE:g}: {_yes(best['per_minute'] >= TARGET_PER_MINUTE and failures == 0)})")
        parts.append(f"memory max {worst_mem:.0f} MB/slot (< {TARGET_MB_PER_SLOT:g}: {_yes(worst_mem < TARGET_MB_PER_SLOT)})")
    portal = results.get("portal")
    if isinstance(portal, dict) and portal.get("scenarios"):
        sc = portal["scenarios"]
        for name, short in (("status_200", "status 200"), ("status_304", "status 304")):
            if name in sc:
                parts.append(f"{short} capacity {sc[name]['rps']:.0f}/s")
            at_rate = sc.get(f"{name}_at_rate")
            if at_rate:
                parts.append(f"p99 {at_rate['p99_ms']:.0f} ms at {at_rate['offered_rps']:g}/s "
                             f"(< {TARGET_STATUS_P99_MS:g}: {_yes(_status_rate_met(at_rate))})")
        if "dashboard" in sc:
            parts.append(f"dashboard p99 {sc['dashboard']['p99_ms']:.0f} ms")
        parts.append(f"loadgen {portal.get('loadgen', '?').split()[0]}")
    checks_figures = results.get("checks")
    if isinstance(checks_figures, dict) and checks_figures.get("overhead", {}).get("200") is not None:
        parts.append(f"checks {checks_figures['per_minute'].get('200', 0):.0f}/min @200ms, "
                     f"{checks_figures['requests_per_company']['200']:.2f} requests/company, "
                     f"{checks_figures['overhead']['200']:.2f}x plain HTTP (<= 1.3x: "
                     f"{_yes(checks_figures['overhead']['200'] <= 1.3)})")
    res = results.get("resilience")
    if isinstance(res, dict) and "completed" in res:
        parts.append(f"resilience {res['completed']}/{res['runs']} (>= 95%, 1 save each: {_yes(res['met'])})")
    for name in PARTS:
        if isinstance(results.get(name), dict) and "error" in results[name]:
            parts.append(f"{name} FAILED")
    one, five, _ = loadavg()
    parts.append(f"load {one}/{five}")
    parts.append(f"took {int(seconds // 60)}m{int(seconds % 60):02d}s")
    return "SUMMARY: " + " | ".join(parts)


# --- Orchestration ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    opts = resolve(build_parser().parse_args(argv))
    if opts.section:
        return run_section(opts)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="autoriza-bench-"))
    info = machine_info()
    log(f"{info['nproc']} cores, {info['cpu']}, {info['mem_total']} RAM, load {info['loadavg_start']}; "
        f"parts: {', '.join(opts.parts)}{' (quick)' if opts.quick else ''}; throwaway dir {work}")
    results: dict[str, Any] = {"machine": info, "options": {k: v for k, v in vars(opts).items() if k != "json"}}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CRYPTOGRAPHY_OPENSSL_NO_LEGACY", None)  # the demo .pfx is legacy-encrypted
    try:
        for part in opts.parts:
            out = work / f"{part}.json"
            command = [PY, "-m", "benchmarks", "--section", part, "--work", str(work), "--section-json", str(out),
                       *_passthrough(opts)]
            log(f"--- {part} ---")
            completed = subprocess.run(command, cwd=REPO, env=env, check=False)
            if completed.returncode == 0 and out.exists():
                results[part] = json.loads(out.read_text())
            else:
                results[part] = {"error": f"the {part} benchmark exited with {completed.returncode} (see above)"}
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    results["seconds"] = seconds
    results["machine"]["loadavg_end"] = loadavg()
    path = opts.json or REPO / "var" / "bench" / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    write_json(path, results)
    print()
    print(f"Autoriza benchmarks — {info['date']} — {info['nproc']} cores ({info['cpu']}), {info['mem_total']} RAM; "
          f"load average {info['loadavg_start'][0]} at start, {results['machine']['loadavg_end'][0]} at end")
    db = (results.get("portal") or {}).get("database") or (results.get("throughput") or {}).get("database")
    broker = (results.get("throughput") or {}).get("broker")
    extra = []
    if db:
        extra.append(f"database {db}")
    if broker:
        extra.append(f"broker {broker}")
    portal = results.get("portal") or {}
    if portal.get("loadgen"):
        extra.append(f"load generator {portal['loadgen']}; gunicorn {portal.get('gunicorn')}; cores {portal.get('cores')}")
    if extra:
        print("; ".join(extra))
    print(render_table(table_rows(results)))
    print(f"figures saved to {path}")
    print(summary_line(results, seconds))
    fair = results.get("fairness")
    if isinstance(fair, dict) and "bulk" in fair:
        print(fairness_line(fair))  # the last line, for scripts
    failed = any(isinstance(results.get(p), dict) and "error" in results[p] for p in opts.parts)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
