"""The enrolment flow in the browser: SII's guide, step by step, on any page that matches the reference.

Runs in the engine's browser thread, on its event loop (Playwright's async API: one Chromium serves
several jobs at once, each in a context of its own). The flow follows each page's forms,
field names and visible labels, never hard-coded intermediate URLs, and at every step it:

- records every JavaScript dialog (SII reports errors with ``alert()`` + ``history.back()``) and
  accepts it (the certificate entry page needs its ``confirm()`` accepted), except a ``confirm()``
  about deleting something, which is dismissed;
- reads the decoded page and turns SII error texts, alerts, WAF pages and a login page that comes
  back mid-flow into typed ``EnrollmentFailure``s;
- checks that the expected form or text is there, or stops with ``UnexpectedPage`` carrying the HTML
  and a screenshot; HTTP status codes are never trusted either way.

Nothing is saved unless the confirmation page shows exactly the requested company, user and
permissions. Logout runs in a ``finally``.

The same flow also removes users (``RevocationRequest``) and changes a company's representative
(``ReplacementRequest``: add the new one, then remove the old one, in one session). A removal opens
the user's edit screen, checks that it shows exactly the requested company and user, ticks the
delete option, accepts the delete ``confirm()`` (the only time such a dialog is accepted), saves
with "Guardar Cambios" and then reads the user list again: the user must be gone and every other
user untouched.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from . import errors
from .browser import new_job_context, origin_of
from .certificates import CertificateMaterial
from .models import (
    EnrollmentRequest,
    EnrollmentResult,
    Outcome,
    Permission,
    ProgressEvent,
    ReplacementRequest,
    ReplacementResult,
    RevocationOutcome,
    RevocationRequest,
    RevocationResult,
    Step,
    StepStatus,
)
from .pages import (
    ParseError,
    SiiEditScreen,
    SiiRemovalRecord,
    SiiUser,
    SiiUserRecord,
    classify_message,
    company_header,
    detect_error,
    find_ruts,
    fold,
    is_delete_confirmation,
    is_login_page,
    mentions_existing_user,
    mentions_user,
    parse_confirmation,
    parse_edit_screen,
    parse_elimination_result,
    parse_result,
    parse_user_list,
    result_kind,
    visible_text,
)
from .rut import display_rut, is_person_rut, split_rut
from .settings import SiiSettings

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Dialog, Frame, Page, Request

__all__ = ["run_job"]

JobRequest = EnrollmentRequest | RevocationRequest | ReplacementRequest
JobResult = EnrollmentResult | RevocationResult | ReplacementResult

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a loaded page must stay unchanged, with no navigation in flight, before the bot decides
# it is not going to turn into the expected page (SII's pages redirect from JavaScript right away).
_QUIET_SECONDS = 0.6
_POLL_SECONDS = 0.01
# The login may be re-entered after a user-exists race at most this many times.
_MAX_LIST_VISITS = 2

# Everything a wait needs to decide, in one round trip per frame: the markup, the readiness, the names
# of the non-hidden inputs and the labels of the visible controls (found as _JS_CLICK_CONTROL finds
# them). Separate lookups cost a Python -> driver -> browser round trip each, several per poll.
# The page scripts' shared helpers: how a label is folded (no accents, lower case, one space), what
# counts as visible, a control's label, and which elements are controls (links and buttons).
_JS_LABEL_HELPERS = r"""
  const fold = s => (s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
      .replace(/[-_\u00a0]/g, ' ').replace(/\s+/g, ' ').trim();
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const labelOf = el => {
    if (el.tagName === 'INPUT') return fold(el.value || el.alt || el.title);
    let text = fold(el.innerText || el.textContent);
    if (!text) { const img = el.querySelector('img'); text = fold((img && (img.alt || img.title)) || el.title); }
    return text;
  };
  const CONTROLS = 'a, button, input[type="submit" i], input[type="button" i], input[type="image" i]';
"""

_JS_SNAPSHOT = (
    r"""
() => {
  const root = document.documentElement;
  if (!root) return ['', document.readyState, [], []];
"""
    + _JS_LABEL_HELPERS
    + r"""
  const fields = Array.from(document.querySelectorAll('input[name]:not([type="hidden" i])'))
      .map(i => i.name.toUpperCase());
  const controls = Array.from(document.querySelectorAll(CONTROLS)).filter(visible).map(labelOf);
  return [root.outerHTML, document.readyState, fields, controls];
}
"""
)

# Controls: exact labels first, most specific first.
_SUBMIT_COMPANY = ("Ingresar", "Aceptar", "Continuar", "Consultar", "Enviar")
_NEW_USER = ("Ingresar Nuevo Usuario", "Nuevo Usuario", "Agregar Usuario")
_ACCEPT_FORM = ("Aceptar",)
_SAVE = ("Grabar Usuario", "Grabar")
_SAVE_CHANGES = ("Guardar Cambios", "Grabar Cambios", "Modificar Usuario", "Guardar")
_EDIT_USER = ("Modificar", "Modificar Usuario", "Editar", "Ver")
_DELETE_USER = ("Eliminar Usuario", "Eliminar", "Borrar Usuario", "Borrar")
_CERT_LOGIN = ("Identificarse con Certificado Digital", "Ingresar con Certificado Digital", "Certificado Digital")

# JavaScript run in the page to find a control by its visible label and click it.
_JS_CLICK_CONTROL = (
    r"""
([labels, rowRut, exactOnly]) => {
"""
    + _JS_LABEL_HELPERS
    + r"""
  const normRut = s => (s || '').replace(/\./g, '').replace(/\s/g, '').toUpperCase();
  let scope = document;
  if (rowRut) {
    // The innermost row whose text (or hidden RUT fields) names this RUT.
    const [body, dv] = rowRut.split('-');
    // Digit boundaries: 1.111.111-1 must not match inside 11.111.111-1.
    const whole = new RegExp('(^|[^0-9])' + body + '-' + dv + '($|[^0-9K])');
    const rows = Array.from(document.querySelectorAll('tr')).filter(tr => !tr.querySelector('tr'));
    const match = rows.find(tr => {
      // Dots out, spaces kept (they are the boundaries between a RUT and the next cell's text).
      const text = (tr.innerText || tr.textContent || '').replace(/\./g, '').replace(/\s*-\s*/g, '-').toUpperCase();
      if (whole.test(text)) return true;
      const cells = Array.from(tr.querySelectorAll('td,th')).map(td => normRut(td.innerText || td.textContent));
      for (let i = 0; i + 1 < cells.length; i++) if (cells[i] === body && cells[i + 1] === dv) return true;
      const hidden = tr.querySelector('input[name="RUT_USU" i]');
      return !!(hidden && hidden.value === body);
    });
    if (!match) return null;
    scope = match;
  }
  const els = Array.from(scope.querySelectorAll(CONTROLS)).filter(visible);
  const wanted = labels.map(fold);
  const pick = (test) => {
    for (const w of wanted) for (const el of els) if (test(labelOf(el), w)) return el;
    return null;
  };
  let el = pick((l, w) => l === w);
  if (!el && !exactOnly) el = pick((l, w) => l.startsWith(w + ' ') || l.endsWith(' ' + w));
  if (!el && rowRut && els.length === 1) el = els[0];
  if (!el) return null;
  const label = labelOf(el);
  // The element's own activation (onclick handlers, the submit button's name=value in the form data,
  // the link's href), without Playwright's pointer machinery: ~20 ms less per click, no scrolling.
  el.click();
  return label;
}
"""
)

# Finds a checkbox by name (any case), else by the label text around it (its <label>, row or parent).
_JS_FIND_CHECKBOX = r"""
  const findBox = (boxes, name, label) => {
    const byName = boxes.find(b => (b.name || '').toUpperCase() === name.toUpperCase());
    if (byName) return byName;
    const want = fold(label);
    return boxes.find(b => {
      const holder = b.closest('label') || b.closest('tr') || b.parentElement;
      const text = fold(holder ? (holder.innerText || holder.textContent) : '');
      return text === want || text.includes(want);
    });
  };
"""

# Finds a checkbox (as above) and tags it for a locator.
_JS_MARK_CHECKBOX = (
    r"""
([name, label, token]) => {
"""
    + _JS_LABEL_HELPERS
    + _JS_FIND_CHECKBOX
    + r"""
  const box = findBox(Array.from(document.querySelectorAll('input[type="checkbox" i]')), name, label);
  if (!box) return null;
  box.setAttribute('data-siibot', token);
  return box.name || '';
}
"""
)

# Fills non-hidden inputs by name (any case) like a user typing would end: focus, value, then the
# input and change events the page's scripts listen to. Returns the names it did not find.
_JS_FILL = r"""
(values) => {
  const missing = [];
  for (const [name, value] of Object.entries(values)) {
    const input = Array.from(document.querySelectorAll('input:not([type="hidden" i])'))
        .find(i => (i.name || '').toUpperCase() === name.toUpperCase());
    if (!input) { missing.push(name); continue; }
    input.focus();
    input.value = value;
    input.dispatchEvent(new Event('input', {bubbles: true}));
    input.dispatchEvent(new Event('change', {bubbles: true}));
  }
  return missing;
}
"""

# Sets checkboxes (found as above) with a click when the state must change, so the page's own
# handlers run, then every other checkbox off. Returns [names not found, names whose state did not stick].
_JS_SET_CHECKBOXES = (
    r"""
([wanted, othersOff]) => {
"""
    + _JS_LABEL_HELPERS
    + _JS_FIND_CHECKBOX
    + r"""
  const boxes = Array.from(document.querySelectorAll('input[type="checkbox" i]'));
  const used = new Set();
  const missing = [], stuck = [];
  const set = (box, value, name) => {
    if (box.checked !== value) box.click();
    if (box.checked !== value) stuck.push(name);
  };
  for (const [name, label, value] of wanted) {
    const box = findBox(boxes, name, label);
    if (!box) { missing.push(name); continue; }
    used.add(box);
    set(box, value, name);
  }
  if (othersOff) for (const box of boxes) if (!used.has(box) && box.name && box.checked) set(box, false, box.name);
  return [missing, stuck];
}
"""
)


def _fold_label(text: str) -> str:
    """The same folding as the page scripts' ``fold``: no accents, lower case, one space."""
    decomposed = unicodedata.normalize("NFD", text)
    text = "".join(c for c in decomposed if not ("\u0300" <= c <= "\u036f")).lower()
    text = re.sub(r"[-_\u00a0]", " ", text)
    return " ".join(text.split())


@dataclass
class _Snapshot:
    url: str
    html: str
    ready: bool
    # Upper-case names of the non-hidden inputs, and the folded labels of the visible controls.
    fields: frozenset[str] = frozenset()
    controls: tuple[str, ...] = ()

    _text: str | None = None

    def has_field(self, name: str) -> bool:
        """True when a non-hidden input named ``name`` (any case) was on the page."""
        return name.upper() in self.fields

    def has_control(self, labels: tuple[str, ...], *, exact_only: bool = True) -> bool:
        """True when a visible link/button is labelled ``labels`` (as ``_Flow._click_control`` finds it)."""
        wanted = [_fold_label(label) for label in labels]
        if any(w == c for w in wanted for c in self.controls):
            return True
        return not exact_only and any(
            c.startswith(w + " ") or c.endswith(" " + w) for w in wanted for c in self.controls
        )

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = visible_text(self.html)
        return self._text


class _Done(list[str]):
    """What a stage yields: its "done" message(s), and whether its page is evidence after all (None:
    as the stage was opened), for steps that only know once they have read the page."""

    evidence: bool | None = None


@dataclass
class _Dialog:
    kind: str
    message: str
    accepted: bool


@dataclass
class _Job:
    request: JobRequest
    settings: SiiSettings
    emit: Callable[[ProgressEvent], None]
    cancelled: threading.Event
    started: float = field(default_factory=time.monotonic)
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)


class _Flow:
    """One enrolment job on one page (single use)."""

    def __init__(self, page: Page, job: _Job) -> None:
        self.page = page
        self.job = job
        request = job.request
        self.company_rut = request.company_rut
        # The user being authorized (enrolment, or the first part of a replacement); None for revocations.
        self.request: EnrollmentRequest | None = (
            request.addition if isinstance(request, ReplacementRequest)
            else None if isinstance(request, RevocationRequest) else request
        )
        # Delete confirm()s are accepted only while this is set (the bot's own delete action).
        self.delete_armed = False
        self.delete_confirms: list[str] = []
        # The last user list read, and whether anything was submitted for saving since then.
        self.last_users: list[SiiUser] = []
        self.saved_since_list = False
        self.saved_any = False
        self.settings = job.settings
        self.deadline = job.started + self.settings.job_timeout_seconds
        self.dialogs: list[_Dialog] = []
        self.dialogs_seen = 0
        self.navigations = 0
        self.pending: set[Request] = set()
        self.step: Step | None = None
        self.logged_in = False
        self.blocked: list[str] = []
        self.session_lost: str | None = None
        page.on("dialog", self._on_dialog)
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
        self.dialogs.append(_Dialog(kind, message, accept))
        log.info("SII dialog (%s, %s): %s", kind, "accepted" if accept else "dismissed", message[:200])
        try:
            await (dialog.accept() if accept else dialog.dismiss())
        except Exception:  # noqa: BLE001 - the page may already be gone
            pass

    def _on_navigated(self, frame: Frame) -> None:
        # Any frame counts as "the click did something" (SII pages have no known frames, but if they
        # do, a form may target one).
        self.navigations += 1
        if frame.parent_frame is None:
            # Login hops are too quick to be seen by polling: note them as they happen.
            if not self._in_login() and is_login_page("", frame.url):
                self.session_lost = self.session_lost or frame.url

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request():
            self.pending.add(request)

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

    def _step_deadline(self) -> float:
        return min(time.monotonic() + self.settings.step_timeout_seconds, self.deadline)

    def _timeout_ms(self, cap: float | None = None) -> float:
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

    async def _sleep(self) -> None:
        # wait_for_timeout keeps Playwright's event loop turning (dialogs, navigations).
        await self.page.wait_for_timeout(_POLL_SECONDS * 1000)

    # -- page access ---------------------------------------------------------------------------------

    def _frames(self) -> list[Frame]:
        main = self.page.main_frame
        return [main] + [f for f in self.page.frames if f is not main]

    async def _snapshot(self) -> _Snapshot | None:
        """URL + HTML (all frames) of the current page, or None while it is being replaced."""
        try:
            url = self.page.url
            parts: list[str] = []
            fields: set[str] = set()
            controls: list[str] = []
            ready = True
            for frame in self._frames():
                html, state, frame_fields, frame_controls = await frame.evaluate(_JS_SNAPSHOT)
                parts.append(html)
                fields.update(frame_fields)
                controls.extend(frame_controls)
                ready = ready and state == "complete"
            return _Snapshot(url, "\n".join(parts), ready, frozenset(fields), tuple(controls))
        except Exception:  # noqa: BLE001 - "page is navigating", context destroyed, ...
            return None

    async def screenshot(self) -> bytes | None:
        """PNG of the page when screenshots are enabled; None on any problem (never fails the job)."""
        if not self.settings.screenshots:
            return None
        try:
            return await self.page.screenshot(type="png", full_page=True, timeout=self._timeout_ms(cap=10))
        except Exception:  # noqa: BLE001
            return None

    async def _evidence(self, failure: errors.EnrollmentFailure) -> errors.EnrollmentFailure:
        if failure.step is None and self.step is not None:
            failure.step = self.step.value
        if self.pending and failure.page_html is None:
            # A navigation is still in flight (typically a timeout): reading the page would block until
            # it commits, and what it shows is the previous page anyway.
            return failure
        if failure.page_html is None:
            snap = await self._snapshot()
            failure.page_html = snap.html if snap else None
        if failure.screenshot is None:
            failure.screenshot = await self.screenshot()
        return failure

    def _unexpected(self, what: str, snap: _Snapshot | None = None) -> errors.UnexpectedPage:
        url = snap.url if snap else self.page.url
        failure = errors.UnexpectedPage(f"{what} (at {url})", page_html=snap.html if snap else None)
        return failure

    # -- checks common to every page -----------------------------------------------------------------

    def _new_alerts(self) -> list[_Dialog]:
        fresh = self.dialogs[self.dialogs_seen :]
        self.dialogs_seen = len(self.dialogs)
        return [d for d in fresh if d.kind in ("alert", "prompt")]

    def _raise_for_page(self, snap: _Snapshot, *, login_allowed: bool = False) -> None:
        """Raise the typed failure the page (or a dialog it showed) reports."""
        if self.session_lost and not login_allowed:
            raise errors.SessionExpired(f"SII sent the browser back to its login ({self.session_lost})",
                                        page_html=snap.html)
        for dialog in self._new_alerts():
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
        failure = detect_error(snap.html)
        if failure is not None:
            failure.detail = f"{failure.detail} (at {snap.url})"
            raise failure
        if not login_allowed and is_login_page(snap.html, snap.url):
            raise errors.SessionExpired(f"SII asked to log in again at {snap.url}", page_html=snap.html)

    async def _wait_for(
        self,
        check: Callable[[_Snapshot], T | None],
        what: str,
        *,
        login_allowed: bool = False,
        on_other: Callable[[_Snapshot], Awaitable[bool]] | None = None,
    ) -> T:
        """Poll the page until ``check`` returns a value.

        Failures reported by the page are raised as soon as they show. When the page is loaded, quiet
        (no navigation in flight, unchanged for a moment) and still not what ``check`` wants,
        ``on_other`` may act on it (return True if it did, e.g. clicked a link); otherwise the page
        is unexpected. ``StepTimeout``/``JobTimeout`` when it never settles.
        """
        deadline = self._step_deadline()
        last_html: str | None = None
        quiet_since = time.monotonic()
        while True:
            self._check_cancelled()
            snap = await self._snapshot()
            if snap is not None:
                self._raise_for_page(snap, login_allowed=login_allowed)
                result = check(snap)
                if result is not None:
                    return result
                now = time.monotonic()
                if snap.html != last_html or not snap.ready or self.pending:
                    last_html = snap.html
                    quiet_since = now
                elif now - quiet_since >= _QUIET_SECONDS:
                    if on_other is not None and await on_other(snap):
                        last_html = None
                        quiet_since = time.monotonic()
                        deadline = self._step_deadline()
                    else:
                        raise self._unexpected(f"expected {what}", snap)
            if time.monotonic() >= deadline:
                raise self._timeout(f"waiting for {what} (at {self.page.url})", snap.html if snap else None)
            await self._sleep()

    def _check_cancelled(self) -> None:
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
        for frame in self._frames():
            try:
                label = await frame.evaluate(_JS_CLICK_CONTROL, [list(labels), row_rut, exact_only])
            except Exception as exc:  # noqa: BLE001
                if self.navigations != navigations or len(self.dialogs) != dialogs:
                    return labels[0]  # the click went through and the page moved on before answering
                if not _is_playwright_error(exc):
                    raise  # a bug of ours: the stage reports it as an internal error
                if "detached" in str(exc) or "navigat" in str(exc):
                    continue  # this frame went away: try the others
                raise self._playwright_failure(exc, what) from None
            if label is not None:
                return label
        return None

    async def _await_effect(self, navigations: int, dialogs: int, what: str) -> None:
        """Wait until the page navigates (commits) or shows a dialog, counting from the given marks."""
        deadline = self._step_deadline()
        # Wait for the navigation to *commit* (or a dialog): while a request is merely in flight the
        # old page is still shown, and reading it again would act on it twice.
        while self.navigations == navigations and len(self.dialogs) == dialogs:
            if time.monotonic() >= deadline:
                raise self._timeout(f"{what} did not load a page")
            await self._sleep()

    async def _click(self, labels: tuple[str, ...], what: str, *, row_rut: str | None = None,
               exact_only: bool = False) -> str:
        """Click the control labelled ``labels`` and wait until the page navigates or shows a dialog."""
        navigations, dialogs = self.navigations, len(self.dialogs)
        label = await self._click_control(labels, what, row_rut=row_rut, exact_only=exact_only)
        if label is None:
            raise self._unexpected(f"no control labelled {' / '.join(labels)!r} for {what}", await self._snapshot())
        await self._await_effect(navigations, dialogs, what)
        if any(d.kind == "alert" for d in self.dialogs[dialogs:]):
            # The page's own validation refused the form (alert, maybe history.back()): report it in
            # this step, with the page it left behind.
            await self.page.wait_for_timeout(200)
            snap = await self._snapshot() or _Snapshot(self.page.url, "", True)
            self._raise_for_page(snap, login_allowed=self._in_login())
        return label

    async def _fill(self, values: dict[str, str]) -> None:
        """Fill the non-hidden inputs named by ``values`` (any case), in whichever frame has them, in
        one round trip per frame; ``UnexpectedPage`` when one is on no frame."""
        missing = dict(values)
        for frame in self._frames():
            try:
                absent = await frame.evaluate(_JS_FILL, missing)
            except Exception:  # noqa: BLE001 - frame detached or navigating
                continue
            missing = {name: missing[name] for name in absent}
            if not missing:
                return
        raise self._unexpected(f"no input field {', '.join(missing)}", await self._snapshot())

    async def _set_permissions(self) -> None:
        """Check exactly the requested permissions; every other checkbox (ELIMINAR, OBTENER...) off.

        One round trip per frame; boxes are clicked (not just flipped) so the page's handlers run,
        and ``UnexpectedPage`` if one is missing or would not take its state."""
        wanted = [[p.field_name, p.label, p in self.request.permissions] for p in Permission]
        for frame in self._frames():
            try:
                missing, stuck = await frame.evaluate(_JS_SET_CHECKBOXES, [wanted, True])
            except Exception:  # noqa: BLE001 - frame detached or navigating
                continue
            if stuck:
                raise self._unexpected(f"checkbox {', '.join(stuck)} did not keep the state the bot set",
                                       await self._snapshot())
            wanted = [w for w in wanted if w[0] in missing]
        if wanted:
            absent = ", ".join(f"{name} ({label!r})" for name, label, _ in wanted)
            raise self._unexpected(f"no checkbox {absent}", await self._snapshot())

    async def _goto(self, url: str, what: str) -> None:
        try:
            await self.page.goto(url, wait_until="commit", timeout=self._timeout_ms())
        except Exception as exc:  # noqa: BLE001
            raise self._playwright_failure(exc, what) from None

    def _playwright_failure(self, exc: BaseException, what: str) -> errors.EnrollmentFailure:
        """Map a Playwright exception to a typed failure."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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
        self.job.emit(ProgressEvent(step=step, status=status, message=message, screenshot=screenshot))

    @asynccontextmanager
    async def stage(self, step: Step, started: str, *, evidence: bool = False) -> AsyncIterator[_Done]:
        """Report ``step`` started/done or failed; yields a list for the done message.

        A failed step always carries a screenshot (when enabled); a step that succeeded carries one
        when it is ``evidence`` (a page that shows what SII holds or answered) or when every step is
        to be captured: each one is a paint, a PNG encode and a trip through the driver (50-150 ms).
        """
        self._check_cancelled()
        self.step = step
        self.emit(step, "started", started)
        done = _Done()
        try:
            yield done
        except errors.EnrollmentFailure as failure:
            await self._evidence(failure)
            self.emit(step, "failed", failure.user_message, failure.screenshot)
            raise
        except Exception as exc:  # noqa: BLE001 - Playwright errors become typed failures here
            failure = self._playwright_failure(exc, f"step {step.value}")
            if isinstance(failure, errors.UnexpectedPage) and not _is_playwright_error(exc):
                failure = errors.InternalError(f"{type(exc).__name__}: {_first_line(exc)}")
            await self._evidence(failure)
            self.emit(step, "failed", failure.user_message, failure.screenshot)
            raise failure from exc
        if done.evidence is not None:
            evidence = done.evidence
        shot = await self.screenshot() if evidence or self.settings.screenshot_every_step else None
        if shot is not None:
            self.job.screenshots.append((step.value, shot))
        self.emit(step, "done", done[0] if done else f"{step.label}: listo.", shot)

    def skip(self, step: Step, message: str) -> None:
        self.emit(step, "skipped", message)

    # -- the flow ------------------------------------------------------------------------------------

    async def run(self) -> JobResult:
        try:
            request = self.job.request
            if isinstance(request, RevocationRequest):
                return await self._run_revocation(request)
            if isinstance(request, ReplacementRequest):
                return await self._run_replacement(request)
            return await self._run()
        finally:
            await self._logout()

    async def _start(self) -> None:
        """Open the enrolment page and log in with the certificate."""
        async with self.stage(Step.OPEN_PAGE, "Abriendo la página Mantención de usuarios autorizados del SII.") as done:
            await self._goto(self.settings.enroll_url, "opening the enrolment page")
            done.append("Página del SII abierta.")
        async with self.stage(Step.LOGIN, "Identificándose en el SII con el certificado digital.") as done:
            self.logged_in = True  # from here on cookies may exist: always log out
            await self._login()
            done.append("Identificación con certificado digital aceptada por el SII.")

    async def _run(self) -> EnrollmentResult:
        await self._start()
        return await self._authorize(await self._company_and_list())

    async def _authorize(self, listed: tuple[list[SiiUser], str], named: tuple[str, ...] = ()) -> EnrollmentResult:
        """Create or update ``self.request``'s user, starting from the list just read."""
        request = self.request
        assert request is not None
        for visit in range(_MAX_LIST_VISITS):
            if visit:
                # A user-exists race: read the list again from the start (the session is still valid).
                await self._goto(self.settings.enroll_url, "reopening the enrolment page")
                listed = await self._company_and_list(named)
            users, company_name = listed
            existing = next((u for u in users if u.rut == request.user_rut), None)
            if existing is None:
                outcome = await self._create(company_name)
            else:
                outcome = await self._update(existing, company_name)
            if outcome is not None:
                return outcome
        raise errors.UnexpectedPage("SII kept saying the user already exists but it was not in the list")

    async def _login(self) -> None:
        """From wherever ``enroll_url`` landed, through the certificate login, back to the company form."""
        enroll_origin = origin_of(self.settings.enroll_url)
        clicked: list[str] = []

        def arrived(snap: _Snapshot) -> bool | None:
            if origin_of(snap.url) != enroll_origin or is_login_page(snap.html, snap.url):
                if "errorp" in snap.url.lower():
                    raise errors.CertificateRejected(
                        f"SII sent the login to its certificate error page ({snap.url})",
                        page_html=snap.html, sii_text=visible_text(snap.html)[:300],
                    )
                return None
            return True if snap.has_field("RUT_EMP") else None

        async def other(snap: _Snapshot) -> bool:
            # The "IDENTIFICACIÓN DE CONTRIBUYENTES" entry: follow its certificate link (once).
            if len(clicked) < 2 and snap.has_control(_CERT_LOGIN, exact_only=False):
                clicked.append(await self._click(_CERT_LOGIN, "the certificate login link"))
                return True
            if origin_of(snap.url) != enroll_origin:
                raise errors.CertificateRejected(
                    f"the certificate login ended at {snap.url} instead of the enrolment page",
                    page_html=snap.html, sii_text=visible_text(snap.html)[:300],
                )
            return False

        await self._wait_for(arrived, "the company RUT form after the certificate login", login_allowed=True,
                       on_other=other)

    async def _company_and_list(self, named: tuple[str, ...] = ()) -> tuple[list[SiiUser], str]:
        """Submit the company RUT (one or two screens) and return the user list and company name.

        ``named``: RUTs the job is about; a list page that names one of them without the parser
        reading it as an entry stops the job (never conclude "not there" from a misread page).
        """
        async with self.stage(Step.COMPANY, f"Ingresando el RUT de la empresa {display_rut(self.company_rut)}.") as done:
            await self._submit_company()
            done.append(f"Empresa {display_rut(self.company_rut)} seleccionada.")
        async with self.stage(Step.USER_LIST, "Revisando los usuarios autorizados de la empresa.", evidence=True) as done:
            users, company_name, _ = await self._read_list(named)
            done.append(f"La empresa tiene {len(users)} usuario(s) autorizado(s).")
            # The list is evidence when it decides the outcome: always for removals, and for an
            # enrolment whose user is already on it. A new user's proof is the confirmation and result.
            if isinstance(self.job.request, EnrollmentRequest) and self.request is not None:
                done.evidence = any(u.rut == self.request.user_rut for u in users)
        return users, company_name

    async def _submit_company(self) -> None:
        """From the company RUT form (one or two screens) to the user list."""
        body, dv = split_rut(self.company_rut)
        form = await self._wait_for(lambda s: s if s.has_field("RUT_EMP") else None, "the company RUT form")
        for _screen in range(3):
            if form.has_field("DV_EMP"):
                await self._fill({"RUT_EMP": body, "DV_EMP": dv})
            else:
                await self._fill({"RUT_EMP": f"{body}-{dv}"})
            await self._click(_SUBMIT_COMPANY, "submitting the company RUT", exact_only=True)

            def next_page(snap: _Snapshot) -> tuple[str, _Snapshot] | None:
                # The list first: it may carry its own company field (e.g. to switch companies).
                if self._is_user_list(snap):
                    return "list", snap
                if snap.has_field("RUT_EMP"):
                    return "again", snap
                return None

            where, form = await self._wait_for(next_page, "the user list or the company form")
            if where == "list":
                return
        raise self._unexpected("the company RUT form kept coming back", await self._snapshot())

    async def _read_list(self, named: tuple[str, ...] = ()) -> tuple[list[SiiUser], str, _Snapshot]:
        """Parse the user list on screen: users, company name and the page."""
        snap = await self._wait_for(lambda s: s if self._is_user_list(s) else None, "the authorized-user list")
        users = parse_user_list(snap.html)
        header = company_header(snap.html)
        company_name = header[0] if header else ""
        # Company RUTs written on the list page must include ours (SII's header layout is unknown,
        # so this is only a guard against a list of another company; the confirmation is the proof).
        shown = [r for r in find_ruts(snap.text) if not is_person_rut(r)]
        if shown and self.company_rut not in shown:
            raise errors.ConfirmationMismatch(
                f"the user list shows company {', '.join(shown)}, not {self.company_rut}",
                page_html=snap.html,
            )
        listed = {u.rut for u in users}
        for rut in named:
            if rut not in listed and mentions_user(snap.html, rut):
                raise self._unexpected(f"the list page names {rut} but it could not be read as a list entry", snap)
        self.last_users = users
        self.saved_since_list = False
        return users, company_name, snap

    async def _reopen_list(self, named: tuple[str, ...] = ()) -> tuple[list[SiiUser], str, _Snapshot]:
        """Read the user list again from the start (same session): enrolment page, company, list."""
        await self._goto(self.settings.enroll_url, "reopening the enrolment page")
        await self._submit_company()
        return await self._read_list(named)

    def _is_user_list(self, snap: _Snapshot) -> bool:
        return snap.has_control(_NEW_USER, exact_only=False) and not snap.has_field("RUT_USU")

    # -- new user --------------------------------------------------------------------------------------

    async def _create(self, company_name: str) -> EnrollmentResult | None:
        request = self.request
        assert request is not None
        body, dv = split_rut(request.user_rut)
        async with self.stage(Step.NEW_USER, "Abriendo «Ingresar Nuevo Usuario».") as done:
            await self._click(_NEW_USER, "opening the new-user form", exact_only=False)
            await self._wait_for(lambda s: True if s.has_field("RUT_USU") and s.has_field("DV_USU") else None,
                           "the new-user form (RUT_USU, DV_USU)")
            done.append("Formulario de nuevo usuario abierto.")
        async with self.stage(Step.FILL_FORM, f"Ingresando el RUT {display_rut(request.user_rut)} y los permisos solicitados.") as done:
            await self._fill({"RUT_USU": body, "DV_USU": dv})
            await self._set_permissions()
            await self._click(_ACCEPT_FORM, "accepting the new-user form")
            done.append("Datos del usuario enviados.")

        async with self.stage(Step.CONFIRM, "Revisando la confirmación del SII.", evidence=True) as done:
            snap = await self._wait_for(self._confirmation_or_exists, "the confirmation page")
            if snap == "exists":
                self._exists_detour(Step.CONFIRM, done)
                return None
            assert isinstance(snap, _Snapshot)
            record = parse_confirmation(snap.html)
            self._verify(record, snap, saved=False)
            if not snap.has_control(_SAVE, exact_only=False):
                raise self._unexpected("the confirmation page has no «Grabar Usuario» control", snap)
            done.append("La confirmación coincide exactamente con lo solicitado.")

        async with self.stage(Step.SAVE, "Grabando el usuario en el SII.") as done:
            self._mark_saved()
            await self._click(_SAVE, "saving the user", exact_only=False)
            done.append("Solicitud de grabación enviada.")
        async with self.stage(Step.RESULT, "Leyendo el resultado.", evidence=True) as done:
            result = await self._wait_for(self._result_or_exists, "the result page", on_other=None)
            if result == "exists":
                self._exists_detour(Step.RESULT, done)
                return None
            assert isinstance(result, tuple)
            record, snap = result
            self._verify(record, snap, saved=True)
            done.append(f"El SII grabó al usuario {record.user_rut} en la empresa {record.company_rut}.")
        return self._result("created", record)

    def _exists_detour(self, step: Step, done: list[str]) -> None:
        # SII says the user exists although it was not in the list we read (someone added it
        # meanwhile): read the list again and decide between "already authorized" and an update.
        done.append("El SII indica que el usuario ya existe; se revisará nuevamente la lista.")

    def _confirmation_or_exists(self, snap: _Snapshot) -> _Snapshot | str | None:
        # The page itself first: a help text mentioning existing users must not hide a confirmation.
        try:
            parse_confirmation(snap.html)
        except ParseError:
            return "exists" if mentions_existing_user(snap.html) else None
        return snap

    def _result_or_exists(self, snap: _Snapshot) -> tuple[SiiUserRecord, _Snapshot] | str | None:
        try:
            return parse_result(snap.html), snap
        except ParseError:
            return "exists" if mentions_existing_user(snap.html) else None

    def _verify(self, record: SiiUserRecord, snap: _Snapshot, *, saved: bool) -> None:
        """Raise ``ConfirmationMismatch`` unless ``record`` is exactly the request."""
        request = self.request
        assert request is not None
        differences = []
        if record.company_rut != request.company_rut:
            differences.append(f"company {record.company_rut} != {request.company_rut}")
        if record.user_rut != request.user_rut:
            differences.append(f"user {record.user_rut} != {request.user_rut}")
        for name, wanted in request.flags().items():
            shown = getattr(record, name)
            if shown != wanted:
                differences.append(f"{name} shown {shown} != requested {wanted}")
        if differences:
            where = "the saved record (SII result page)" if saved else "the confirmation page (nothing saved)"
            raise errors.ConfirmationMismatch(f"{where} differs from the request: {'; '.join(differences)}",
                                              page_html=snap.html)

    # -- existing user ---------------------------------------------------------------------------------

    async def _update(self, existing: SiiUser, company_name: str) -> EnrollmentResult | None:
        request = self.request
        assert request is not None
        wanted = request.flags()
        shown = {"admin": existing.admin, "sign": existing.sign, "registry": existing.registry}
        if all(v is not None for v in shown.values()) and shown == wanted:
            return self._already(existing, company_name)

        async with self.stage(Step.NEW_USER, f"El usuario {request.user_rut} ya existe: abriendo su modificación.") as done:
            await self._open_edit_screen(request.user_rut)
            done.append("Pantalla de modificación del usuario abierta; muestra exactamente la empresa y el "
                        "usuario solicitados.")

        current = await self._current_checkboxes()
        if current is not None and current == wanted:
            # The list did not show the permissions, but the edit screen does: nothing to change.
            return self._already(existing, company_name, from_edit=True)

        async with self.stage(Step.FILL_FORM, "Marcando exactamente los permisos solicitados.", evidence=True) as done:
            await self._set_permissions()
            done.append("Permisos marcados.")
        self.skip(Step.CONFIRM, "La modificación de un usuario existente no tiene página de confirmación.")
        async with self.stage(Step.SAVE, "Guardando los cambios en el SII.") as done:
            self._mark_saved()
            await self._click(_SAVE_CHANGES, "saving the changes", exact_only=False)
            done.append("Solicitud de modificación enviada.")
        async with self.stage(Step.RESULT, "Leyendo el resultado.", evidence=True) as done:
            def result(snap: _Snapshot) -> tuple[SiiUserRecord, _Snapshot] | None:
                if result_kind(snap.html) == "eliminated":
                    # Never expected (the delete option is unticked): stop and report loudly.
                    raise errors.VerificationFailed(
                        f"SII answered a permission change of {request.user_rut} with an elimination page",
                        page_html=snap.html,
                    )
                try:
                    return parse_result(snap.html), snap
                except ParseError:
                    return None

            record, snap = await self._wait_for(result, "the result page")
            self._verify(record, snap, saved=True)
            done.append(f"El SII actualizó los permisos del usuario {record.user_rut}.")
        return self._result("updated", record)

    async def _current_checkboxes(self) -> dict[str, bool] | None:
        """Checked state of SUP_USU/FIRMAR/CONSULTAR on the current form, or None if one is missing."""
        state: dict[str, bool] = {}
        for permission in Permission:
            found = None
            for frame in self._frames():
                locator = frame.locator(f'input[type="checkbox" i][name="{permission.field_name}" i]')
                try:
                    if await locator.count():
                        found = await locator.first.is_checked()
                        break
                except Exception:  # noqa: BLE001
                    continue
            if found is None:
                return None
            state[permission.value] = found
        return state

    def _already(self, existing: SiiUser, company_name: str, *, from_edit: bool = False) -> EnrollmentResult:
        request = self.request
        assert request is not None
        message = "El usuario ya estaba autorizado con exactamente esos permisos; no se grabó nada."
        if not from_edit:
            self.skip(Step.NEW_USER, message)
        for step in (Step.FILL_FORM, Step.CONFIRM, Step.SAVE):
            self.skip(step, message)
        self.step = Step.RESULT
        self.emit(Step.RESULT, "done", message)
        record = SiiUserRecord(
            company_name=company_name,
            company_rut=request.company_rut,
            user_rut=request.user_rut,
            user_name=existing.name,
            admin=request.admin,
            sign=request.sign,
            registry=request.registry,
            authorized_by="",
        )
        return self._result("already_authorized", record)

    def _result(self, outcome: Outcome, record: SiiUserRecord) -> EnrollmentResult:
        return EnrollmentResult(
            outcome=outcome,
            record=record,
            screenshots=self.job.screenshots,
            duration_seconds=time.monotonic() - self.job.started,
        )

    def _mark_saved(self) -> None:
        """Something is about to be submitted for saving: the list read so far may be stale."""
        self.saved_since_list = True
        self.saved_any = True

    # -- edit screen -----------------------------------------------------------------------------------

    async def _open_edit_screen(self, user_rut: str) -> tuple[_Snapshot, SiiEditScreen]:
        """Click the user's "Modificar" on the list; return the edit screen once it is proven to be the
        one of exactly this company and user (``EditScreenMismatch`` otherwise, nothing saved)."""
        await self._click(_EDIT_USER, "opening the user's edit screen", row_rut=user_rut, exact_only=True)

        def edit_form(snap: _Snapshot) -> tuple[_Snapshot, SiiEditScreen] | None:
            if not snap.has_control(_SAVE_CHANGES, exact_only=False):
                return None
            try:
                return snap, parse_edit_screen(snap.html)
            except ParseError:
                return None

        snap, screen = await self._wait_for(edit_form, "the edit screen («Guardar Cambios»)")
        problems = []
        if not screen.user_ruts:
            problems.append("it names no user")
        elif set(screen.user_ruts) != {user_rut}:
            problems.append(f"it names user {', '.join(screen.user_ruts)}, not {user_rut}")
        if not screen.company_ruts:
            problems.append("it names no company")
        elif set(screen.company_ruts) != {self.company_rut}:
            problems.append(f"it names company {', '.join(screen.company_ruts)}, not {self.company_rut}")
        if problems:
            raise errors.EditScreenMismatch(f"the edit screen is not the requested one: {'; '.join(problems)}",
                                            page_html=snap.html)
        return snap, screen

    # -- removal ---------------------------------------------------------------------------------------

    async def _remove(self, user_rut: str, users: list[SiiUser], company_name: str, *, reopen: bool,
                named: tuple[str, ...]) -> _Removal:
        """Delete ``user_rut`` through its edit screen (OPEN_EDIT, DELETE); VERIFY is separate.

        ``users`` is the list read last; with ``reopen`` the list is read again first (the page on
        screen is not the list, e.g. after adding the new representative).
        """
        existing = next((u for u in users if u.rut == user_rut), None)
        absent = f"El usuario {user_rut} no figura en la lista de usuarios autorizados; no hay nada que eliminar."
        if existing is None and not reopen:
            self.skip(Step.OPEN_EDIT, absent)
            self.skip(Step.DELETE, absent)
            return _Removal("not_present", company_name)

        async with self.stage(Step.OPEN_EDIT, f"Abriendo la ficha del usuario {user_rut}.") as done:
            if reopen:
                users, shown_name, _ = await self._reopen_list(named)
                company_name = shown_name or company_name
                existing = next((u for u in users if u.rut == user_rut), None)
            if existing is not None:
                snap, screen = await self._open_edit_screen(user_rut)
                if screen.delete_kind is None:
                    raise errors.DeleteUnavailable(
                        f"the edit screen of {user_rut} has no delete option (checkbox or control)",
                        page_html=snap.html,
                    )
                done.append(f"Ficha del usuario {user_rut} abierta; muestra exactamente la empresa y el usuario "
                            "solicitados.")
            else:
                done.append(absent)
        if existing is None:
            self.skip(Step.DELETE, absent)
            return _Removal("not_present", company_name)

        async with self.stage(Step.DELETE, f"Eliminando al usuario {display_rut(user_rut)} de la empresa {display_rut(self.company_rut)}.",
                        evidence=True) as done:
            confirms = len(self.delete_confirms)
            self.delete_armed = True
            try:
                self._mark_saved()
                if screen.delete_kind == "checkbox":
                    await self._tick_delete(screen.delete_name)
                    navigations = self.navigations
                    await self._click(_SAVE_CHANGES, "saving the deletion («Guardar Cambios»)", exact_only=False)
                else:
                    labels = tuple(dict.fromkeys((screen.delete_name, *_DELETE_USER)))
                    navigations = self.navigations
                    await self._click(labels, "deleting the user", exact_only=False)
                await self._await_navigation(navigations)
                sii_result, snap = await self._removal_answer(user_rut)
            finally:
                self.delete_armed = False
            confirm_text = next(iter(self.delete_confirms[confirms:]), None)
            if sii_result is not None:
                done.append(f"El SII informó la eliminación del usuario {sii_result.user_rut or user_rut}.")
            else:
                done.append("El SII no mostró un mensaje de eliminación reconocible; se verificará en la lista.")
        return _Removal("revoked", company_name, existing, sii_result, confirm_text)

    async def _await_navigation(self, since: int) -> None:
        """After a click answered by a confirm(), wait until the page actually navigates (or an alert
        shows, or the step time runs out): until then the old page is still on screen."""
        deadline = self._step_deadline()
        while self.navigations == since and time.monotonic() < deadline:
            if any(d.kind == "alert" for d in self.dialogs[self.dialogs_seen:]):
                return
            self._check_cancelled()
            await self._sleep()

    async def _tick_delete(self, name: str) -> None:
        token = secrets.token_hex(6)
        for frame in self._frames():
            try:
                found = await frame.evaluate(_JS_MARK_CHECKBOX, [name, "Eliminar usuario", token])
            except Exception:  # noqa: BLE001
                continue
            if found is not None:
                box = frame.locator(f'[data-siibot="{token}"]').first
                await box.set_checked(True, timeout=self._timeout_ms())
                if not await box.is_checked():
                    raise self._unexpected("the delete option could not be ticked", await self._snapshot())
                return
        raise self._unexpected(f"no delete checkbox {name!r}", await self._snapshot())

    async def _removal_answer(self, user_rut: str) -> tuple[SiiRemovalRecord | None, _Snapshot]:
        """Wait for SII's answer to the deletion: its elimination page (parsed), or any other page that
        reports no error (then only the list can tell: None). A modification page means SII saved the
        user instead of deleting it (``UserStillPresent``); the edit screen still there means the
        deletion was never submitted (``UnexpectedPage``)."""

        class _Other(Exception):
            def __init__(self, snap: _Snapshot) -> None:
                self.snap = snap

        def answer(snap: _Snapshot) -> tuple[SiiRemovalRecord | None, _Snapshot] | None:
            kind = result_kind(snap.html)
            if kind == "eliminated":
                return parse_elimination_result(snap.html), snap
            if kind in ("modified", "created"):
                raise errors.UserStillPresent(
                    f"SII answered the deletion of {user_rut} with a modification page: the user was saved, "
                    "not deleted", page_html=snap.html,
                )
            return None

        async def other(snap: _Snapshot) -> bool:
            if snap.has_control(_SAVE_CHANGES, exact_only=False) and mentions_user(snap.html, user_rut):
                try:
                    parse_edit_screen(snap.html)
                except ParseError:
                    pass
                else:
                    raise self._unexpected("the edit screen is still shown after «Guardar Cambios»", snap)
            raise _Other(snap)

        try:
            return await self._wait_for(answer, "SII's answer to the deletion", on_other=other)
        except _Other as unknown:
            log.info("SII answered the deletion with an unrecognized page (%s); the list will tell", unknown.snap.url)
            return None, unknown.snap

    async def _verify_final(self, *, before: list[SiiUser], removed: str, added: EnrollmentRequest | None,
                      named: tuple[str, ...]) -> dict[str, SiiUser | None]:
        """VERIFY: read the list again (if anything was submitted since it was last read) and check that
        ``removed`` is gone, ``added`` is there with its permissions and nobody else vanished or changed."""
        async with self.stage(Step.VERIFY, "Revisando nuevamente la lista de usuarios autorizados.", evidence=True) as done:
            snap: _Snapshot | None = None
            if self.saved_since_list:
                users, _, snap = await self._reopen_list(named)
            else:
                users = self.last_users
            now = {u.rut: u for u in users}
            problems: list[str] = []
            for user in before:
                if user.rut in (removed, added.user_rut if added else None):
                    continue
                current = now.get(user.rut)
                if current is None:
                    problems.append(f"user {user.rut} is no longer listed")
                elif _flags(current) != _flags(user):
                    problems.append(f"user {user.rut} changed from {_flags(user)} to {_flags(current)}")
            if added is not None:
                entry = now.get(added.user_rut)
                if entry is None:
                    problems.append(f"the new representative {added.user_rut} is not listed")
                else:
                    for name, wanted in added.flags().items():
                        shown = getattr(entry, name)
                        if shown is not None and shown != wanted:
                            problems.append(f"{added.user_rut}: {name} shown {shown}, requested {wanted}")
            html = snap.html if snap is not None else None
            if problems:
                raise errors.VerificationFailed(f"after the changes, the user list: {'; '.join(problems)}",
                                                page_html=html)
            if removed in now:
                raise errors.UserStillPresent(f"user {removed} is still on the list after its deletion",
                                              page_html=html)
            shows = (f"La lista muestra al usuario {added.user_rut} con los permisos solicitados y " if added
                     else "La lista ")
            if not self.saved_any:
                done.append(f"{shows}no incluye al usuario {removed}; no se hizo ningún cambio en el SII.")
            else:
                done.append(f"{shows}ya no incluye al usuario {removed}; los demás usuarios no cambiaron.")
        return {rut: now.get(rut) for rut in named}

    async def _run_revocation(self, request: RevocationRequest) -> RevocationResult:
        await self._start()
        named = (request.user_rut,)
        users, company_name = await self._company_and_list(named)
        removal = await self._remove(request.user_rut, users, company_name, reopen=False, named=named)
        final = await self._verify_final(before=users, removed=request.user_rut, added=None, named=named)
        return removal.result(self, request.user_rut, final, screenshots=self.job.screenshots,
                              duration=time.monotonic() - self.job.started)

    async def _run_replacement(self, request: ReplacementRequest) -> ReplacementResult:
        await self._start()
        named = (request.new_user_rut, request.old_user_rut)
        before, company_name = listed = await self._company_and_list(named)
        try:
            added = await self._authorize(listed, named)
        except errors.EnrollmentFailure as failure:
            failure.phase = "add"  # nothing was removed
            raise
        addition = EnrollmentResult(outcome=added.outcome, record=added.record,
                                    duration_seconds=time.monotonic() - self.job.started)
        try:
            snap = await self._snapshot()
            on_list = added.outcome == "already_authorized" and snap is not None and self._is_user_list(snap)
            removal = await self._remove(request.old_user_rut, self.last_users, company_name, reopen=not on_list,
                                   named=named)
            final = await self._verify_final(before=before, removed=request.old_user_rut, added=request.addition,
                                       named=named)
        except errors.VerificationFailed as failure:
            failure.phase = "verify"
            failure.addition = addition
            raise
        except errors.EnrollmentFailure as failure:
            await self._evidence(failure)
            raise errors.ReplacementIncomplete.after(failure, addition, request.old_user_rut) from failure
        except Exception as exc:  # a bug after the addition: still say the new one is in place
            failure = errors.InternalError(f"{type(exc).__name__}: {_first_line(exc)}")
            await self._evidence(failure)
            raise errors.ReplacementIncomplete.after(failure, addition, request.old_user_rut) from exc
        duration = time.monotonic() - self.job.started
        return ReplacementResult(
            outcome="replaced",
            addition=addition,
            removal=removal.result(self, request.old_user_rut, {request.old_user_rut: final[request.old_user_rut]},
                                   screenshots=[], duration=duration - addition.duration_seconds),
            final_entries=final,
            screenshots=self.job.screenshots,
            duration_seconds=duration,
        )

    # -- logout ----------------------------------------------------------------------------------------

    async def _logout(self) -> None:
        """Close the SII session (SII limits sessions per person); never raises."""
        if not self.logged_in:
            self.skip(Step.LOGOUT, "No se alcanzó a iniciar sesión en el SII.")
            return
        self.step = Step.LOGOUT
        self.emit(Step.LOGOUT, "started", "Cerrando la sesión en el SII.")
        # A bounded wait even when the job budget is spent: an open session blocks later logins.
        timeout = min(10.0, self.settings.step_timeout_seconds) * 1000
        for attempt in (1, 2):
            try:
                await self.page.goto(self.settings.logout_url, wait_until="commit", timeout=timeout)
                self.emit(Step.LOGOUT, "done", "Sesión del SII cerrada.")
                return
            except Exception as exc:  # noqa: BLE001
                # ERR_ABORTED: a navigation the page had started (e.g. the login's redirect) replaced
                # ours; once it lands, the second attempt goes through.
                log.warning("SII logout attempt %d failed: %s", attempt, _first_line(exc))
        self.emit(Step.LOGOUT, "failed", "No se pudo confirmar el cierre de la sesión en el SII; "
                                         "expirará automáticamente.")


@dataclass
class _Removal:
    """What the removal part did (internal; becomes a ``RevocationResult``)."""

    outcome: RevocationOutcome
    company_name: str
    removed: SiiUser | None = None
    sii_result: SiiRemovalRecord | None = None
    confirm_text: str | None = None

    def result(self, flow: _Flow, user_rut: str, final: dict[str, SiiUser | None], *,
               screenshots: list[tuple[str, bytes]], duration: float) -> RevocationResult:
        return RevocationResult(
            outcome=self.outcome,
            company_rut=flow.company_rut,
            user_rut=user_rut,
            company_name=self.company_name,
            removed=self.removed,
            sii_result=self.sii_result,
            confirm_text=self.confirm_text,
            final_entries=final,
            screenshots=screenshots,
            duration_seconds=duration,
        )


def _flags(user: SiiUser) -> tuple[bool | None, bool | None, bool | None]:
    return (user.admin, user.sign, user.registry)


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
    → ``RevocationResult``, ``ReplacementRequest`` → ``ReplacementResult``. ``emit`` receives every
    ``ProgressEvent`` (in this thread). Raises an ``EnrollmentFailure`` (with step, page HTML and
    screenshot when there was a page) otherwise.
    """
    job = _Job(request=request, settings=settings, emit=emit, cancelled=cancelled or threading.Event())
    blocked: list[str] = []
    context: BrowserContext | None = None
    try:
        try:
            context = await new_job_context(browser, settings, certificate, on_blocked=blocked.append)
            page = await context.new_page()
        except errors.EnrollmentFailure:
            raise
        except Exception as exc:  # noqa: BLE001
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "closed" in message.lower() or "disconnected" in message.lower():
                raise errors.BrowserCrashed(f"creating the browser context: {message}") from None
            # Playwright validates the certificate/key here (e.g. a key that does not match).
            raise errors.CertificateRejected(f"the browser refused the certificate material: {message}") from None
        page.set_default_timeout(settings.step_timeout_seconds * 1000)
        page.set_default_navigation_timeout(settings.step_timeout_seconds * 1000)
        flow = _Flow(page, job)
        flow.blocked = blocked
        try:
            return await flow.run()
        except errors.EnrollmentFailure as failure:
            await flow._evidence(failure)
            raise
        except Exception as exc:  # noqa: BLE001 - turn Playwright/bot errors into typed failures
            failure = flow._playwright_failure(exc, f"step {flow.step.value if flow.step else '?'}")
            if isinstance(failure, errors.UnexpectedPage) and not _is_playwright_error(exc):
                failure = errors.InternalError(f"{type(exc).__name__}: {_first_line(exc)}")
            raise await flow._evidence(failure) from exc
    finally:
        if context is not None:
            try:
                await context.close()
            except Exception:  # noqa: BLE001
                pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_playwright_error(exc: BaseException) -> bool:
    from playwright.async_api import Error as PlaywrightError

    return isinstance(exc, PlaywrightError)
