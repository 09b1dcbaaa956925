"""pytest hooks (imported by tests/reliability/conftest.py and tests/security/conftest.py) that keep
the outcome and duration of every test of the two suites in `var/reliability/suite.<backend>.json`,
merged across runs (a narrowed run updates only the tests it ran), for the report."""
from __future__ import annotations

import fcntl
import json
import time
from typing import Any

import pytest

_RESULTS: dict[str, dict[str, Any]] = {}
_DESELECTED: set[str] = set()
_SUITES = ("tests/reliability/", "tests/security/")


def pytest_deselected(items: list[pytest.Item]) -> None:
    # Deselected (`-m`, `-k`) tests still exist: their earlier results are kept, not forgotten.
    _DESELECTED.update(item.nodeid for item in items)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not report.nodeid.startswith(_SUITES):
        return
    entry = _RESULTS.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0, "reason": ""})
    entry["seconds"] = round(entry["seconds"] + report.duration, 2)
    entry["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        entry["reason"] = str(report.wasxfail)
    elif report.skipped:
        entry["outcome"] = "skipped"
        if isinstance(report.longrepr, tuple):
            entry["reason"] = str(report.longrepr[2])
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _RESULTS:
        return
    from tests.reliability.support import backend_label, figures_dir

    try:
        backend = backend_label()
    except Exception:  # noqa: BLE001 - no database configured in this run: still keep the results
        backend = "unknown"
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"suite.{backend}.json"
    # In a parallel run each process merges its own tests in: one at a time (an exclusive lock).
    with (folder / f"suite.{backend}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous: dict[str, Any] = {}
        if path.exists():
            try:
                previous = json.loads(path.read_text()).get("tests", {})
            except ValueError:
                previous = {}
        # Forget tests that no longer exist in the files this session collected (renamed or removed).
        collected = {item.nodeid for item in session.items} | _DESELECTED
        files = {nodeid.split("::")[0] for nodeid in collected}
        previous = {k: v for k, v in previous.items() if k.split("::")[0] not in files or k in collected}
        previous.update(_RESULTS)
        path.write_text(json.dumps({"backend": backend, "tests": previous}, indent=2, sort_keys=True))
