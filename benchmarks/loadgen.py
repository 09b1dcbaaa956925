"""HTTP load generators. Closed loop (capacity): wrk (with a Lua script that rotates over per-user
requests) or, when wrk is missing and cannot be installed, a Python generator (threads, keep-alive
`http.client` connections). Open loop (latency at a fixed rate): `run_open_loop`, an asyncio client
run as `python -m benchmarks.loadgen`. All report requests/s, latency percentiles and errors.

A request is `(path, headers)`; each connection cycles through the list from its own offset, so
K connections act as K clients among many users (sessions, jobs).
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def _latency_figures(latencies_ms: list[float], seconds: float) -> dict[str, Any]:
    """Requests, duration, requests/s and latency percentiles of answered requests (ms)."""
    return {
        "requests": len(latencies_ms),
        "seconds": seconds,
        "rps": len(latencies_ms) / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies_ms, 50),
        "p90_ms": percentile(latencies_ms, 90),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms) if latencies_ms else float("nan"),
    }


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
        **_latency_figures(flat, seconds),
        "errors": sum(errors),
        "statuses": statuses,
        "connections": connections,
    }


# --- Open loop: a fixed arrival rate, latency from the moment each request was due -----------------
#
# The closed-loop generators above send the next request only when the previous one is answered, so
# they measure capacity (the server saturated) and the latency at saturation. A latency target at a
# given rate ("400 requests/s with p99 under 100 ms") needs the other model: requests arrive on a
# fixed schedule whatever the server does, and each latency is counted from the moment the request
# was due, not from when a free connection sent it, so a stall delays every request behind it and
# shows in the percentiles (wrk2's correction for coordinated omission). wrk2 is not packaged by
# Debian; this is a small asyncio client with keep-alive connections, run in its own process.


def run_open_loop(base_url: str, requests: list[Request], *, rate: float, duration: float, connections: int,
                  work: Path, cpu: str | None = None) -> dict[str, Any]:
    """Send `rate` requests/s for `duration` s over up to `connections` keep-alive connections.

    Returns the same figures as `run_wrk` plus `offered_rps`, `max_dispatch_lag_ms` (how late the
    generator itself was in sending a due request; large values mean the generator, not the server,
    was the bottleneck) and `generator_cpu_util` (the generator's CPU time / the run's duration). Runs `python -m benchmarks.loadgen` in a child process, on core `cpu` if given.
    """

    listing = work / f"open-loop-{time.monotonic_ns()}.json"
    listing.write_text(json.dumps({"base_url": base_url, "requests": requests, "rate": rate, "duration": duration,
                                   "connections": connections}))
    command = [sys.executable, "-m", "benchmarks.loadgen", str(listing)]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False,
                         cwd=Path(__file__).resolve().parent.parent)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("OPENLOOPJSON ")), None)
    if line is None:
        raise RuntimeError(f"the open-loop generator failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(line[len("OPENLOOPJSON "):])


async def _read_response(reader: Any) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; (status, whether the connection may be reused)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length: int | None = None
    chunked = False
    keep_alive = True
    for raw in lines[1:]:
        name, _, value = raw.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF (the last one: just CRLF)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    elif length is None and status not in (204, 304) and status >= 200:
        await reader.read()  # no length: the body ends when the server closes
        keep_alive = False
    return status, keep_alive


async def _open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(spec["base_url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rate, duration, connections = float(spec["rate"]), float(spec["duration"]), int(spec["connections"])
    payloads = []
    for path, headers in spec["requests"]:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
        payloads.append(("\r\n".join(lines) + "\r\n\r\n").encode())
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = {"connect": 0, "read": 0, "status": 0, "timeout": 0}
    lag = [0.0]
    last_done = [0.0]

    async def connection() -> None:
        reader = writer = None
        while True:
            item = await queue.get()
            if item is None:
                break
            due, payload = item
            try:
                if writer is None:
                    try:
                        reader, writer = await asyncio.open_connection(host, port)
                    except OSError:
                        errors["connect"] += 1
                        continue
                    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                writer.write(payload)
                status, keep_alive = await asyncio.wait_for(_read_response(reader), 5.0)
            except TimeoutError:  # before OSError, of which it is a subclass
                errors["timeout"] += 1
                keep_alive, status = False, 0
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                errors["read"] += 1
                keep_alive, status = False, 0
            if status:
                latencies.append((loop.time() - due) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 400:
                    errors["status"] += 1
                last_done[0] = loop.time()
            if not keep_alive and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    cpu_start = time.process_time()
    start = loop.time() + 0.05
    total = int(rate * duration)
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lag[0] = max(lag[0], loop.time() - due)
        queue.put_nowait((due, payloads[(i * 7919) % len(payloads)]))
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    seconds = max(last_done[0], start + duration) - start
    generator_cpu = time.process_time() - cpu_start
    return {
        "tool": "open loop (asyncio)",
        "offered_rps": rate,
        **_latency_figures(latencies, seconds),
        "errors": sum(errors.values()),
        "error_detail": errors,
        "statuses": statuses,
        "connections": connections,
        "max_dispatch_lag_ms": lag[0] * 1000,
        # The generator's own share of a core, to say how the machine was split between it and the server.
        "generator_cpu_util": generator_cpu / seconds if seconds else None,
    }


if __name__ == "__main__":
    import asyncio
    import sys

    figures = asyncio.run(_open_loop(json.loads(Path(sys.argv[1]).read_text())))
    print("OPENLOOPJSON " + json.dumps(figures), flush=True)
