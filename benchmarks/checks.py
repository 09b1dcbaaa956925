"""Access checks: reading many companies' authorized users in one SII session, against the sandbox.

For each sandbox latency (0 and 200 ms per page by default), alternately:

- the bot: `sii_bot.BrowserEngine.read_users` over `CHECK_COMPANIES` companies (one login, one
  session, logout), Chromium already running (a warm engine, as a checker worker keeps it), no
  screenshots and no pause between companies (what a check asks of the bot, minus the politeness
  pause, which is a setting and only adds to the wall clock);
- the plain-HTTP lower bound: `sii_sandbox.probe.PlainClient` (httpx) walking the same page sequence:
  the login through the enrolment URL, then per company the company RUT form → the user list
  (submitting the list page's own company form when it has one, as the bot does), then the logout.

Figures: companies checked per minute (one session), SII requests per company after the login (the
bot's document requests, measured as the difference between a run over N companies and a run over
one, divided by N − 1), companies sharing the one login, and the bot's wall clock against the lower
bound's (target ≤ 1.3× at 200 ms per page).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log, median
from benchmarks.sandbox import SandboxProcess
from sii_bot import BrowserEngine, SiiSettings, UsersReadRequest, open_pkcs12
from sii_bot.driver import session as driver
from sii_sandbox import pki as pki_mod
from sii_sandbox.probe import PlainClient, open_company
from sii_sandbox.rut import company_rut

CHECK_COMPANIES = 30  # per session: at least the 20 a login must be shared by
FIRST_COMPANY = 20_000  # sii_sandbox.rut.company_rut(n): this part uses n = 20000..
TARGET_OVERHEAD = 1.3
TARGET_REQUESTS_PER_COMPANY = 3.0
TARGET_SHARED_LOGIN = 20


class DocumentCounter:
    """Counts the document requests (pages) the bot's browser contexts make while `active`."""

    def __init__(self) -> None:
        self.count = 0
        self.active = False

    def install(self) -> None:
        original = driver.new_job_context

        async def counting(*args: Any, **kwargs: Any) -> Any:
            context = await original(*args, **kwargs)
            context.on("request", self._on_request)
            return context

        driver.new_job_context = counting

    def _on_request(self, request: Any) -> None:
        if self.active and request.resource_type == "document":
            self.count += 1


def run(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    latencies: list[float] = opts.latencies
    runs = max(1, opts.bot_runs // 3) if opts.quick else max(2, opts.bot_runs // 3)
    ruts = [company_rut(FIRST_COMPANY + i) for i in range(CHECK_COMPANIES)]
    holder = pki_mod.DEMO_HOLDER_RUT
    result: dict[str, Any] = {"latencies": latencies, "runs": runs, "companies_per_session": CHECK_COMPANIES,
                              "bot": {}, "lower_bound": {}, "overhead": {}, "requests_per_company": {},
                              "per_minute": {}, "logins": {}, "failures": 0, "errors": []}
    counter = DocumentCounter()
    counter.install()
    with SandboxProcess(work / "sandbox-checks") as sb:
        sb.add_companies([{"rut": rut, "name": f"EMPRESA VERIFICADA {i:03d} SPA", "admins": [holder],
                           "users": [{"rut": holder, "admin": True, "sign": True, "registry": True}]}
                          for i, rut in enumerate(ruts)])
        env = sb.env
        demo = sb.demo
        material = open_pkcs12(Path(demo["pfx"]).read_bytes(), demo["password"]).material
        settings = SiiSettings.from_env(env).replace(screenshots=False, company_pause_seconds=0.0)
        engine = BrowserEngine(name="bench-checks")

        def bot_once(companies: list[str]) -> tuple[float, int, int]:
            counter.count = 0
            counter.active = True
            t0 = time.perf_counter()
            try:
                read = engine.read_users(UsersReadRequest(tuple(companies)), material, settings)
            finally:
                counter.active = False
            elapsed = time.perf_counter() - t0
            unread = [c for c in read.per_company if not c.ok]
            if unread:
                raise RuntimeError(f"{len(unread)} companies not read, e.g. {unread[0].company_rut}: {unread[0].failure}")
            return elapsed, counter.count, read.logins

        def plain_once(companies: list[str]) -> float:
            t0 = time.perf_counter()
            with PlainClient(demo["ca_bundle"], demo["cert_pem"], demo["key_pem"]) as client:
                page = None
                for rut in companies:
                    if page is not None and page.has_form(with_field="RUT_EMP") and "Ingresar" in page.form(
                            with_field="RUT_EMP").buttons():
                        body, dv = rut.split("-")
                        page = client.submit(page, page.form(with_field="RUT_EMP").name, button="Ingresar",
                                             values={"RUT_EMP": body, "DV_EMP": dv})
                    else:
                        page = open_company(client, env["SII_ENROLL_URL"], rut)
                    if "Ingresar Nuevo Usuario" not in page.visible_text and not page.has_control("Ingresar Nuevo Usuario"):
                        raise RuntimeError(f"plain client did not reach the list of {rut}: {page.visible_text[:200]}")
                client.get(env["SII_LOGOUT_URL"])
            return time.perf_counter() - t0

        try:
            sb.configure(latency_ms=0)
            bot_once(ruts[:2])  # warm-up: Chromium launch, first TLS sessions, imports
            for latency in latencies:
                sb.configure(latency_ms=latency)
                key = f"{latency:g}"
                log(f"checks: sandbox latency {key} ms, {runs} runs of {CHECK_COMPANIES} companies, bot and plain HTTP")
                bots: list[float] = []
                plains: list[float] = []
                documents: list[int] = []
                for _ in range(runs):
                    plains.append(plain_once(ruts))
                    try:
                        seconds, pages, logins = bot_once(ruts)
                    except Exception as exc:  # noqa: BLE001 - counted, reported, never hidden
                        result["failures"] += 1
                        result["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
                        continue
                    bots.append(seconds)
                    documents.append(pages)
                    result["logins"][key] = logins
                _, one_pages, _ = bot_once(ruts[:1])
                per_company = (median(documents) - one_pages) / (CHECK_COMPANIES - 1) if documents else float("nan")
                result["bot"][key] = {"runs": bots, "median": median(bots) if bots else float("nan"),
                                      "documents_median": median(documents) if documents else float("nan"),
                                      "documents_one_company": one_pages}
                result["lower_bound"][key] = {"runs": plains, "median": median(plains)}
                result["overhead"][key] = median(bots) / median(plains) if bots and plains else float("nan")
                result["requests_per_company"][key] = per_company
                result["per_minute"][key] = CHECK_COMPANIES / median(bots) * 60 if bots else 0.0
                log(f"checks: {key} ms: {result['per_minute'][key]:.0f} companies/min, {per_company:.2f} requests/company, "
                    f"bot {median(bots) if bots else float('nan'):.2f} s vs plain {median(plains):.2f} s")
        finally:
            engine.close()
        result["sessions_left_open"] = sb.state().get("sessions", {}).get(holder, {}).get("active", 0)
    return result


def table_rows(checks: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(part, configuration, result, target, met) rows of this part."""
    rows: list[tuple[str, str, str, str, str]] = []
    if "error" in checks:
        return [("checks", "ERROR", str(checks["error"])[:200], "", "NO")]
    for key in checks.get("per_minute", {}):
        rows.append(("checks", f"companies checked per minute, {key} ms/page",
                     f"{checks['per_minute'][key]:.0f} (one session of {checks['companies_per_session']})", "", ""))
        per_company = checks["requests_per_company"][key]
        rows.append(("checks", f"SII requests per company after login, {key} ms/page", f"{per_company:.2f}",
                     f"<= {TARGET_REQUESTS_PER_COMPANY:g}", "yes" if per_company <= TARGET_REQUESTS_PER_COMPANY else "NO"))
        overhead = checks["overhead"][key]
        target = f"<= {TARGET_OVERHEAD}x" if key == "200" else ""
        met = ("yes" if overhead <= TARGET_OVERHEAD else "NO") if key == "200" else ""
        rows.append(("checks", f"bot vs plain HTTP, {key} ms/page",
                     (f"{checks['bot'][key]['median']:.2f} s vs {checks['lower_bound'][key]['median']:.2f} s "
                      f"({overhead:.2f}x)"), target, met))
    logins = set(checks.get("logins", {}).values())
    shared = checks.get("companies_per_session", 0) if logins == {1} else 0
    rows.append(("checks", "companies sharing one login", str(shared), f">= {TARGET_SHARED_LOGIN}",
                 "yes" if shared >= TARGET_SHARED_LOGIN else "NO"))
    rows.append(("checks", "failures", str(checks.get("failures", 0)), "0", "yes" if not checks.get("failures") else "NO"))
    return rows
