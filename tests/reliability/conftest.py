"""Fixtures of the reliability suite: real worker processes (tests/fixtures/worker.py), the SII
sandbox, and short recovery thresholds for the test process (workers get them through `FAST_ENV`)."""
from __future__ import annotations

from tests.onboarding.conftest import enqueued  # noqa: F401 - the broker stand-in of the fast tests here
from tests.reliability.fixtures import (  # noqa: F401 - fixtures are registered by being imported here
    FAST_ENV,
    demo_bundle,
    fast_jobs,
    routed_broker,
    start_scheduler,
    worker_env,
)
from tests.reliability.suite_results import (  # noqa: F401
    pytest_deselected,
    pytest_runtest_logreport,
    pytest_sessionfinish,
)
