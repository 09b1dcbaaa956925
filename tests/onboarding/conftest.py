"""Fixtures shared by the onboarding tests."""
from __future__ import annotations

from unittest import mock

import pytest


@pytest.fixture
def enqueued(monkeypatch):  # type: ignore[no-untyped-def]
    """Captures what would be sent to the broker: the mock standing in for
    `tasks.enrollment_job_run.delay` (its calls are the job ids enqueued)."""
    from onboarding import tasks

    sent = mock.Mock()
    monkeypatch.setattr(tasks.enrollment_job_run, "delay", sent)
    return sent
