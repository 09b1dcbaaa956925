"""Change of representative: authorize the new user, then remove the old one, in one SII session.

Adding first means the company is never left with neither. A failure while adding is the ordinary
typed failure (``phase`` "add", nothing removed); any failure of the removal becomes
``ReplacementIncomplete`` (the new representative is in place); a final list that does not look as
expected is ``VerificationFailed`` with ``phase`` "verify".
"""

from __future__ import annotations

import dataclasses
import time

from .. import errors
from ..models import ReplacementRequest, ReplacementResult
from .enroll import EnrollFlow
from .records import first_line
from .revoke import RevokeFlow

__all__ = ["ReplaceFlow"]


class ReplaceFlow(EnrollFlow, RevokeFlow):
    """Replace a company's representative (a ``ReplacementRequest``)."""

    async def run_steps(self) -> ReplacementResult:
        request = self.job.request
        assert isinstance(request, ReplacementRequest)
        await self.start()
        named = (request.new_user_rut, request.old_user_rut)
        before, company_name = listed = await self.company_and_list(named)
        try:
            added = await self.authorize(listed, named)
        except errors.EnrollmentFailure as failure:
            failure.phase = "add"  # nothing was removed
            raise
        addition = dataclasses.replace(added, screenshots=[], duration_seconds=time.monotonic() - self.job.started)
        try:
            snap = await self.snapshot()
            # Still (or again, after an update's check) on the list just read: no need to read it again.
            on_list = added.outcome != "created" and snap is not None and self.is_user_list(snap)
            removal = await self.remove(request.old_user_rut, self.last_users, company_name, reopen=not on_list,
                                        named=named)
            final = await self.verify_final(before=before, removed=request.old_user_rut, added=request.addition,
                                            named=named)
        except errors.VerificationFailed as failure:
            failure.phase = "verify"
            failure.addition = addition
            raise
        except errors.EnrollmentFailure as failure:
            await self.evidence(failure)
            raise errors.ReplacementIncomplete.after(failure, addition, request.old_user_rut) from failure
        except Exception as exc:  # a bug after the addition: still say the new one is in place
            failure = errors.InternalError(f"{type(exc).__name__}: {first_line(exc)}")
            await self.evidence(failure)
            raise errors.ReplacementIncomplete.after(failure, addition, request.old_user_rut) from exc
        duration = time.monotonic() - self.job.started
        return ReplacementResult(
            outcome="replaced",
            addition=addition,
            removal=removal.result(self.company_rut, request.old_user_rut,
                                   {request.old_user_rut: final[request.old_user_rut]},
                                   screenshots=[], duration=duration - addition.duration_seconds),
            final_entries=final,
            screenshots=self.job.screenshots,
            duration_seconds=duration,
        )
