"""A long-lived browser in its own thread, shared by enrolment, revocation and replacement jobs.

Playwright's sync API runs an asyncio loop in the thread that started it, and Django's ORM refuses
to run in a thread with a running loop. So Playwright and Chromium live in a dedicated thread owned
by ``BrowserEngine``; callers (e.g. a Celery task writing progress to the database) submit jobs and
receive progress callbacks and the result *in their own thread*. Chromium is launched once (~0.5 s)
and reused; each job gets a fresh context (cookies, certificate) that is closed afterwards.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .certificates import CertificateMaterial
from .models import (
    EnrollmentRequest,
    EnrollmentResult,
    ProgressEvent,
    ReplacementRequest,
    ReplacementResult,
    RevocationRequest,
    RevocationResult,
)
from .settings import SiiSettings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

__all__ = ["BrowserEngine", "enroll", "revoke", "replace", "default_engine", "close_default_engine"]

_Request = EnrollmentRequest | RevocationRequest | ReplacementRequest

log = logging.getLogger(__name__)

# Extra time the caller waits beyond the job budget before declaring the browser thread stuck
# (logout and context teardown happen after the budget).
_GRACE_SECONDS = 30.0


@dataclass
class _Job:
    request: _Request
    certificate: CertificateMaterial
    settings: SiiSettings
    outbox: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Set by the browser thread when it takes the job (jobs queue up behind each other).
    taken: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Runtime:
    """What the browser thread owns; only that thread touches it."""

    key: tuple[Any, ...] | None = None
    manager: Any = None  # the started sync_playwright() object
    playwright: Playwright | None = None
    browser: Browser | None = None


class BrowserEngine:
    """Runs SII jobs in one background thread that owns Playwright and a reusable Chromium.

    Thread-safe: any number of threads may call ``enroll``/``revoke``/``replace``; jobs run one at a time in the browser
    thread (Chromium contexts are cheap, but SII throttles parallel logins of a holder anyway).
    Use as a context manager or call ``close()``.
    """

    def __init__(self, name: str = "sii-bot-browser") -> None:
        self._name = name
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- public API ----------------------------------------------------------------------------------

    def enroll(
        self,
        request: EnrollmentRequest,
        certificate: CertificateMaterial,
        settings: SiiSettings,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> EnrollmentResult:
        """Run one enrolment and return its ``EnrollmentResult``; raises an ``EnrollmentFailure``.

        ``on_progress`` is called in the caller's thread for every ``ProgressEvent``. If it raises,
        the job is stopped at the next step boundary (after logging out) and that exception is
        re-raised here once the browser thread is done with the job.
        """
        if isinstance(request, (RevocationRequest, ReplacementRequest)):
            # Never let a removal slip in through enroll(): it would delete a user.
            raise TypeError(f"enroll() needs an EnrollmentRequest, not {type(request).__name__}; "
                            "use revoke() or replace()")
        return self._run(request, certificate, settings, on_progress)  # type: ignore[return-value]

    def revoke(
        self,
        request: RevocationRequest,
        certificate: CertificateMaterial,
        settings: SiiSettings,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> RevocationResult:
        """Remove ``request.user_rut`` from the company's authorized users; returns a ``RevocationResult``.

        Outcome "revoked" (deleted on the edit screen and no longer on the list, read again) or
        "not_present" (not on the list: nothing saved). Steps: ``Step.flow("revoke")``. Failures are
        ``EnrollmentFailure``s as for ``enroll`` (plus ``EditScreenMismatch``, ``DeleteUnavailable``,
        ``UserStillPresent``, ``VerificationFailed``). Same threading and callback rules as ``enroll``.
        """
        if not isinstance(request, RevocationRequest):
            raise TypeError(f"revoke() needs a RevocationRequest, not {type(request).__name__}")
        return self._run(request, certificate, settings, on_progress)  # type: ignore[return-value]

    def replace(
        self,
        request: ReplacementRequest,
        certificate: CertificateMaterial,
        settings: SiiSettings,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> ReplacementResult:
        """Authorize ``request.new_user_rut``, then remove ``request.old_user_rut``, in one SII session.

        Returns a ``ReplacementResult`` (outcome "replaced"; ``add_outcome`` created / updated /
        already_authorized, ``remove_outcome`` revoked / not_present). If the addition fails, nothing is
        removed and the failure has ``phase == "add"``. If the removal fails after the addition, the
        failure is a ``ReplacementIncomplete`` (``phase == "remove"``, ``addition`` = the new
        representative's ``EnrollmentResult``, ``cause`` = what stopped the removal, retry policy of the
        cause). Running the same request again is safe and completes the job. Steps:
        ``Step.flow("replace")``.
        """
        if not isinstance(request, ReplacementRequest):
            raise TypeError(f"replace() needs a ReplacementRequest, not {type(request).__name__}")
        return self._run(request, certificate, settings, on_progress)  # type: ignore[return-value]

    def _run(
        self,
        request: _Request,
        certificate: CertificateMaterial,
        settings: SiiSettings,
        on_progress: Callable[[ProgressEvent], None] | None,
    ) -> EnrollmentResult | RevocationResult | ReplacementResult:
        job = _Job(request=request, certificate=certificate, settings=settings)
        self._submit(job)
        try:
            return self._await(job, on_progress)
        except BaseException:
            # Also for KeyboardInterrupt or Celery's SoftTimeLimitExceeded raised in this thread: stop
            # the browser-side job at its next step boundary (it logs out) instead of letting it run on.
            job.cancelled.set()
            raise

    def _await(
        self, job: _Job, on_progress: Callable[[ProgressEvent], None] | None
    ) -> EnrollmentResult | RevocationResult | ReplacementResult:
        """Pump ``job``'s progress into ``on_progress`` until its result or failure arrives."""
        settings = job.settings
        callback_error: BaseException | None = None
        budget = settings.job_timeout_seconds + _GRACE_SECONDS
        # Time spent queued behind other jobs does not count against this job, within reason.
        queued_until = time.monotonic() + 3 * budget
        deadline: float | None = None
        while True:
            if deadline is None and job.taken.is_set():
                deadline = time.monotonic() + budget
            remaining = (deadline if deadline is not None else queued_until) - time.monotonic()
            if remaining <= 0:
                job.cancelled.set()
                self._abandon_thread()
                raise errors.JobTimeout(
                    f"the browser thread did not finish the job within {settings.job_timeout_seconds:.0f} s "
                    f"+ {_GRACE_SECONDS:.0f} s; it was abandoned and a new one will be started"
                )
            try:
                kind, payload = job.outbox.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if kind == "progress":
                if on_progress is not None and callback_error is None:
                    try:
                        on_progress(payload)
                    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the job stops
                        callback_error = exc
                        job.cancelled.set()
                continue
            if callback_error is not None:
                raise callback_error
            if kind == "result":
                return payload  # type: ignore[no-any-return]
            raise payload

    def close(self) -> None:
        """Stop the browser thread (closing Chromium and Playwright's driver); idempotent."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._thread = None
            if thread is not None:
                self._jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def __enter__(self) -> BrowserEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- caller side ---------------------------------------------------------------------------------

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise errors.BrowserUnavailable("the BrowserEngine is closed")
            if self._thread is None or not self._thread.is_alive():
                self._jobs = queue.Queue()
                self._thread = threading.Thread(target=self._serve, args=(self._jobs,), name=self._name,
                                                daemon=True)
                self._thread.start()
            self._jobs.put(job)

    def _abandon_thread(self) -> None:
        """Forget a stuck browser thread: the next job starts a fresh one (the old one is a daemon)."""
        with self._lock:
            if self._thread is not None:
                self._jobs.put(None)  # if it ever wakes up, it stops
                self._thread = None

    # -- browser thread ------------------------------------------------------------------------------

    def _serve(self, jobs: queue.Queue[_Job | None]) -> None:
        runtime = _Runtime()
        try:
            while True:
                job = jobs.get()
                if job is None:
                    break
                self._process(runtime, job)
        finally:
            _shutdown(runtime)

    def _process(self, runtime: _Runtime, job: _Job) -> None:
        from .driver import run_job

        job.taken.set()
        if job.cancelled.is_set():
            # The caller gave up while the job was queued: never start it.
            job.outbox.put(("failure", errors.JobCancelled("cancelled before it started")))
            return
        emitted: list[ProgressEvent] = []

        def emit(event: ProgressEvent) -> None:
            emitted.append(event)
            job.outbox.put(("progress", event))

        try:
            for attempt in (1, 2):
                browser = _ensure_browser(runtime, job.settings)
                try:
                    result = run_job(browser, job.request, job.certificate, job.settings, emit, job.cancelled)
                    break
                except errors.BrowserCrashed:
                    # A browser that died while idle is only noticed when the next job uses it. Nothing
                    # was sent to SII yet (no step started), so relaunch and run the job once more.
                    _shutdown(runtime)
                    if emitted or attempt == 2:
                        raise
                    log.warning("Chromium was gone; relaunching it for this job")
            job.outbox.put(("result", result))
        except errors.EnrollmentFailure as failure:
            if isinstance(failure, errors.BrowserCrashed):
                _shutdown(runtime)  # the next job relaunches everything
            job.outbox.put(("failure", failure))
        except BaseException as exc:  # noqa: BLE001 - never let the browser thread die silently
            log.exception("unexpected error in the SII browser thread")
            _shutdown(runtime)
            job.outbox.put(("failure", errors.InternalError(f"{type(exc).__name__}: {exc}")))


def _launch_key(settings: SiiSettings) -> tuple[Any, ...]:
    # NODE_EXTRA_CA_CERTS is read when the driver starts, and the executable/headless at launch: a job
    # with other values needs a fresh driver and browser.
    return (settings.ca_bundle, settings.chromium_path, settings.headless)


def _ensure_browser(runtime: _Runtime, settings: SiiSettings) -> Browser:
    """Return a connected browser for ``settings``, (re)starting Playwright/Chromium when needed."""
    from playwright.sync_api import sync_playwright

    from .browser import driver_environment, launch_browser

    key = _launch_key(settings)
    if runtime.key != key or runtime.browser is None or not runtime.browser.is_connected():
        _shutdown(runtime)
        try:
            with driver_environment(settings):
                manager = sync_playwright()
                runtime.playwright = manager.start()
            runtime.manager = manager
        except errors.EnrollmentFailure:
            raise
        except Exception as exc:  # noqa: BLE001
            raise errors.BrowserUnavailable(f"Playwright's driver could not start: {exc}") from None
        runtime.browser = launch_browser(runtime.playwright, settings)
        runtime.key = key
    assert runtime.browser is not None
    return runtime.browser


def _shutdown(runtime: _Runtime) -> None:
    """Close Chromium and stop Playwright's driver; never raises."""
    if runtime.browser is not None:
        try:
            runtime.browser.close()
        except Exception:  # noqa: BLE001
            pass
    if runtime.playwright is not None:
        try:
            runtime.playwright.stop()
        except Exception:  # noqa: BLE001
            pass
    runtime.browser = None
    runtime.playwright = None
    runtime.manager = None
    runtime.key = None


_default: BrowserEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> BrowserEngine:
    """The process-wide engine, created on first use and closed at interpreter exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = BrowserEngine()
            atexit.register(close_default_engine)
        return _default


def close_default_engine() -> None:
    """Close the process-wide engine (e.g. in a Celery ``worker_process_shutdown`` handler)."""
    global _default
    with _default_lock:
        engine, _default = _default, None
    if engine is not None:
        engine.close()


def enroll(
    request: EnrollmentRequest,
    certificate: CertificateMaterial,
    settings: SiiSettings | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> EnrollmentResult:
    """``default_engine().enroll(...)`` with ``SiiSettings.from_env()`` when no settings are given."""
    return default_engine().enroll(request, certificate, settings or SiiSettings.from_env(), on_progress)


def revoke(
    request: RevocationRequest,
    certificate: CertificateMaterial,
    settings: SiiSettings | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> RevocationResult:
    """``default_engine().revoke(...)`` with ``SiiSettings.from_env()`` when no settings are given."""
    return default_engine().revoke(request, certificate, settings or SiiSettings.from_env(), on_progress)


def replace(
    request: ReplacementRequest,
    certificate: CertificateMaterial,
    settings: SiiSettings | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> ReplacementResult:
    """``default_engine().replace(...)`` with ``SiiSettings.from_env()`` when no settings are given."""
    return default_engine().replace(request, certificate, settings or SiiSettings.from_env(), on_progress)
