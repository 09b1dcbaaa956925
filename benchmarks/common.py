"""Shared helpers: logging, percentiles, /proc sampling (memory, CPU), the machine, databases."""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
_T0 = time.monotonic()
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress to stderr (the table goes to stdout)."""
    print(f"[bench {time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def master_key() -> str:
    """A fresh AUTORIZA_MASTER_KEYS value for a throwaway run."""
    return "bench:" + base64.b64encode(os.urandom(32)).decode()


# --- The machine ------------------------------------------------------------------------------


def _version(module: str) -> str:
    try:
        return version(module)
    except Exception:  # noqa: BLE001
        return "?"


def machine_info() -> dict[str, Any]:
    """What the figures were taken on: cores, memory, CPU model, versions, date, load."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        free = subprocess.run(["free", "-h"], capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        free = "?"
    mem_total = "?"
    for line in free.splitlines():
        if line.startswith("Mem:"):
            mem_total = line.split()[1]
    chromium = "?"
    for candidate in (os.environ.get("SII_CHROMIUM_PATH"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            try:
                chromium = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                                          timeout=20, check=False).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                pass
            break
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_total": mem_total,
        "free_h": free,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": _version("django"),
        "celery": _version("celery"),
        "playwright": _version("playwright"),
        "gunicorn": _version("gunicorn"),
        "chromium": chromium,
        "loadavg_start": loadavg(),
    }


# --- /proc sampling ---------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        rest = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(entry.name))
    return children


def process_tree(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """`pid` and all its descendants (a snapshot)."""
    children = children if children is not None else _children_map()
    out, stack = [], [pid]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children.get(current, ()))
    return out


def pss_kb(pid: int) -> int:
    """Proportional set size of a process in KiB (RSS if smaps_rollup is unreadable; 0 if gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children, in seconds (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2 :].split()
    # utime, stime, cutime, cstime are fields 14..17 (1-based), i.e. 11..14 after the command.
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return float(total - idle), float(total)


def _kind(pid: int) -> str:
    """A short name for a process of a worker tree: python, node (Playwright's driver), or Chromium's
    process type (browser, renderer, gpu-process, utility, zygote)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return "?"
    exe = os.path.basename(argv[0].decode(errors="replace").split(" ")[0]) if argv and argv[0] else ""
    if not exe:
        # An empty command line: a Chromium child between the zygote's fork and its rewriting of its
        # command line (seen in 4-slot runs: a renderer being born), or a zombie. Its name still tells.
        try:
            with open(f"/proc/{pid}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            return "?"
        return "chromium (starting)" if "chrom" in comm or "headless" in comm else (comm or "?")
    if "chrom" in exe or "headless" in exe:
        # Chromium rewrites its command line (one string with spaces) in its child processes.
        for arg in b" ".join(argv).split():
            if arg.startswith(b"--type="):
                return "chromium " + arg[7:].decode(errors="replace")
        return "chromium browser"
    if exe.startswith("python"):
        return "python"
    return exe


class TreeMemorySampler:
    """Samples, every `interval` s, the summed PSS of a process tree and of each child's subtree.

    `peak_total_kb`: the whole tree (e.g. a celery worker: parent + pool children + their Playwright
    drivers + Chromium); `peak_child_kb`: the largest single child subtree (one slot).
    """

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_total_kb = 0
        self.peak_child_kb = 0
        self.peak_processes = 0
        self.peak_breakdown: dict[str, float] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-mem", daemon=True)

    def start(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sample(self) -> None:
        children = _children_map()
        tree = process_tree(self.pid, children)
        sizes = {p: pss_kb(p) for p in tree}
        if sum(sizes.values()) > self.peak_total_kb:
            self.peak_total_kb = sum(sizes.values())
            breakdown: dict[str, float] = {}
            for p, kb in sizes.items():
                name = _kind(p)
                breakdown[name] = breakdown.get(name, 0) + kb / 1024
            self.peak_breakdown = {k: round(v, 1) for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1])}
        self.peak_processes = max(self.peak_processes, len(tree))
        for child in children.get(self.pid, ()):
            self.peak_child_kb = max(self.peak_child_kb, sum(sizes.get(p, 0) for p in process_tree(child, children)))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            # Processes come and go while we read /proc: a failed sample is skipped.
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.interval)


def stop_process_group(process: subprocess.Popen[Any], *, timeout: float = 20.0, leader_only: bool = False) -> None:
    """SIGTERM the process group we started (start_new_session=True), or only its leader (which then
    stops its own children, e.g. a celery worker's pool), then SIGKILL the group if it lingers."""

    if process.poll() is not None:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # orphans of a leader that is already gone
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        if leader_only:
            process.terminate()
        else:
            os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
    # Chromium children may outlive a killed parent in the same group: sweep the group once more.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- Databases --------------------------------------------------------------------------------


def database_url(suffix: str, var_dir: Path) -> str:
    """A dedicated database, `autoriza_bench<suffix>` (prefix from BENCH_DB_PREFIX), on the
    DATABASE_URL server when that is PostgreSQL, else a SQLite file in the throwaway var dir."""
    name = os.environ.get("BENCH_DB_PREFIX", "").strip() or "autoriza_bench"
    name += suffix
    base = os.environ.get("DATABASE_URL", "").strip()
    if base.startswith(("postgres://", "postgresql://", "pgsql://")):
        parts = urlsplit(base)
        return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    return f"sqlite:///{var_dir / (name + '.sqlite3')}"


def database_kind(url: str) -> str:
    return "PostgreSQL" if url.startswith(("postgres", "pgsql")) else "SQLite"


def _pg_admin(url: str) -> Any:
    # Loaded on use: PostgreSQL's driver is needed only for a PostgreSQL run.
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit((parts.scheme.replace("pgsql", "postgresql"), parts.netloc, "/postgres", "", ""))
    return psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True)


def database_create(url: str) -> None:
    """Create (after dropping any leftover) the PostgreSQL database of `url`; SQLite needs nothing."""
    if database_kind(url) != "PostgreSQL":
        return
    name = urlsplit(url).path.lstrip("/")
    with _pg_admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(url: str) -> None:
    if database_kind(url) != "PostgreSQL":
        return
    name = urlsplit(url).path.lstrip("/")
    try:
        with _pg_admin(url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # noqa: BLE001
        log(f"could not drop database {name}: {exc}")


def django_env(*, var_dir: Path, database: str, keys: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Django processes of a run (this one, workers, gunicorn): production-like
    (DEBUG off) but plain http on loopback, throwaway var dir and database."""
    env = {
        "AUTORIZA_VAR_DIR": str(var_dir),
        "DATABASE_URL": database,
        "AUTORIZA_MASTER_KEYS": keys,
        "DJANGO_SECRET_KEY": "bench-" + base64.b64encode(os.urandom(24)).decode(),
        "DJANGO_DEBUG": "0",
        "AUTORIZA_HTTPS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "BENCH_STATIC_ROOT": str(var_dir / "staticfiles"),
        "LOG_LEVEL": "WARNING",
        "EMAIL_URL": "dummymail://",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def fmt_ms(ms: float) -> str:
    if math.isnan(ms):
        return "-"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def which(name: str) -> str | None:
    return shutil.which(name)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the live processes of a tree, including what their reaped children
    used (e.g. a Chromium renderer that exited counts in its parent's cutime/cstime)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15]) / CLK_TCK
    return total
