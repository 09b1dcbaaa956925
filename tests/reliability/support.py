"""Helpers shared by the reliability and security suites (no fixtures here: see conftest.py).

- `figures_record(name, data)`: the suites' own output. Each test that measures something writes a
  JSON file to `var/reliability/` (or `$AUTORIZA_RELIABILITY_DIR`), one per backend
  ("sqlite+filesystem" or "postgresql+redis"); `python -m tests.reliability.report` renders them into
  docs/reliability.md.
- `rut_with_dv`, `company_ruts`: valid, distinct company RUTs for runs of many enrollments.
- `firm_create`, `jobs_create`: a sandbox-environment firm and jobs made through the real services.
- `wait_for`, `jobs_drain`: polling with a deadline (and the dispatcher the scheduler would run).
- `pool_children`: the pool processes of a prefork worker (to kill only one of them).
- `PrivateRedis`: a redis-server of the test's own on a free port (never the shared 6379 one).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.db import connection

BASE_DIR = Path(django_settings.BASE_DIR)
# The firm's representative known to the sandbox's person registry (sii_sandbox.state).
REPRESENTATIVE_RUT = "13322924-8"
REPRESENTATIVE_NAME = "ALEX BRITO MARDONES"
TERMINAL = ("succeeded", "failed")
# The suite's job policy (workers get it through conftest.FAST_ENV): retry delays at 1/500 of
# production (one hour of SII throttling → 7.2 s), the production retry budget.
RETRY_SCALE = 0.002
MAX_RETRIES = 3


# --- Figures ---------------------------------------------------------------------------------------


def figures_dir() -> Path:
    return Path(os.environ.get("AUTORIZA_RELIABILITY_DIR") or BASE_DIR / "var" / "reliability")


def backend_label() -> str:
    database = "postgresql" if connection.vendor == "postgresql" else connection.vendor
    broker = "redis" if django_settings.REDIS_URL else "filesystem"
    return f"{database}+{broker}"


def figures_record(name: str, data: dict[str, Any]) -> Path:
    """Write one test's figures (JSON) for the report; returns the file written."""
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    backend = backend_label()
    path = folder / f"{name}.{backend}.json"
    payload = {"name": name, "backend": backend, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "data": data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    return path


# --- RUTs, firms, jobs -----------------------------------------------------------------------------


def rut_with_dv(body: int) -> str:
    """The canonical RUT of `body` with its Módulo 11 check digit."""
    total, factor = 0, 2
    for digit in reversed(str(body)):
        total += int(digit) * factor
        factor = 2 if factor == 7 else factor + 1
    rest = 11 - total % 11
    return f"{body}-{ {11: '0', 10: 'K'}.get(rest, str(rest)) }"


def company_ruts(count: int, start: int) -> list[str]:
    """`count` distinct company RUTs (bodies from `start`, above 50,000,000 like real companies)."""
    return [rut_with_dv(start + index) for index in range(count)]


def firm_create(slug: str, **grants: bool) -> Any:
    """A firm on the sandbox environment whose representative the sandbox knows by name."""
    from onboarding import services
    from onboarding.models import SiiEnvironment

    tenant = services.tenant_create(name=f"Estudio {slug}", slug=slug, sii_environment=SiiEnvironment.SANDBOX, **grants)
    services.representative_add(tenant=tenant, rut=REPRESENTATIVE_RUT, name=REPRESENTATIVE_NAME)
    return tenant


def jobs_create(tenant: Any, ruts: Iterable[str], bundle: Any) -> list[Any]:
    """One client company, one sealed certificate and one QUEUED job per RUT, through the services
    (the job is enqueued when its transaction commits, as after a client's consent)."""
    from onboarding import services

    jobs = []
    for rut in ruts:
        company = services.client_company_create(tenant=tenant, rut=rut, legal_name=f"EMPRESA {rut}")
        certificate = services.certificate_store(company=company, bundle=bundle, uploaded_by=None)
        jobs.append(services.enrollment_job_create(company=company, certificate=certificate, created_by=None))
    return jobs


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def jobs_drain(job_ids: list[Any], *, timeout: float, dispatch: bool = True, interval: float = 0.5,
               workers: Iterable[Any] = ()) -> float:
    """Wait until every job is finished, running the dispatcher like the scheduler would (due retries,
    lost messages). Returns the seconds it took; fails with the states left and the worker logs."""
    from onboarding import services
    from onboarding.models import EnrollmentJob

    started = time.monotonic()
    deadline = started + timeout
    while True:
        if dispatch:
            services.enrollment_jobs_dispatch()
        open_jobs = EnrollmentJob.objects.filter(pk__in=job_ids).exclude(status__in=TERMINAL)
        if not open_jobs.exists():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            left = list(open_jobs.values_list("status", "retry_count", "run_after"))
            logs = "\n".join(w.log()[-3000:] for w in workers)
            raise AssertionError(f"{len(left)} job(s) not finished after {timeout:.0f} s: {left[:10]}\n{logs}")
        time.sleep(interval)


def saves_of(state: dict[str, Any], company_rut: str, user_rut: str = REPRESENTATIVE_RUT) -> list[dict[str, Any]]:
    """The sandbox's log entries that wrote `user_rut` into `company_rut` (create or update)."""
    return [e for e in state["log"] if e.get("company") == company_rut and e.get("user") == user_rut
            and e.get("action") in ("create", "update")]


def pool_children(pid: int) -> list[int]:
    """The direct children of a process (a prefork worker's pool processes)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def python_children(pid: int) -> list[int]:
    """Direct children of `pid` that are Python processes (the pool, not Chromium or its driver)."""
    found = []
    for child in pool_children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"python" in cmdline.split(b"\0")[0] or b"celery" in cmdline:
            found.append(child)
    return found


# --- A private Redis -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrivateRedis:
    """A redis-server on a free loopback port, data in `directory`; never the shared instance."""

    directory: Path
    appendonly: bool
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("redis-server") and shutil.which("redis-cli"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, timeout=20, interval=0.1, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        return self.cli("ping").strip() == "PONG"

    def cli(self, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return result.stdout

    def crash_without_saving(self) -> None:
        """`redis-cli shutdown nosave`: everything in memory is gone (a crash with no persistence)."""
        self.cli("shutdown", "nosave")
        assert self.process is not None
        self.process.wait(timeout=20)

    def kill(self) -> None:
        """SIGKILL: whatever reached the append-only file survives, nothing else."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
