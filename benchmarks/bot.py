"""The bot against the plain-HTTP lower bound, on the same page sequence, against the sandbox.

For each sandbox latency (0 and 200 ms per page by default), runs alternate between:

- the lower bound: `sii_sandbox.probe.PlainClient` (httpx, the demo holder's certificate, forms
  posted directly, JavaScript redirects and the login's confirm() emulated) walking
  `probe.enroll` and then the logout URL, with a new client (no cookies, new TLS connections) per run;
- the bot: `sii_bot.BrowserEngine.enroll` with Chromium already running (one warm engine, as a
  worker keeps it), screenshots on and off (`SiiSettings.screenshots`, i.e. SII_SCREENSHOTS).

Every run enrolls the same person in a company of its own that the demo holder administers and
where that person is not a user yet, so each run does the full create path (login → company →
list → new user → confirm → save → result → logout). Times are wall-clock around the whole call
(context creation and logout included). Per-step times come from the ProgressEvents.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import sii_bot
from benchmarks.common import log, median, percentile, tree_cpu_seconds
from benchmarks.sandbox import SandboxProcess
from sii_bot import BrowserEngine, EnrollmentRequest, Permission, SiiSettings
from sii_bot.driver import session as driver
from sii_sandbox import pki as pki_mod
from sii_sandbox.probe import PlainClient, enroll
from sii_sandbox.rut import company_rut

USER_RUT = "11111111-1"  # a person the sandbox knows (JUAN PEREZ GONZALEZ), in none of our companies
FIRST_COMPANY = 1  # sii_sandbox.rut.company_rut(n): this section uses n = 1..9999
WARMUP_RUNS = 2


def _steps(events: list[Any], start: dt.datetime, end: dt.datetime) -> dict[str, float]:
    """Seconds per step (started → done/failed/skipped), plus 'setup' (call → first event) and
    'teardown' (logout done → call returned)."""
    out: dict[str, float] = {}
    started: dict[str, dt.datetime] = {}
    for event in events:
        step = event.step.value
        if event.status == "started":
            started[step] = event.at
        elif step in started:
            out[step] = (event.at - started.pop(step)).total_seconds()
    if events:
        out["setup"] = (events[0].at - start).total_seconds()
        out["teardown"] = (end - events[-1].at).total_seconds()
    return out


class _RequestCounter:
    """Counts the requests the bot's browser context makes (diagnostic run only): wraps
    `sii_bot.driver.session.new_job_context` in this process to listen on each new context."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.active = False

    def install(self) -> None:
        original = driver.new_job_context

        async def counting(*args: Any, **kwargs: Any) -> Any:
            context = await original(*args, **kwargs)
            if self.active:
                context.on("request", self._on_request)
            return context

        driver.new_job_context = counting

    def _on_request(self, request: Any) -> None:
        kind = request.resource_type
        self.counts[kind] = self.counts.get(kind, 0) + 1


def run(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    latencies: list[float] = opts.latencies
    modes: list[bool] = opts.screenshot_modes
    runs: int = opts.bot_runs
    per_latency = runs * (1 + len(modes)) + 1  # + one diagnostic run (request count)
    total = WARMUP_RUNS + per_latency * len(latencies)
    companies = [company_rut(FIRST_COMPANY + i) for i in range(total)]
    next_company = iter(companies)
    used: list[str] = []

    counter = _RequestCounter()
    counter.install()
    result: dict[str, Any] = {"latencies": latencies, "runs": runs, "lower_bound": {}, "bot": {}, "overhead": {},
                              "bot_requests": {}, "failures": 0, "errors": []}
    with SandboxProcess(work / "sandbox-bot") as sb:
        sb.add_companies([{"rut": rut, "name": f"EMPRESA BENCH {i:05d} SPA", "admins": [pki_mod.DEMO_HOLDER_RUT]}
                          for i, rut in enumerate(companies)])
        env = sb.env
        demo = sb.demo
        bundle = sii_bot.open_pkcs12(Path(demo["pfx"]).read_bytes(), demo["password"])
        base = SiiSettings.from_env(env)
        permissions = Permission.parse_list("admin,sign,registry")
        engine = BrowserEngine(name="bench-bot")
        plain_cpu: list[float] = []

        def bot_once(settings: SiiSettings) -> tuple[float, dict[str, float]]:
            rut = next(next_company)
            used.append(rut)
            events: list[Any] = []
            request = EnrollmentRequest(rut, USER_RUT, permissions)
            start = dt.datetime.now(dt.UTC)
            cpu0 = tree_cpu_seconds(os.getpid()) + sb.cpu_seconds()
            t0 = time.perf_counter()
            outcome = engine.enroll(request, bundle.material, settings, on_progress=events.append)
            elapsed = time.perf_counter() - t0
            end = dt.datetime.now(dt.UTC)
            if outcome.outcome != "created":
                raise RuntimeError(f"bot outcome {outcome.outcome} for {rut}")
            per_step = _steps(events, start, end)
            # CPU of this process, Playwright's driver, Chromium and the sandbox during the run.
            per_step["cpu"] = tree_cpu_seconds(os.getpid()) + sb.cpu_seconds() - cpu0
            return elapsed, per_step

        def plain_once() -> tuple[float, int]:
            rut = next(next_company)
            used.append(rut)
            cpu0 = tree_cpu_seconds(os.getpid()) + sb.cpu_seconds()
            t0 = time.perf_counter()
            with PlainClient(demo["ca_bundle"], demo["cert_pem"], demo["key_pem"]) as client:
                page = enroll(client, env["SII_ENROLL_URL"], rut, USER_RUT, admin=True, sign=True, registry=True)
                saved = page.has_control("Ingresar Otro Usuario") or "INGRESO DE USUARIOS" in page.visible_text.upper()
                client.get(env["SII_LOGOUT_URL"])
                requests = len(client.history)
            elapsed = time.perf_counter() - t0
            plain_cpu.append(tree_cpu_seconds(os.getpid()) + sb.cpu_seconds() - cpu0)
            if not saved:
                raise RuntimeError(f"plain client did not reach the result page for {rut}: {page.visible_text[:200]}")
            return elapsed, requests

        try:
            sb.configure(latency_ms=0)
            for _ in range(WARMUP_RUNS):  # Chromium launch, first TLS sessions, imports
                bot_once(base)
            for latency in latencies:
                sb.configure(latency_ms=latency)
                key = f"{latency:g}"
                log(f"bot: sandbox latency {key} ms, {runs} runs each of plain HTTP and the bot "
                    f"(screenshots {', '.join('on' if m else 'off' for m in modes)})")
                plain: list[float] = []
                plain_cpu.clear()
                plain_requests = 0
                bots: dict[bool, list[float]] = {m: [] for m in modes}
                steps: dict[bool, list[dict[str, float]]] = {m: [] for m in modes}
                for _ in range(runs):
                    # Interleaved, so that a noisy neighbour hurts every variant alike.
                    seconds, plain_requests = plain_once()
                    plain.append(seconds)
                    for mode in modes:
                        try:
                            seconds, per_step = bot_once(base.replace(screenshots=mode))
                        except Exception as exc:  # noqa: BLE001 - counted, reported, never hidden
                            result["failures"] += 1
                            result["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
                            continue
                        bots[mode].append(seconds)
                        steps[mode].append(per_step)
                counter.counts = {}
                counter.active = True
                try:
                    bot_once(base.replace(screenshots=False))
                finally:
                    counter.active = False
                result["bot_requests"][key] = dict(counter.counts)
                result["lower_bound"][key] = {
                    "runs": plain, "median": median(plain), "p95": percentile(plain, 95), "requests": plain_requests,
                    "cpu_median": median(plain_cpu),
                }
                result["bot"][key] = {}
                result["overhead"][key] = {}
                for mode in modes:
                    label = "screenshots" if mode else "no_screenshots"
                    names = sorted({name for s in steps[mode] for name in s})
                    result["bot"][key][label] = {
                        "runs": bots[mode],
                        "median": median(bots[mode]),
                        "p95": percentile(bots[mode], 95),
                        "steps_median": {name: median([s[name] for s in steps[mode] if name in s]) for name in names},
                    }
                    result["overhead"][key][label] = median(bots[mode]) / median(plain) if plain else float("nan")
                log(f"bot: {key} ms: plain {median(plain):.3f} s, bot "
                    + ", ".join(f"{'shots' if m else 'no shots'} {median(bots[m]):.3f} s" for m in modes))
        finally:
            engine.close()
        # The sandbox's own record: every run must have added the user to its company.
        missing = [rut for rut in used if not any(u["rut"] == USER_RUT for u in sb.users(rut))]
        result["missing_in_sandbox"] = len(missing)
        result["sandbox_cpu_s"] = sb.cpu_seconds()
    return result
