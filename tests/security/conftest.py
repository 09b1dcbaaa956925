"""Fixtures of the security suite (the worker-backed ones are shared with tests/reliability)."""
from __future__ import annotations

from tests.reliability.fixtures import routed_broker  # noqa: F401 - registered by being imported here
from tests.reliability.suite_results import (  # noqa: F401
    pytest_deselected,
    pytest_runtest_logreport,
    pytest_sessionfinish,
)
