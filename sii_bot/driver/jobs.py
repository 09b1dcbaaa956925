"""``run_job``: the driver's entry point, one job in a fresh browser context with the flow its request needs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errors
from ..certificates import CertificateMaterial
from ..models import ProgressEvent, ReplacementRequest, RevocationRequest, UsersReadRequest
from ..settings import SiiSettings
from .enroll import EnrollFlow
from .read_users import ReadUsersFlow
from .records import Job, JobRequest, JobResult, first_line, is_playwright_error
from .replace import ReplaceFlow
from .revoke import RevokeFlow
from .session import Session, job_page

if TYPE_CHECKING:
    from playwright.async_api import Browser

__all__ = ["flow_for", "run_job"]


def flow_for(request: JobRequest) -> type[Session]:
    """The flow class that carries out ``request``."""
    if isinstance(request, RevocationRequest):
        return RevokeFlow
    if isinstance(request, ReplacementRequest):
        return ReplaceFlow
    if isinstance(request, UsersReadRequest):
        return ReadUsersFlow
    return EnrollFlow


async def run_job(
    browser: Browser,
    request: JobRequest,
    certificate: CertificateMaterial,
    settings: SiiSettings,
    emit: Callable[[ProgressEvent], None],
    cancelled: threading.Event | None = None,
) -> JobResult:
    """Run one job in a fresh context of ``browser`` (call it in the thread that owns Playwright).

    ``request`` decides the job: ``EnrollmentRequest`` → ``EnrollmentResult``, ``RevocationRequest``
    → ``RevocationResult``, ``ReplacementRequest`` → ``ReplacementResult``, ``UsersReadRequest`` →
    ``UsersReadResult`` (which reports its failures per company instead of raising). ``emit`` receives every
    ``ProgressEvent`` (in this thread). Raises an ``EnrollmentFailure`` (with step, page HTML and
    screenshot when there was a page) otherwise.
    """
    job = Job(request=request, settings=settings, emit=emit, cancelled=cancelled or threading.Event())
    blocked: list[str] = []
    async with job_page(browser, settings, certificate, blocked) as page:
        flow = flow_for(request)(page, job)
        flow.blocked = blocked
        try:
            return await flow.run()
        except errors.EnrollmentFailure as failure:
            await flow.evidence(failure)
            raise
        except Exception as exc:  # turn Playwright/bot errors into typed failures
            failure = flow.playwright_failure(exc, f"step {flow.step.value if flow.step else '?'}")
            if isinstance(failure, errors.UnexpectedPage) and not is_playwright_error(exc):
                failure = errors.InternalError(f"{type(exc).__name__}: {first_line(exc)}")
            raise await flow.evidence(failure) from exc
