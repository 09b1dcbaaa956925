"""gunicorn's settings for the web service (`gunicorn -c gunicorn.conf.py portal.wsgi`, as the
Dockerfile and docker-compose.yml run it). Every value can be changed with the environment variable
named beside it.

Synchronous workers, one request at a time per process, because with them the kernel hands each new
connection to an idle process. With threaded workers (gthread, which this service used before) each
process accepts kept-alive connections while busy and its threads share one interpreter lock: under
10 staff on the dashboard, one process was seen holding every connection while the others sat idle,
and the p99 was twice that of synchronous workers on the same machine (docs/performance.md, change 12).
Synchronous workers need a proxy in front that buffers requests and responses (nginx does by
default), so that a slow client never holds a worker; docker-compose.yml asks for a TLS-terminating
proxy in front of `web` anyway. Nothing here holds a connection open: the live pages poll.
"""
from __future__ import annotations

import os


def _cores() -> int:
    # The cores this process may run on (a container's cpuset), not the host's.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# gunicorn's rule of thumb, (2 × cores) + 1: a process waiting on PostgreSQL or Redis leaves its core
# to another. WEB_CONCURRENCY is the variable gunicorn and most platforms already use for it.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cores() + 1)
worker_class = "sync"
# A request that takes longer is stuck (the slowest page, the CSV export of 10,000 clients, takes
# about a second): its worker is replaced and the client gets an error instead of waiting forever.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
graceful_timeout = 30
accesslog = "-"

# Prometheus multiprocess mode (portal/metrics.py): with PROMETHEUS_MULTIPROC_DIR set, every worker
# writes its request metrics to files there and /metrics adds them up. The folder must start empty
# (files of a previous run would be counted again) and a dead worker's gauges must be dropped.
_PROMETHEUS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def on_starting(server: object) -> None:
    if _PROMETHEUS_DIR:
        os.makedirs(_PROMETHEUS_DIR, exist_ok=True)
        for name in os.listdir(_PROMETHEUS_DIR):
            if name.endswith(".db"):
                os.remove(os.path.join(_PROMETHEUS_DIR, name))


def child_exit(server: object, worker: object) -> None:
    if _PROMETHEUS_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
