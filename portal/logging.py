"""Log formatting: plain text (the default) or one JSON object per line (LOG_FORMAT=json), and the job
context (job id, firm slug) stamped on every line logged while a worker runs a job.

The JSON formatter writes a fixed set of fields and nothing else: whatever a caller passes in
`extra=` (or a library attaches to the record) never reaches the output, so a password or key
material handed to a log call by mistake is not written out through it. The message itself is the
caller's responsibility: nothing in the code logs certificate or key material (tests scan the logs).
"""
from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_job_id: contextvars.ContextVar[str] = contextvars.ContextVar("autoriza_log_job_id", default="")
_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("autoriza_log_tenant", default="")

# The only fields a JSON line has, in this order. "job_id" and "tenant" appear when set.
JSON_FIELDS = ("time", "level", "logger", "message", "process", "thread", "job_id", "tenant", "exception")


def job_context_set(*, job_id: str, tenant: str) -> tuple[contextvars.Token[str], contextvars.Token[str]]:
    """Stamp `job_id` and `tenant` (the firm's slug) on every line this thread (or asyncio task) logs
    from now on; returns the tokens `job_context_reset` takes to undo it."""
    return _job_id.set(job_id), _tenant.set(tenant)


def job_context_reset(tokens: tuple[contextvars.Token[str], contextvars.Token[str]]) -> None:
    """Undo a `job_context_set` (the lines that follow carry no job)."""
    _job_id.reset(tokens[0])
    _tenant.reset(tokens[1])


def job_context_clear() -> None:
    """End the job context of this thread (the lines that follow carry no job)."""
    _job_id.set("")
    _tenant.set("")


@contextmanager
def job_log_context(*, job_id: str, tenant: str) -> Iterator[None]:
    """Within the block, every line logged by this thread carries `job_id` and `tenant`."""
    tokens = job_context_set(job_id=job_id, tenant=tenant)
    try:
        yield
    finally:
        job_context_reset(tokens)


class JobContextFilter(logging.Filter):
    """Copies the current job context onto each record (`record.job_id`, `record.tenant`, empty
    strings outside a job). Attached to the handler, so that third-party loggers get it too."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = _job_id.get()
        record.tenant = _tenant.get()
        return True


class TextFormatter(logging.Formatter):
    """"time level logger message", plus " job=… tenant=…" on lines logged inside a job."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = getattr(record, "job_id", "")
        if job_id:
            head, newline, rest = line.partition("\n")  # after the message, before a traceback
            line = f"{head} job={job_id} tenant={getattr(record, 'tenant', '')}{newline}{rest}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line with exactly the fields in JSON_FIELDS (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        job_id = getattr(record, "job_id", "")
        if job_id:
            entry["job_id"] = str(job_id)
            entry["tenant"] = str(getattr(record, "tenant", ""))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        # ensure_ascii keeps each entry on one line whatever the message holds (newlines are escaped).
        return json.dumps(entry, ensure_ascii=True, default=str)
