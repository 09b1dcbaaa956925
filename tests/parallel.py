"""Isolation of the test processes when the suite runs in parallel (pytest-xdist, as `make test` does).

Loaded with `-p tests.parallel` (scripts/test.sh), so this module runs in each xdist worker before
pytest-django reads the settings. Each worker ("gw0", "gw1", …) gets:
- its own runtime folder: AUTORIZA_VAR_DIR/<worker> (embedded broker, cache, SII sandbox, logs);
- its own Redis database: the index of REDIS_URL plus the worker's number (broker queues, SII
  session leases and cache of one worker never meet another's);
- its own PostgreSQL test database, which pytest-django already names after the worker.
Processes a test starts (Celery workers, the sandbox, the demo) inherit these through the environment.

Tests that measure time or kill workers (marker `faults`) run in a part of their own, in one process,
after the parallel part (scripts/test.sh), so their figures are not taken against another test's load.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _redis_url_for(url: str, offset: int) -> str:
    """`url` with its database index moved up by `offset` (index 0 when the URL names none)."""
    match = re.match(r"^(?P<base>rediss?://[^/?#]*)(?:/(?P<db>\d+))?(?P<rest>[?#].*)?$", url)
    if match is None:
        return url
    db = int(match.group("db") or 0) + offset
    return f"{match.group('base')}/{db}{match.group('rest') or ''}"


if WORKER.startswith("gw"):
    number = int(WORKER[2:])
    var_dir = Path(os.environ.get("AUTORIZA_VAR_DIR") or Path(__file__).resolve().parents[1] / "var" / "test") / WORKER
    var_dir.mkdir(parents=True, exist_ok=True)
    os.environ["AUTORIZA_VAR_DIR"] = str(var_dir)
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = _redis_url_for(os.environ["REDIS_URL"], number)
