"""A long-lived browser in its own thread, shared by enrolment, revocation and replacement jobs.

Playwright runs on an asyncio loop, and Django's ORM refuses to run in a thread with a running loop.
So Playwright and Chromium live in a dedicated thread owned by ``BrowserEngine``, on an event loop of
their own; callers (e.g. Celery tasks writing progress to the database, one thread each) submit jobs
and receive progress callbacks and the result *in their own thread*. One Playwright driver and one
Chromium, launched once (~0.5 s) and reused, serve up to ``max_jobs`` jobs at the same time: each job
gets a fresh browser context (cookies, storage, client certificate) that is closed afterwards. That
is what keeps a worker with several slots small: the driver and the browser process are paid once,
and each further job only adds a renderer (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .browser import driver_environment, launch_browser
from .certificates import CertificateMaterial
from .driver import run_job
from .driver.records import JobRequest, JobResult
from .models import (
    EnrollmentRequest,
    EnrollmentResult,
    ProgressEvent,
    ReplacementRequest,
    ReplacementResult,
    RevocationRequest,
    RevocationResult,
    UsersReadRequest,
    UsersReadResult,
)
from .settings import JOB_GRACE_SECONDS, SiiSettings

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

__all__ = [
    "BrowserEngine",
    "close_default_engine",
    "default_engine",
    "enroll",
    "read_users",
    "read_users_budget",
    "replace",
    "revoke",
]


log = logging.getLogger(__name__)

# Extra time the caller waits beyond the job budget before declaring the job stuck (logout and
# context teardown happen after the budget). Defined with the settings: the portal's start-up check
# of the job reaper's threshold reads it too.
_GRACE_SECONDS = JOB_GRACE_SECONDS
# How long a caller gives the browser thread's loop to answer before deciding the thread is stuck.
_LOOP_RESPONSE_SECONDS = 5.0


@dataclass
class _SubmittedJob:
    request: JobRequest
    certificate: CertificateMaterial
    settings: SiiSettings
    outbox: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Set by the browser thread when the job gets a slot (jobs beyond max_jobs wait for one).
    taken: threading.Event = field(default_factory=threading.Event)
    # The job's task on the browser thread's loop (set and read only there).
    task: asyncio.Task[None] | None = None


@dataclass
class _Runtime:
    """What the browser thread owns; only that thread's loop touches it."""

    key: tuple[Any, ...] | None = None
    playwright: Playwright | None = None
    browser: Browser | None = None
    # Jobs currently holding the browser.
    active: int = 0


class BrowserEngine:
    """Runs SII jobs in one background thread that owns Playwright and a reusable Chromium.

    Thread-safe: any number of threads may call ``enroll``/``revoke``/``replace``. Up to ``max_jobs``
    jobs run at the same time, each in its own browser context of the one Chromium (``None``: no
    limit, the callers bound it, e.g. a Celery worker's slots); further jobs wait for a slot. Use as
    a context manager or call ``close()``.
    """

    def __init__(self, name: str = "sii-bot-browser", *, max_jobs: int | None = 1) -> None:
        if max_jobs is not None and max_jobs < 1:
            raise ValueError("max_jobs must be at least 1 (or None for no limit)")
        self._name = name
        self._max_jobs = max_jobs
        self._thread: _BrowserThread | None = None
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

    def read_users(
        self,
        request: UsersReadRequest,
        certificate: CertificateMaterial,
        settings: SiiSettings,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> UsersReadResult:
        """Read the authorized users of every company of ``request`` in one SII session (one login,
        logout always); nothing is ever saved.

        Returns a ``UsersReadResult`` with one ``CompanyUsersRead`` per company, in order: its users,
        or its typed failure as a dict. A company the holder may not administer fails alone; a
        failure of the session (login refused, too many sessions, outage...) is given to the company
        being read and every one after it. Only failures outside the run (no browser, the budget
        spent, a callback that raised) are raised, as for ``enroll``. The time budget is
        ``read_users_budget(settings, n)``. Steps: ``Step.flow("read_users")``, with COMPANY and
        USER_LIST once per company (their messages name it). Same threading and callback rules as
        ``enroll``.
        """
        if not isinstance(request, UsersReadRequest):
            raise TypeError(f"read_users() needs a UsersReadRequest, not {type(request).__name__}")
        budget = read_users_budget(settings, len(request.company_ruts))
        return self._run(request, certificate, settings.replace(job_timeout_seconds=budget),  # type: ignore[return-value]
                         on_progress)

    def _run(
        self,
        request: JobRequest,
        certificate: CertificateMaterial,
        settings: SiiSettings,
        on_progress: Callable[[ProgressEvent], None] | None,
    ) -> JobResult:
        job = _SubmittedJob(request=request, certificate=certificate, settings=settings)
        thread = self._submit(job)
        try:
            return self._await(thread, job, on_progress)
        except BaseException:
            # Also for KeyboardInterrupt or Celery's SoftTimeLimitExceeded raised in this thread: stop
            # the browser-side job at its next step boundary (it logs out) instead of letting it run on.
            job.cancelled.set()
            raise

    def _await(
        self, thread: _BrowserThread, job: _SubmittedJob, on_progress: Callable[[ProgressEvent], None] | None
    ) -> JobResult:
        """Pump ``job``'s progress into ``on_progress`` until its result or failure arrives."""
        settings = job.settings
        callback_error: BaseException | None = None
        budget = settings.job_timeout_seconds + _GRACE_SECONDS
        # Time spent waiting for a slot does not count against this job, within reason.
        queued_until = time.monotonic() + 3 * budget
        deadline: float | None = None
        while True:
            if deadline is None and job.taken.is_set():
                deadline = time.monotonic() + budget
            remaining = (deadline if deadline is not None else queued_until) - time.monotonic()
            if remaining <= 0:
                job.cancelled.set()
                if thread.cancel(job):
                    detail = "it was cancelled"
                else:
                    # The loop itself does not answer: every job on it is stuck. Leave the thread
                    # behind (a daemon) and let the next job start a fresh one.
                    self._abandon_thread(thread)
                    detail = "the browser thread did not answer; it was abandoned and a new one will be started"
                raise errors.JobTimeout(
                    f"the job did not finish within {settings.job_timeout_seconds:.0f} s "
                    f"+ {_GRACE_SECONDS:.0f} s; {detail}"
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
        """Stop the browser thread once its jobs are done (closing Chromium and Playwright's driver);
        idempotent."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()
            if thread.thread is not threading.current_thread():
                thread.thread.join(timeout=30)

    def __enter__(self) -> BrowserEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- caller side ---------------------------------------------------------------------------------

    def _submit(self, job: _SubmittedJob) -> _BrowserThread:
        with self._lock:
            if self._closed:
                raise errors.BrowserUnavailable("the BrowserEngine is closed")
            if self._thread is None or not self._thread.thread.is_alive():
                self._thread = _BrowserThread(self._name, self._max_jobs)
            self._thread.submit(job)
            return self._thread

    def _abandon_thread(self, thread: _BrowserThread) -> None:
        """Forget a stuck browser thread: the next job starts a fresh one (the old one is a daemon and
        stops, if it ever wakes up, once its jobs are done)."""
        with self._lock:
            if self._thread is thread:
                self._thread = None
        thread.stop()


class _BrowserThread:
    """A thread running the event loop that owns Playwright, Chromium and the jobs' tasks.

    ``submit``, ``cancel`` and ``stop`` may be called from any thread; everything else runs on the loop.
    """

    def __init__(self, name: str, max_jobs: int | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.runtime = _Runtime()
        self._tasks: set[asyncio.Task[None]] = set()
        # Created here, bound to the loop when first used on it.
        self._slots = asyncio.Semaphore(max_jobs) if max_jobs is not None else None
        self._browser_change = asyncio.Condition()
        self._stop = asyncio.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    # -- any thread ----------------------------------------------------------------------------------

    def submit(self, job: _SubmittedJob) -> None:
        self.loop.call_soon_threadsafe(self._start, job)

    def stop(self) -> None:
        """Finish the jobs already submitted, then close the browser and end the thread."""
        try:
            self.loop.call_soon_threadsafe(self._stop.set)
        except RuntimeError:  # the loop is already closed
            pass

    def cancel(self, job: _SubmittedJob) -> bool:
        """Cancel ``job``'s task; False when the loop did not answer within a few seconds (stuck)."""
        done = concurrent.futures.Future[None]()

        def cancel_task() -> None:
            if job.task is not None:
                job.task.cancel()
            done.set_result(None)

        try:
            self.loop.call_soon_threadsafe(cancel_task)
            done.result(timeout=_LOOP_RESPONSE_SECONDS)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return False
        return True

    # -- the loop ------------------------------------------------------------------------------------

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        try:
            await self._stop.wait()
            # Jobs submitted before the stop (running, or waiting for a slot) still run.
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            await _shutdown(self.runtime)

    def _start(self, job: _SubmittedJob) -> None:
        job.task = self.loop.create_task(self._run(job))
        self._tasks.add(job.task)
        job.task.add_done_callback(self._tasks.discard)

    async def _run(self, job: _SubmittedJob) -> None:
        try:
            if self._slots is None:
                await self._process(job)
            else:
                async with self._slots:
                    await self._process(job)
        except asyncio.CancelledError:
            # Cancelled by its caller (time budget spent): the caller has already given up on it.
            job.outbox.put(("failure", errors.JobCancelled("cancelled by the caller")))

    async def _process(self, job: _SubmittedJob) -> None:
        job.taken.set()
        if job.cancelled.is_set():
            # The caller gave up while the job waited for a slot: never start it.
            job.outbox.put(("failure", errors.JobCancelled("cancelled before it started")))
            return
        emitted: list[ProgressEvent] = []

        def emit(event: ProgressEvent) -> None:
            emitted.append(event)
            job.outbox.put(("progress", event))

        try:
            for attempt in (1, 2):
                browser = await self._acquire_browser(job.settings)
                try:
                    result = await run_job(browser, job.request, job.certificate, job.settings, emit, job.cancelled)
                    break
                except errors.BrowserCrashed:
                    # A browser that died while idle is only noticed when the next job uses it. Nothing
                    # was sent to SII yet (no step started), so run the job once more: the next
                    # acquisition relaunches a browser that is no longer connected. (A crashed page
                    # alone leaves the browser, and the other jobs on it, as they are.)
                    if emitted or attempt == 2:
                        raise
                    log.warning("Chromium was gone; relaunching it for this job")
                finally:
                    await self._release_browser()
            job.outbox.put(("result", result))
        except errors.EnrollmentFailure as failure:
            job.outbox.put(("failure", failure))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - never let a job end without an answer
            log.exception("unexpected error in the SII browser thread")
            job.outbox.put(("failure", errors.InternalError(f"{type(exc).__name__}: {exc}")))

    async def _acquire_browser(self, settings: SiiSettings) -> Browser:
        """A connected browser for ``settings``, (re)starting Playwright and Chromium when needed
        (``_release_browser`` when done). A job with other launch settings waits until the jobs on the
        current browser are done; a browser that is no longer connected is replaced at once (the jobs
        still on it have lost it anyway)."""
        runtime = self.runtime
        key = _launch_key(settings)
        async with self._browser_change:
            while runtime.active and runtime.key != key:
                await self._browser_change.wait()
            browser = runtime.browser
            if runtime.key != key or browser is None or not browser.is_connected():
                await _shutdown(runtime)
                await _launch(runtime, settings)
                runtime.key = key
            runtime.active += 1
            assert runtime.browser is not None
            return runtime.browser

    async def _release_browser(self) -> None:
        async with self._browser_change:
            self.runtime.active -= 1
            self._browser_change.notify_all()


def read_users_budget(settings: SiiSettings, companies: int) -> float:
    """The time budget (s) of reading ``companies`` companies: a job's budget (login and the first
    company) plus, for each further company, two steps' worth (back to the company form, the list)
    and the pause before it (``company_pause_seconds``)."""
    further = max(companies - 1, 0)
    return settings.job_timeout_seconds + further * (2 * settings.step_timeout_seconds + settings.company_pause_seconds)


def _launch_key(settings: SiiSettings) -> tuple[Any, ...]:
    # NODE_EXTRA_CA_CERTS is read when the driver starts, and the executable/headless at launch: a job
    # with other values needs a fresh driver and browser.
    return (settings.ca_bundle, settings.chromium_path, settings.headless)


async def _launch(runtime: _Runtime, settings: SiiSettings) -> None:
    """Start Playwright's driver and Chromium for ``settings`` into ``runtime``."""
    # Loaded on use: the web process imports sii_bot, never Playwright; the browser thread does.
    from playwright.async_api import async_playwright

    try:
        with driver_environment(settings):
            runtime.playwright = await async_playwright().start()
    except errors.EnrollmentFailure:
        raise
    except Exception as exc:  # noqa: BLE001
        raise errors.BrowserUnavailable(f"Playwright's driver could not start: {exc}") from None
    runtime.browser = await launch_browser(runtime.playwright, settings)


async def _shutdown(runtime: _Runtime) -> None:
    """Close Chromium and stop Playwright's driver; never raises."""
    if runtime.browser is not None:
        try:
            await runtime.browser.close()
        except Exception:  # noqa: BLE001
            pass
    if runtime.playwright is not None:
        try:
            await runtime.playwright.stop()
        except Exception:  # noqa: BLE001
            pass
    runtime.browser = None
    runtime.playwright = None
    runtime.key = None


_default: BrowserEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> BrowserEngine:
    """The process-wide engine, created on first use and closed at interpreter exit.

    It runs as many jobs at once as its callers submit (a Celery worker's slots bound them): they
    share one Playwright driver and one Chromium, each in its own browser context.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = BrowserEngine(max_jobs=None)
            atexit.register(close_default_engine)
        return _default


def close_default_engine() -> None:
    """Close the process-wide engine (e.g. in a Celery ``worker_shutdown`` handler)."""
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


def read_users(
    request: UsersReadRequest,
    certificate: CertificateMaterial,
    settings: SiiSettings | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> UsersReadResult:
    """``default_engine().read_users(...)`` with ``SiiSettings.from_env()`` when no settings are given."""
    return default_engine().read_users(request, certificate, settings or SiiSettings.from_env(), on_progress)
