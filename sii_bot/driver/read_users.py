"""Reading users: the authorized users of several companies, in one SII session.

Log in once with the certificate; then, for each company, the company RUT form → the user list,
parsed → back to the company form for the next one; log out always. Nothing is ever submitted but
the company RUT form, so nothing can be saved.

A failure that belongs to one company (the holder may not administer it, it is not an electronic
issuer, its list page is not what the bot expects) is recorded for that company and the run goes on
with the next. A failure of the session (login refused, too many sessions, SII unavailable, the
session gone, the time budget spent) ends the run: the company being read and every company after it
carry that failure. Either way the run returns a ``UsersReadResult``.

Requests to SII per company after the login: the company form (one or two screens, as SII shows
it) and, from the second company on, one request to get back to the company form: the list page's
own company field if it has one, else the enrolment URL (the one URL the bot is configured with).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .. import errors
from ..models import CompanyUsersRead, Step, UsersReadRequest, UsersReadResult
from ..rut import display_rut
from .records import Job
from .session import Session

if TYPE_CHECKING:
    from playwright.async_api import Page

__all__ = ["COMPANY_FAILURES", "ReadUsersFlow"]

log = logging.getLogger(__name__)

# Failures that concern only the company being read: the run goes on with the next one. Anything
# else (login, session limits, outages, an expired session, timeouts, a cancelled job) is the
# session's and ends the run.
COMPANY_FAILURES: tuple[type[errors.EnrollmentFailure], ...] = (
    errors.HolderNotAdministrator,
    errors.CompanyNotAuthorized,
    errors.OptionNotAllowed,
    # The list page named another company, or could not be read as a list: SII's page for this
    # company, not the session, is what is wrong.
    errors.ConfirmationMismatch,
    errors.UnexpectedPage,
)


class ReadUsersFlow(Session):
    """Read the user list of every company of a ``UsersReadRequest`` in one session."""

    def __init__(self, page: Page, job: Job) -> None:
        super().__init__(page, job)
        request = job.request
        assert isinstance(request, UsersReadRequest)
        self.companies: tuple[str, ...] = request.company_ruts
        # Nobody is being authorized: the list is never a decision about one user.
        self.request = None
        self.logins = 0
        self.reads: list[CompanyUsersRead] = []

    async def run(self) -> UsersReadResult:
        """Log in, read every company, log out whatever happened; never raises an ``EnrollmentFailure``."""
        try:
            try:
                await self.start()
                self.logins += 1
                await self._read_all()
            except errors.EnrollmentFailure as failure:
                # The session's failure: for the company being read and every one after it.
                if failure.step is None and self.step is not None:
                    failure.step = self.step.value
                for rut in self.companies[len(self.reads):]:
                    self.reads.append(CompanyUsersRead(company_rut=rut, failure=failure.to_dict()))
                log.info("reading users ended early (%s) after %d of %d companies", failure.code,
                         sum(1 for r in self.reads if r.ok), len(self.companies))
        finally:
            await self._logout()
        return UsersReadResult(
            per_company=self.reads,
            logins=self.logins,
            screenshots=self.job.screenshots,
            duration_seconds=time.monotonic() - self.job.started,
        )

    async def run_steps(self) -> UsersReadResult:  # pragma: no cover - ``run`` is the whole flow
        raise NotImplementedError

    async def _read_all(self) -> None:
        """Read each company in turn; company failures are recorded, session failures raised."""
        on_list = False  # whether the page is a user list just read (the previous company succeeded)
        for index, rut in enumerate(self.companies):
            self.company_rut = rut
            if index:
                if self.settings.company_pause_seconds:
                    # Politeness: a long run spaces its companies out (the SII sees one person reading).
                    await self.page.wait_for_timeout(self.settings.company_pause_seconds * 1000)
                await self._back_to_company_form(on_list)
            try:
                users, company_name = await self.company_and_list()
            except COMPANY_FAILURES as failure:
                log.info("company %s could not be read: %s", rut, failure.code)
                self.reads.append(CompanyUsersRead(company_rut=rut, failure=failure.to_dict()))
                on_list = False
                continue
            self.reads.append(CompanyUsersRead(company_rut=rut, company_name=company_name, users=list(users)))
            on_list = True

    async def _back_to_company_form(self, on_list: bool) -> None:
        """Get the company RUT form on screen for the next company, with at most one request.

        A list page that carries its own company field is reused as is (no request). Otherwise, and
        always after a failed company (its error page may show the form next to SII's message, which
        would be read as the next company's answer), the enrolment URL is opened again.
        """
        if on_list:
            snap = await self.snapshot()
            if snap is not None and snap.has_field("RUT_EMP") and self.is_user_list(snap):
                return
        try:
            await self.goto(self.settings.enroll_url,
                            f"reopening the enrolment page for company {display_rut(self.company_rut)}")
        except errors.EnrollmentFailure as failure:
            # Outside a stage: report it as this company's step, as a failed form submission would be.
            self.step = Step.COMPANY
            self.emit(Step.COMPANY, "failed", failure.user_message)
            raise

