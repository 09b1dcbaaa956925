"""What the bot does on a page: the labels it looks for (``Labels``) and ``Controls``, the page-level
mechanics every flow is built on (the JavaScript it runs in the page is in ``scripts``).

``Controls`` runs in the engine's browser thread, on its event loop (Playwright's async API). On its
page it:

- records every JavaScript dialog (SII reports errors with ``alert()`` + ``history.back()``) and
  accepts it (the certificate entry page needs its ``confirm()`` accepted), except a ``confirm()``
  about deleting something, which is dismissed unless the flow is deleting on purpose;
- reads the decoded page and turns SII error texts, alerts, WAF pages and a login page that comes
  back mid-flow into typed ``EnrollmentFailure``s;
- waits until the expected form or text is there, or stops with ``UnexpectedPage`` carrying the HTML
  and a screenshot; HTTP status codes are never trusted either way (a 5xx counts only when the page
  is not the expected one);
- requests a page again, with a short backoff, when SII answered it with a server error or its
  generic "No ha sido posible completar su solicitud" (``retry_transient``), never a save;
- clicks controls by visible label and fills inputs by field name, in one round trip per frame;
- reports each step's progress (``stage``), with screenshots of evidence pages.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from .. import errors
from ..html import fold
from ..models import ProgressEvent, Step, StepStatus
from ..screens import classify_message, detect_error, is_delete_confirmation, is_login_page
from .records import Document, Done, Job, SeenDialog, Snapshot, first_line, is_playwright_error
from .scripts import JS_CLICK_CONTROL, JS_FILL, JS_SNAPSHOT

if TYPE_CHECKING:
    from playwright.async_api import Dialog, Frame, Page, Request, Response, Route

__all__ = ["Controls"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a loaded page must stay unchanged, with no navigation in flight, before the bot decides
# it is not going to turn into the expected page (SII's pages redirect from JavaScript right away).
_QUIET_SECONDS = 0.6
_POLL_SECONDS = 0.01


def _is_main_frame(request: Request) -> bool:
    try:
        return request.frame.parent_frame is None
    except Exception:  # noqa: BLE001 - a request without a frame (service worker...)
        return False


class Controls:
    """Page-level mechanics of one job on one page (single use): events, time budget, waits, clicks,
    form filling, typed failures with evidence, and progress reporting."""

    def __init__(self, page: Page, job: Job) -> None:
        self.page = page
        self.job = job
        self.settings = job.settings
        self.deadline = job.started + self.settings.job_timeout_seconds
        # Delete confirm()s are accepted only while this is set (the bot's own delete action).
        self.delete_armed = False
        self.delete_confirms: list[str] = []
        self.dialogs: list[SeenDialog] = []
        self.dialogs_seen = 0
        self.navigations = 0
        self.pending: set[Request] = set()
        self.step: Step | None = None
        # Origins outside the configured SII origins the context refused (filled by its route).
        self.blocked: list[str] = []
        self.session_lost: str | None = None
        # The main frame's current document and the one whose error is being handled.
        self.document: Document | None = None
        self.failed_document: Document | None = None
        self._replaying: Document | None = None
        # In-attempt retries of the current page (reset when a page turns out as expected).
        self.replays = 0
        # Set from the click of a save until the user list is read again: never request it again.
        self.saving = False
        page.on("dialog", self._on_dialog)
        page.on("response", self._on_response)
        page.on("framenavigated", self._on_navigated)
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_request_done)
        page.on("requestfailed", self._on_request_done)

    # -- events --------------------------------------------------------------------------------------

    def _in_login(self) -> bool:
        return self.step in (None, Step.OPEN_PAGE, Step.LOGIN)

    async def _on_dialog(self, dialog: Dialog) -> None:
        kind, message = dialog.type, dialog.message
        # A confirm() about deleting is accepted only during the bot's own delete action (revocations);
        # anywhere else (e.g. while changing permissions) it is dismissed.
        destructive = kind == "confirm" and is_delete_confirmation(message) and not self.delete_armed
        # After the login, the certificate entry's confirm() means the session died: accepting it would
        # log in again silently and replay a half-lost request, so refuse and report the expiry.
        relogin = kind == "confirm" and not self._in_login() and (
            "certificado digital" in fold(message) or is_login_page("", self.page.url)
        )
        if relogin:
            self.session_lost = self.session_lost or self.page.url
        elif kind == "confirm" and self.delete_armed:
            self.delete_confirms.append(message)
        accept = kind in ("alert", "confirm", "beforeunload") and not destructive and not relogin
        self.dialogs.append(SeenDialog(kind, message, accept, self.document))
        log.info("SII dialog (%s, %s): %s", kind, "accepted" if accept else "dismissed", message[:200])
        try:
            await (dialog.accept() if accept else dialog.dismiss())
        except Exception:  # noqa: BLE001, S110 - the page may already be gone
            pass

    def _on_navigated(self, frame: Frame) -> None:
        # Any frame counts as "the click did something" (SII pages have no known frames, but if they
        # do, a form may target one).
        self.navigations += 1
        # Login hops are too quick to be seen by polling: note them as they happen.
        if frame.parent_frame is None and not self._in_login() and is_login_page("", frame.url):
            self.session_lost = self.session_lost or frame.url

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request():
            self.pending.add(request)
            if _is_main_frame(request):
                replaying = self._replaying
                if replaying is not None and request.url == replaying.url:
                    # The retry's request is routed into the original one (method and body).
                    self.document = replaying
                else:
                    self.document = Document(request.url, request.method, request.post_data_buffer,
                                             request.headers.get("content-type"))

    def _on_response(self, response: Response) -> None:
        request = response.request
        document = self.document
        if (document is not None and request.is_navigation_request() and _is_main_frame(request)
                and request.url == document.url):
            self.document = dataclasses.replace(document, status=response.status)

    def _on_request_done(self, request: Request) -> None:
        self.pending.discard(request)
        # A redirected request never finishes by itself: its chain ends in the new request.
        previous = request.redirected_from
        while previous is not None:
            self.pending.discard(previous)
            previous = previous.redirected_from

    # -- time ----------------------------------------------------------------------------------------

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def step_deadline(self) -> float:
        """When the current step runs out of time (``time.monotonic()`` clock): step timeout or job budget."""
        return min(time.monotonic() + self.settings.step_timeout_seconds, self.deadline)

    def timeout_ms(self, cap: float | None = None) -> float:
        """A Playwright timeout (ms) for one call: the step timeout, within the job budget, at most ``cap`` s."""
        seconds = min(self.settings.step_timeout_seconds, max(self._remaining(), 0.5))
        if cap is not None:
            seconds = min(seconds, cap)
        return seconds * 1000

    def _timeout(self, what: str, page_html: str | None = None) -> errors.EnrollmentFailure:
        """``JobTimeout`` when the job budget is (about) spent, else ``StepTimeout``."""
        if self._remaining() <= 0.25:
            return errors.JobTimeout(
                f"job time budget ({self.settings.job_timeout_seconds:.0f} s) ran out: {what}", page_html=page_html
            )
        return errors.StepTimeout(f"{what} (step timeout {self.settings.step_timeout_seconds:.0f} s)",
                                  page_html=page_html)

    async def sleep(self) -> None:
        """Wait one poll interval; ``wait_for_timeout`` keeps Playwright's event loop turning (dialogs,
        navigations)."""
        await self.page.wait_for_timeout(_POLL_SECONDS * 1000)

    # -- page access ---------------------------------------------------------------------------------

    def frames(self) -> list[Frame]:
        """The page's frames, main frame first."""
        main = self.page.main_frame
        return [main] + [f for f in self.page.frames if f is not main]

    async def snapshot(self) -> Snapshot | None:
        """URL + HTML (all frames) of the current page, or None while it is being replaced."""
        try:
            url = self.page.url
            parts: list[str] = []
            fields: set[str] = set()
            controls: list[str] = []
            ready = True
            for frame in self.frames():
                html, state, frame_fields, frame_controls = await frame.evaluate(JS_SNAPSHOT)
                parts.append(html)
                fields.update(frame_fields)
                controls.extend(frame_controls)
                ready = ready and state == "complete"
            return Snapshot(url, "\n".join(parts), ready, frozenset(fields), tuple(controls))
        except Exception:  # noqa: BLE001 - "page is navigating", context destroyed, ...
            return None

    async def screenshot(self) -> bytes | None:
        """PNG of the page when screenshots are enabled; None on any problem (never fails the job)."""
        if not self.settings.screenshots:
            return None
        try:
            return await self.page.screenshot(type="png", full_page=True, timeout=self.timeout_ms(cap=10))
        except Exception:  # noqa: BLE001
            return None

    async def evidence(self, failure: errors.EnrollmentFailure) -> errors.EnrollmentFailure:
        """Complete ``failure`` with the current step, the page HTML and a screenshot (what is missing)."""
        if failure.step is None and self.step is not None:
            failure.step = self.step.value
        if self.pending and failure.page_html is None:
            # A navigation is still in flight (typically a timeout): reading the page would block until
            # it commits, and what it shows is the previous page anyway.
            return failure
        if failure.page_html is None:
            snap = await self.snapshot()
            failure.page_html = snap.html if snap else None
        if failure.screenshot is None:
            failure.screenshot = await self.screenshot()
        return failure

    def unexpected(self, what: str, snap: Snapshot | None = None) -> errors.UnexpectedPage:
        """``UnexpectedPage`` saying what was expected, at which URL, with the page's HTML when known."""
        url = snap.url if snap else self.page.url
        failure = errors.UnexpectedPage(f"{what} (at {url})", page_html=snap.html if snap else None)
        return failure

    # -- checks common to every page -----------------------------------------------------------------

    def _new_alerts(self) -> list[SeenDialog]:
        fresh = self.dialogs[self.dialogs_seen :]
        self.dialogs_seen = len(self.dialogs)
        return [d for d in fresh if d.kind in ("alert", "prompt")]

    def _raise_for_page(self, snap: Snapshot, *, login_allowed: bool = False) -> None:
        """Raise the typed failure the page (or a dialog it showed) reports."""
        if self.session_lost and not login_allowed:
            raise errors.SessionExpired(f"SII sent the browser back to its login ({self.session_lost})",
                                        page_html=snap.html)
        for dialog in self._new_alerts():
            self.failed_document = dialog.document
            failure = classify_message(dialog.message)
            if failure is None:
                failure = (
                    errors.UserRutInvalid(f"SII alert on the user form: {dialog.message!r}", sii_text=dialog.message)
                    if self.step is Step.FILL_FORM
                    else errors.UnexpectedPage(f"unknown SII alert: {dialog.message!r}", sii_text=dialog.message)
                )
            failure.page_html = snap.html
            raise failure
        if self.blocked:
            raise errors.UnexpectedPage(
                f"the flow went to an origin outside the configured SII origins: {self.blocked[-1]}",
                page_html=snap.html,
            )
        self.failed_document = self.document
        failure = detect_error(snap.html, snap.url)
        if failure is not None:
            failure.detail = f"{failure.detail} (at {snap.url})"
            raise failure
        if not login_allowed and is_login_page(snap.html, snap.url):
            raise errors.SessionExpired(f"SII asked to log in again at {snap.url}", page_html=snap.html)

    async def wait_for(
        self,
        check: Callable[[Snapshot], T | None],
        what: str,
        *,
        login_allowed: bool = False,
        on_other: Callable[[Snapshot], Awaitable[bool]] | None = None,
    ) -> T:
        """Poll the page until ``check`` returns a value.

        Failures reported by the page are raised as soon as they show. When the page is loaded, quiet
        (no navigation in flight, unchanged for a moment) and still not what ``check`` wants,
        ``on_other`` may act on it (return True if it did, e.g. clicked a link); otherwise the page
        is unexpected. ``StepTimeout``/``JobTimeout`` when it never settles.
        """
        deadline = self.step_deadline()
        last_html: str | None = None
        quiet_since = time.monotonic()
        while True:
            self.check_cancelled()
            snap = await self.snapshot()
            if snap is not None:
                try:
                    self._raise_for_page(snap, login_allowed=login_allowed)
                    result = check(snap)
                    if result is not None:
                        self.replays = 0
                        return result
                    self._raise_for_status(snap)
                except errors.EnrollmentFailure as failure:
                    if not await self.retry_transient(failure):
                        raise
                    last_html = None
                    quiet_since = time.monotonic()
                    deadline = self.step_deadline()
                    continue
                now = time.monotonic()
                if snap.html != last_html or not snap.ready or self.pending:
                    last_html = snap.html
                    quiet_since = now
                elif now - quiet_since >= _QUIET_SECONDS:
                    if on_other is not None and await on_other(snap):
                        last_html = None
                        quiet_since = time.monotonic()
                        deadline = self.step_deadline()
                    else:
                        raise self.unexpected(f"expected {what}", snap)
            if time.monotonic() >= deadline:
                raise self._timeout(f"waiting for {what} (at {self.page.url})", snap.html if snap else None)
            await self.sleep()

    def _raise_for_status(self, snap: Snapshot) -> None:
        """``SiiUnavailable`` when the page that is not the expected one came with an HTTP 5xx."""
        document = self.document
        if document is not None and document.status is not None and document.status >= 500 \
                and document.url == snap.url and not self.pending:
            self.failed_document = document
            raise errors.SiiUnavailable(f"SII answered HTTP {document.status} at {snap.url}", page_html=snap.html)

    # -- in-attempt retries --------------------------------------------------------------------------

    @staticmethod
    def is_transient(failure: errors.EnrollmentFailure) -> bool:
        """A server error or SII's generic failure: worth asking again at once (an outage is not)."""
        return type(failure) is errors.SiiUnavailable

    async def retry_transient(self, failure: errors.EnrollmentFailure) -> bool:
        """Request the failed page again after a short backoff; False when that is not allowed: not a
        transient failure, a save (``saving``: the user list decides), retries used up, or nothing
        known to request again. Each retry is reported as progress."""
        document = self.failed_document
        if (not self.is_transient(failure) or self.saving or self.replays >= self.settings.transient_retries
                or document is None or document.method.upper() not in ("GET", "POST")
                or (document.method.upper() == "POST" and document.body is None)):
            return False
        delay = self.settings.backoff_seconds(self.replays + 1)
        if time.monotonic() + delay + 1.0 >= self.deadline:
            return False
        self.replays += 1
        self.emit(self.step or Step.OPEN_PAGE, "started",
                  f"Reintentando: el SII respondió con un error ({self.replays}/{self.settings.transient_retries}).")
        log.info("SII transient failure (%s); request %d of %s %s again in %.1f s", failure.detail[:200],
                 self.replays, document.method, document.url, delay)
        await self.page.wait_for_timeout(delay * 1000)
        self.dialogs_seen = len(self.dialogs)
        try:
            await self._replay(document)
        except errors.EnrollmentFailure as again:
            if not self.is_transient(again):
                raise
            # The page shows the browser's error page or the old one: the next poll decides again.
            self.failed_document = document
        return True

    async def _replay(self, document: Document) -> None:
        """Request ``document`` again in the main frame: a GET as is, a POST with the same body bytes
        (routed into the navigation, so the encoding is exactly the original's)."""
        if document.method.upper() == "GET":
            await self._goto_once(document.url, "requesting the page again")
            return
        url = document.url

        def matches(candidate: str) -> bool:
            return candidate == url

        async def as_post(route: Route) -> None:
            headers = {**route.request.headers,
                       "content-type": document.content_type or "application/x-www-form-urlencoded"}
            await route.continue_(method="POST", post_data=document.body, headers=headers)

        await self.page.route(matches, as_post, times=1)
        self._replaying = document
        try:
            await self._goto_once(url, "submitting the form again")
        finally:
            self._replaying = None
            try:
                await self.page.unroute(matches, as_post)
            except Exception:  # noqa: BLE001, S110 - already removed after its one use
                pass

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` when the caller gave up, ``JobTimeout`` when the job budget is spent."""
        if self.job.cancelled.is_set():
            raise errors.JobCancelled("the caller cancelled the job")
        if time.monotonic() >= self.deadline:
            raise errors.JobTimeout(f"job time budget ({self.settings.job_timeout_seconds:.0f} s) ran out")

    # -- actions -------------------------------------------------------------------------------------

    async def _click_control(
        self, labels: tuple[str, ...], what: str, *, row_rut: str | None = None, exact_only: bool = False
    ) -> str | None:
        """Find a link/button by visible label in any frame and click it in the same round trip.

        Returns its label, or None when no frame has it. A frame that navigates or opens a dialog
        while being clicked counts as clicked (the page went on before answering).
        """
        navigations, dialogs = self.navigations, len(self.dialogs)
        for frame in self.frames():
            try:
                label = await frame.evaluate(JS_CLICK_CONTROL, [list(labels), row_rut, exact_only])
            except Exception as exc:
                if self.navigations != navigations or len(self.dialogs) != dialogs:
                    return labels[0]  # the click went through and the page moved on before answering
                if not is_playwright_error(exc):
                    raise  # a bug of ours: the stage reports it as an internal error
                if "detached" in str(exc) or "navigat" in str(exc):
                    continue  # this frame went away: try the others
                raise self.playwright_failure(exc, what) from None
            if label is not None:
                return label
        return None

    async def _await_effect(self, navigations: int, dialogs: int, what: str) -> None:
        """Wait until the page navigates (commits) or shows a dialog, counting from the given marks."""
        deadline = self.step_deadline()
        # Wait for the navigation to *commit* (or a dialog): while a request is merely in flight the
        # old page is still shown, and reading it again would act on it twice.
        while self.navigations == navigations and len(self.dialogs) == dialogs:
            if time.monotonic() >= deadline:
                raise self._timeout(f"{what} did not load a page")
            await self.sleep()

    async def click(self, labels: tuple[str, ...], what: str, *, row_rut: str | None = None,
                    exact_only: bool = False) -> str:
        """Click the control labelled ``labels`` and wait until the page navigates or shows a dialog."""
        navigations, dialogs = self.navigations, len(self.dialogs)
        label = await self._click_control(labels, what, row_rut=row_rut, exact_only=exact_only)
        if label is None:
            raise self.unexpected(f"no control labelled {' / '.join(labels)!r} for {what}", await self.snapshot())
        await self._await_effect(navigations, dialogs, what)
        if any(d.kind == "alert" for d in self.dialogs[dialogs:]):
            # The page's own validation refused the form (alert, maybe history.back()): report it in
            # this step, with the page it left behind.
            await self.page.wait_for_timeout(200)
            snap = await self.snapshot() or Snapshot(self.page.url, "", True)
            try:
                self._raise_for_page(snap, login_allowed=self._in_login())
            except errors.EnrollmentFailure as failure:
                if not await self.retry_transient(failure):
                    raise
        return label

    async def fill(self, values: dict[str, str]) -> None:
        """Fill the non-hidden inputs named by ``values`` (any case), in whichever frame has them, in
        one round trip per frame; ``UnexpectedPage`` when one is on no frame."""
        missing = dict(values)
        for frame in self.frames():
            try:
                absent = await frame.evaluate(JS_FILL, missing)
            except Exception:  # noqa: BLE001, S112 - frame detached or navigating
                continue
            missing = {name: missing[name] for name in absent}
            if not missing:
                return
        raise self.unexpected(f"no input field {', '.join(missing)}", await self.snapshot())

    async def goto(self, url: str, what: str) -> None:
        """Navigate to ``url`` (until it commits), again after a network error while retries last;
        a typed failure when the browser cannot."""
        while True:
            try:
                await self._goto_once(url, what)
                return
            except errors.EnrollmentFailure as failure:
                self.failed_document = Document(url, "GET", None, None)
                if not await self.retry_transient(failure):
                    raise

    async def _goto_once(self, url: str, what: str) -> None:
        for attempt in range(3):
            try:
                await self.page.goto(url, wait_until="commit", timeout=self.timeout_ms())
                return
            except Exception as exc:  # noqa: BLE001
                message = str(exc)
                # A navigation the page had started itself (a redirect, a dismissed login dialog going
                # to the portal) replaced ours: once it lands, ours goes through.
                if attempt < 2 and ("interrupted by another navigation" in message or "ERR_ABORTED" in message):
                    await self.settle()
                    continue
                raise self.playwright_failure(exc, what) from None

    async def settle(self, limit: float = 3.0) -> None:
        """Wait (at most ``limit`` s) until no navigation is in flight."""
        deadline = min(time.monotonic() + limit, self.deadline)
        while self.pending and time.monotonic() < deadline:
            await self.sleep()

    def playwright_failure(self, exc: BaseException, what: str) -> errors.EnrollmentFailure:
        """Map a Playwright exception to a typed failure."""
        # Loaded on use: the web process imports sii_bot, never Playwright; the browser thread does.
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        message = first_line(exc)
        if isinstance(exc, PlaywrightTimeout):
            return self._timeout(f"{what}: {message}")
        lowered = message.lower()
        if "err_blocked_by_client" in lowered:
            return errors.UnexpectedPage(f"{what}: navigation to an origin outside the configured SII origins "
                                         f"({self.blocked[-1] if self.blocked else message})")
        if "err_cert" in lowered or "err_ssl" in lowered:
            return errors.ServerCertificateUntrusted(f"{what}: {message}")
        if "net::" in lowered:
            return errors.SiiUnavailable(f"{what}: {message}")
        if "closed" in lowered or "crash" in lowered or "disconnected" in lowered:
            return errors.BrowserCrashed(f"{what}: {message}")
        return errors.UnexpectedPage(f"{what}: {message}")

    # -- progress ------------------------------------------------------------------------------------

    def emit(self, step: Step, status: StepStatus, message: str, screenshot: bytes | None = None) -> None:
        """Report one ``ProgressEvent`` to the caller."""
        self.job.emit(ProgressEvent(step=step, status=status, message=message, screenshot=screenshot))

    @asynccontextmanager
    async def stage(self, step: Step, started: str, *, evidence: bool = False) -> AsyncIterator[Done]:
        """Report ``step`` started/done or failed; yields a list for the done message.

        A failed step always carries a screenshot (when enabled); a step that succeeded carries one
        when it is ``evidence`` (a page that shows what SII holds or answered) or when every step is
        to be captured: each one is a paint, a PNG encode and a trip through the driver (50-150 ms).
        """
        self.check_cancelled()
        self.step = step
        self.emit(step, "started", started)
        done = Done()
        try:
            yield done
        except errors.EnrollmentFailure as failure:
            resume = self.resume_message(failure)
            if resume is not None:
                # Not the end of the attempt: the flow starts over from the company step.
                self.emit(step, "started", resume)
                raise
            await self.evidence(failure)
            self.emit(step, "failed", failure.user_message, failure.screenshot)
            raise
        except Exception as exc:  # Playwright errors become typed failures here
            failure = self.playwright_failure(exc, f"step {step.value}")
            if isinstance(failure, errors.UnexpectedPage) and not is_playwright_error(exc):
                failure = errors.InternalError(f"{type(exc).__name__}: {first_line(exc)}")
            await self.evidence(failure)
            self.emit(step, "failed", failure.user_message, failure.screenshot)
            raise failure from exc
        if done.evidence is not None:
            evidence = done.evidence
        shot = await self.screenshot() if evidence or self.settings.screenshot_every_step else None
        if shot is not None:
            self.job.screenshots.append((step.value, shot))
        self.emit(step, "done", done[0] if done else f"{step.label}: listo.", shot)

    def resume_message(self, failure: errors.EnrollmentFailure) -> str | None:
        """The progress message when the flow will resume after ``failure`` (None: it ends the
        attempt). ``Session`` implements resuming; here nothing resumes."""
        return None

    def skip(self, step: Step, message: str) -> None:
        """Report ``step`` as skipped (``message`` says why, in Spanish)."""
        self.emit(step, "skipped", message)
