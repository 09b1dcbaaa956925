"""Fixtures shared by the onboarding tests."""
from __future__ import annotations

from unittest import mock

import pytest


@pytest.fixture
def enqueued(monkeypatch):  # type: ignore[no-untyped-def]
    """Captures what would be sent to the broker: the mock standing in for
    `tasks.enrollment_job_run.delay` (its calls are the job ids enqueued, either lane; the background
    lane's `apply_async` lands here too, with its queue in `sent.queues`)."""
    from onboarding import tasks

    sent = mock.Mock()
    sent.queues = []

    def apply_async(args, queue=None, **options):  # type: ignore[no-untyped-def]
        sent.queues.append(queue)
        return sent(*args)

    monkeypatch.setattr(tasks.enrollment_job_run, "delay", sent)
    monkeypatch.setattr(tasks.enrollment_job_run, "apply_async", apply_async)
    return sent
