"""The SII session every flow runs in: a fresh browser context with the client certificate
(``job_page``), then, on its page, open the enrolment page, log in with the certificate, pick the
company, read its user list, open a user's edit screen, and log out (always, in a ``finally``).

The flows (``enroll``, ``revoke``, ``replace``) subclass ``Session`` and implement ``run_steps``;
they follow each page's forms, field names and visible labels, never hard-coded intermediate URLs.

``resuming`` runs a flow's part from the company step on and, when the session expires mid-flow
(SII's login comes back, or codes ...28/...29) or a save is answered with an error, starts it over
within the same attempt: logging in again first if needed, then company, user list (which tells
whether the save went through) and on. ``settings.resume_limit`` bounds it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from .. import errors
from ..browser import new_job_context, origin_of
from ..certificates import CertificateMaterial
from ..models import (
    EnrollmentRequest,
    ReplacementRequest,
    RevocationRequest,
    SiiEditScreen,
    SiiUser,
    Step,
)
from ..rut import display_rut, is_person_rut, split_rut
from ..screens import (
    ParseError,
    company_header,
    find_ruts,
    is_login_page,
    mentions_user,
    parse_edit_screen,
    parse_user_list,
)
from ..settings import SiiSettings
from .controls import Controls
from .records import Job, JobResult, Labels, Snapshot, first_line

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

__all__ = ["Session", "job_page"]

log = logging.getLogger(__name__)

R = TypeVar("R")


@asynccontextmanager
async def job_page(browser: Browser, settings: SiiSettings, certificate: CertificateMaterial,
                   blocked: list[str]) -> AsyncIterator[Page]:
    """A page in a fresh context of ``browser`` that presents ``certificate``; the context is closed on exit.

    Navigations the context refuses (origins outside the configured SII origins) are appended to
    ``blocked``. ``BrowserCrashed`` when the browser is gone, ``CertificateRejected`` when Playwright
    refuses the certificate material.
    """
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
        yield page
    finally:
        if context is not None:
            try:
                await context.close()
            except Exception:  # noqa: BLE001, S110 - the browser may already be gone
                pass


class Session(Controls):
    """One job's SII session on one page (single use); subclasses implement ``run_steps``."""

    def __init__(self, page: Page, job: Job) -> None:
        super().__init__(page, job)
        request = job.request
        self.company_rut = request.company_rut
        # The user being authorized (enrolment, or the first part of a replacement); None for revocations.
        self.request: EnrollmentRequest | None = (
            request.addition if isinstance(request, ReplacementRequest)
            else None if isinstance(request, RevocationRequest) else request
        )
        # The last user list read, and whether anything was submitted for saving since then.
        self.last_users: list[SiiUser] = []
        self.saved_since_list = False
        self.saved_any = False
        self.logged_in = False
        # Inside ``resuming``, and how many times this attempt started over.
        self.resumable = False
        self.resumes = 0
        self.relogins = 0

    async def run(self) -> JobResult:
        """Run the job's steps, then log out whatever happened."""
        try:
            return await self.run_steps()
        finally:
            await self._logout()

    async def run_steps(self) -> JobResult:
        """The job's steps, from opening the enrolment page to its result (logout excluded)."""
        raise NotImplementedError

    async def start(self) -> None:
        """Open the enrolment page and log in with the certificate."""
        async with self.stage(Step.OPEN_PAGE, "Abriendo la página Mantención de usuarios autorizados del SII.") as done:
            await self.goto(self.settings.enroll_url, "opening the enrolment page")
            done.append("Página del SII abierta.")
        async with self.stage(Step.LOGIN, "Identificándose en el SII con el certificado digital.") as done:
            self.logged_in = True  # from here on cookies may exist: always log out
            tries = 0
            while True:
                try:
                    await self._login()
                    break
                except errors.EnrollmentFailure as failure:
                    # SII's advice for some answers is to present the certificate once more.
                    if tries >= failure.login_retries:
                        raise
                    tries += 1
                    self.emit(Step.LOGIN, "started",
                              "Reintentando: el SII pidió presentar nuevamente el certificado digital.")
                    await self.page.wait_for_timeout(self.settings.backoff_seconds(tries) * 1000)
                    await self.goto(self.settings.enroll_url, "opening the enrolment page again")
            done.append("Identificación con certificado digital aceptada por el SII.")

    async def resuming(self, part: Callable[[], Awaitable[R]]) -> R:
        """Run ``part`` (which starts at the company form) and start it over after a session expiry
        or an error on a save, at most ``settings.resume_limit`` times; other failures end it."""
        self.resumable = True
        try:
            while True:
                try:
                    return await part()
                except errors.EnrollmentFailure as failure:
                    if self.resume_message(failure) is None:
                        raise
                    self.resumes += 1
                    log.info("resuming from the company step (%d/%d) after %s: %s", self.resumes,
                             self.settings.resume_limit, failure.code, failure.detail[:200])
                    # A failure while getting back is the end of the attempt, reported as such.
                    self.resumable = False
                    await self._resume_after(failure)
                    self.resumable = True
        finally:
            self.resumable = False

    def resume_message(self, failure: errors.EnrollmentFailure) -> str | None:
        """The "Reintentando" progress message when ``resuming`` will start over after ``failure``."""
        if not self.resumable or self.resumes >= self.settings.resume_limit:
            return None
        count = f"({self.resumes + 1}/{self.settings.resume_limit})"
        if isinstance(failure, errors.SessionExpired):
            if self.relogins >= self.settings.relogin_limit:
                return None
            return f"Reintentando: la sesión del SII expiró; volveremos a identificarnos y a continuar {count}."
        if self.saving and self.is_transient(failure):
            return ("Reintentando: el SII respondió con un error al grabar; revisaremos la lista de usuarios "
                    f"antes de volver a grabar {count}.")
        return None

    async def _resume_after(self, failure: errors.EnrollmentFailure) -> None:
        """Back to the company form: log in again when the session expired, else reopen the enrolment page."""
        # Whatever was saved or not, the list read next tells: nothing is requested again blindly.
        self.saving = False
        self.replays = 0
        self.dialogs_seen = len(self.dialogs)
        if isinstance(failure, errors.SessionExpired):
            self.relogins += 1
            async with self.stage(Step.LOGIN, "Volviendo a identificarse en el SII con el certificado digital.") as done:
                self.session_lost = None
                # The page may still be on its way somewhere (the portal, after the refused login dialog).
                await self.settle()
                await self.goto(self.settings.enroll_url, "opening the enrolment page again")
                await self._login()
                done.append("Identificación con certificado digital aceptada nuevamente por el SII.")
        else:
            await self.goto(self.settings.enroll_url, "reopening the enrolment page")

    async def _login(self) -> None:
        """From wherever ``enroll_url`` landed, through the certificate login, back to the company form."""
        enroll_origin = origin_of(self.settings.enroll_url)
        clicked: list[str] = []

        def arrived(snap: Snapshot) -> bool | None:
            if origin_of(snap.url) != enroll_origin or is_login_page(snap.html, snap.url):
                if "errorp" in snap.url.lower():
                    raise errors.CertificateRejected(
                        f"SII sent the login to its certificate error page ({snap.url})",
                        page_html=snap.html, sii_text=snap.text[:300],
                    )
                return None
            return True if snap.has_field("RUT_EMP") else None

        async def other(snap: Snapshot) -> bool:
            # The "IDENTIFICACIÓN DE CONTRIBUYENTES" entry: follow its certificate link (once).
            if len(clicked) < 2 and snap.has_control(Labels.CERT_LOGIN, exact_only=False):
                clicked.append(await self.click(Labels.CERT_LOGIN, "the certificate login link"))
                return True
            if origin_of(snap.url) != enroll_origin:
                raise errors.CertificateRejected(
                    f"the certificate login ended at {snap.url} instead of the enrolment page",
                    page_html=snap.html, sii_text=snap.text[:300],
                )
            return False

        await self.wait_for(arrived, "the company RUT form after the certificate login", login_allowed=True,
                            on_other=other)

    async def company_and_list(self, named: tuple[str, ...] = ()) -> tuple[list[SiiUser], str]:
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
        form = await self.wait_for(lambda s: s if s.has_field("RUT_EMP") else None, "the company RUT form")
        for _screen in range(3):
            if form.has_field("DV_EMP"):
                await self.fill({"RUT_EMP": body, "DV_EMP": dv})
            else:
                await self.fill({"RUT_EMP": f"{body}-{dv}"})
            await self.click(Labels.SUBMIT_COMPANY, "submitting the company RUT", exact_only=True)

            def next_page(snap: Snapshot) -> tuple[str, Snapshot] | None:
                # The list first: it may carry its own company field (e.g. to switch companies).
                if self.is_user_list(snap):
                    return "list", snap
                if snap.has_field("RUT_EMP"):
                    return "again", snap
                return None

            where, form = await self.wait_for(next_page, "the user list or the company form")
            if where == "list":
                return
        raise self.unexpected("the company RUT form kept coming back", await self.snapshot())

    async def _read_list(self, named: tuple[str, ...] = ()) -> tuple[list[SiiUser], str, Snapshot]:
        """Parse the user list on screen: users, company name and the page."""
        snap = await self.wait_for(lambda s: s if self.is_user_list(s) else None, "the authorized-user list")
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
                raise self.unexpected(f"the list page names {rut} but it could not be read as a list entry", snap)
        self.last_users = users
        self.saved_since_list = False
        self.saving = False
        return users, company_name, snap

    async def reopen_list(self, named: tuple[str, ...] = ()) -> tuple[list[SiiUser], str, Snapshot]:
        """Read the user list again from the start (same session): enrolment page, company, list."""
        await self.goto(self.settings.enroll_url, "reopening the enrolment page")
        await self._submit_company()
        return await self._read_list(named)

    def is_user_list(self, snap: Snapshot) -> bool:
        """True when ``snap`` is the user list (its "Ingresar Nuevo Usuario", and no user form)."""
        return snap.has_control(Labels.NEW_USER, exact_only=False) and not snap.has_field("RUT_USU")

    def mark_saved(self) -> None:
        """Something is about to be submitted for saving: the list read so far may be stale, and that
        request must never be sent again (only the list can tell whether it went through)."""
        self.saved_since_list = True
        self.saved_any = True
        self.saving = True

    async def open_edit_screen(self, user_rut: str) -> tuple[Snapshot, SiiEditScreen]:
        """Click the user's "Modificar" on the list; return the edit screen once it is proven to be the
        one of exactly this company and user (``EditScreenMismatch`` otherwise, nothing saved)."""
        await self.click(Labels.EDIT_USER, "opening the user's edit screen", row_rut=user_rut, exact_only=True)

        def edit_form(snap: Snapshot) -> tuple[Snapshot, SiiEditScreen] | None:
            if not snap.has_control(Labels.SAVE_CHANGES, exact_only=False):
                return None
            try:
                return snap, parse_edit_screen(snap.html)
            except ParseError:
                return None

        snap, screen = await self.wait_for(edit_form, "the edit screen («Guardar Cambios»)")
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
                log.warning("SII logout attempt %d failed: %s", attempt, first_line(exc))
        self.emit(Step.LOGOUT, "failed", "No se pudo confirmar el cierre de la sesión en el SII; "
                                         "expirará automáticamente.")
