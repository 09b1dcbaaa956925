"""Make the sandbox fixtures available to these tests.

The lead registers ``pytest_plugins = ["sii_sandbox.testing"]`` in tests/conftest.py; until then (or
when this folder runs on its own) the plugin is loaded here, once, so there is never a second copy
of the session-scoped sandbox.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    # Running `pytest tests/sii_sandbox` without the project root on sys.path.
    sys.path.insert(0, str(_ROOT))


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("sii_sandbox.testing"):
        config.pluginmanager.import_plugin("sii_sandbox.testing")
