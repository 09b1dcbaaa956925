"""HTTP load generators: wrk (with a Lua script that rotates over per-user requests) or, when wrk
is missing and cannot be installed, a closed-loop Python generator (threads, keep-alive
`http.client` connections). Both report requests/s, latency percentiles and errors.

A request is `(path, headers)`; each connection cycles through the list from its own offset, so
K connections act as K clients among many users (sessions, jobs).
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import log, percentile

Request = tuple[str, dict[str, str]]

_WRK_LUA = r"""
local reqs = {}
local idx = 0
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local parts = {}
    for field in string.gmatch(line, "([^\t]*)\t?") do table.insert(parts, field) end
    local path = parts[1]
    local headers = {}
    local i = 2
    while parts[i] and parts[i] ~= "" and parts[i + 1] do
      headers[parts[i]] = parts[i + 1]
      i = i + 2
    end
    if path and path ~= "" then table.insert(reqs, wrk.format("GET", path, headers)) end
  end
  f:close()
  idx = ((id or 0) * 7919) % #reqs
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def ensure_wrk() -> str | None:
    """Path of wrk, installing it with apt-get when running as root; None if unavailable."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk (apt-get install -y wrk)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                           timeout=300)
            found = shutil.which("wrk")
            if found:
                return found
    return None


def run_wrk(wrk: str, base_url: str, requests: list[Request], *, connections: int, duration: float,
            work: Path, cpu: str | None = None, threads: int | None = None) -> dict[str, Any]:
    script = work / "rotate.lua"
    script.write_text(_WRK_LUA)
    listing = work / f"requests-{time.monotonic_ns()}.tsv"
    with listing.open("w") as fh:
        for path, headers in requests:
            fh.write("\t".join([path, *(x for kv in headers.items() for x in kv)]) + "\n")
    threads = threads or max(1, min(2, connections))
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "5s",
               "-s", str(script), base_url, "--", str(listing)]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    raw = json.loads(line[len("WRKJSON "):])
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {
        "tool": "wrk",
        "requests": raw["requests"],
        "seconds": seconds,
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
        "error_detail": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")},
        "connections": connections,
    }


def run_python(base_url: str, requests: list[Request], *, connections: int, duration: float) -> dict[str, Any]:
    """Closed loop: `connections` threads, each with one keep-alive connection, for `duration` s."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stop_at = time.monotonic() + duration
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        index = (slot * 7919) % len(requests)
        mine = latencies[slot]
        local: dict[int, int] = {}
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            path, headers = requests[index]
            index = (index + 1) % len(requests)
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                errors[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=5)
                continue
            mine.append((time.perf_counter() - t0) * 1000)
            local[status] = local.get(status, 0) + 1
            if status >= 400:
                errors[slot] += 1
        conn.close()
        with lock:
            for status, count in local.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    seconds = time.monotonic() - t0
    flat = [x for xs in latencies for x in xs]
    return {
        "tool": "python",
        "requests": len(flat),
        "seconds": seconds,
        "rps": len(flat) / seconds if seconds else 0.0,
        "p50_ms": percentile(flat, 50),
        "p90_ms": percentile(flat, 90),
        "p99_ms": percentile(flat, 99),
        "max_ms": max(flat) if flat else float("nan"),
        "errors": sum(errors),
        "statuses": statuses,
        "connections": connections,
    }
