"""Revocation: remove a user from a company's authorized users.

The user's edit screen is opened from the list and checked to show exactly the requested company and
user; the delete option is ticked (or its own control clicked), the delete ``confirm()`` accepted
(the only time such a dialog is), and "Guardar Cambios" submitted. Then the list is read again: the
user must be gone and every other user untouched. A user not on the list is a success with nothing
saved ("not_present").
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from .. import errors
from ..models import (
    EnrollmentRequest,
    Permission,
    RevocationOutcome,
    RevocationRequest,
    RevocationResult,
    SiiRemovalRecord,
    SiiUser,
    Step,
)
from ..rut import display_rut
from ..screens import ParseError, mentions_user, parse_edit_screen, parse_elimination_result, result_kind
from .records import Labels, Snapshot
from .scripts import JS_MARK_CHECKBOX
from .session import Session

__all__ = ["Removal", "RevokeFlow"]

log = logging.getLogger(__name__)


class RevokeFlow(Session):
    """Remove a user (a ``RevocationRequest``); ``remove`` and ``verify_final`` also serve replacements."""

    async def run_steps(self) -> RevocationResult:
        request = self.job.request
        assert isinstance(request, RevocationRequest)
        await self.start()
        named = (request.user_rut,)
        users, company_name = await self.company_and_list(named)
        removal = await self.remove(request.user_rut, users, company_name, reopen=False, named=named)
        final = await self.verify_final(before=users, removed=request.user_rut, added=None, named=named)
        return removal.result(self.company_rut, request.user_rut, final, screenshots=self.job.screenshots,
                              duration=time.monotonic() - self.job.started)

    async def remove(self, user_rut: str, users: list[SiiUser], company_name: str, *, reopen: bool,
                     named: tuple[str, ...]) -> Removal:
        """Delete ``user_rut`` through its edit screen (OPEN_EDIT, DELETE); VERIFY is separate.

        ``users`` is the list read last; with ``reopen`` the list is read again first (the page on
        screen is not the list, e.g. after adding the new representative).
        """
        existing = next((u for u in users if u.rut == user_rut), None)
        absent = f"El usuario {user_rut} no figura en la lista de usuarios autorizados; no hay nada que eliminar."
        if existing is None and not reopen:
            self.skip(Step.OPEN_EDIT, absent)
            self.skip(Step.DELETE, absent)
            return Removal("not_present", company_name)

        async with self.stage(Step.OPEN_EDIT, f"Abriendo la ficha del usuario {user_rut}.") as done:
            if reopen:
                users, shown_name, _ = await self.reopen_list(named)
                company_name = shown_name or company_name
                existing = next((u for u in users if u.rut == user_rut), None)
            if existing is not None:
                snap, screen = await self.open_edit_screen(user_rut)
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
            return Removal("not_present", company_name)

        async with self.stage(Step.DELETE, f"Eliminando al usuario {display_rut(user_rut)} de la empresa {display_rut(self.company_rut)}.",
                              evidence=True) as done:
            confirms = len(self.delete_confirms)
            self.delete_armed = True
            try:
                self.mark_saved()
                if screen.delete_kind == "checkbox":
                    await self._tick_delete(screen.delete_name)
                    navigations = self.navigations
                    await self.click(Labels.SAVE_CHANGES, "saving the deletion («Guardar Cambios»)", exact_only=False)
                else:
                    labels = tuple(dict.fromkeys((screen.delete_name, *Labels.DELETE_USER)))
                    navigations = self.navigations
                    await self.click(labels, "deleting the user", exact_only=False)
                await self._await_navigation(navigations)
                sii_result, snap = await self._removal_answer(user_rut)
            finally:
                self.delete_armed = False
            confirm_text = next(iter(self.delete_confirms[confirms:]), None)
            if sii_result is not None:
                done.append(f"El SII informó la eliminación del usuario {sii_result.user_rut or user_rut}.")
            else:
                done.append("El SII no mostró un mensaje de eliminación reconocible; se verificará en la lista.")
        return Removal("revoked", company_name, existing, sii_result, confirm_text)

    async def _await_navigation(self, since: int) -> None:
        """After a click answered by a confirm(), wait until the page actually navigates (or an alert
        shows, or the step time runs out): until then the old page is still on screen."""
        deadline = self.step_deadline()
        while self.navigations == since and time.monotonic() < deadline:
            if any(d.kind == "alert" for d in self.dialogs[self.dialogs_seen:]):
                return
            self.check_cancelled()
            await self.sleep()

    async def _tick_delete(self, name: str) -> None:
        """Tick the delete checkbox ``name`` (found by name, else by the "Eliminar usuario" text around it)."""
        token = secrets.token_hex(6)
        for frame in self.frames():
            try:
                found = await frame.evaluate(JS_MARK_CHECKBOX, [name, "Eliminar usuario", token])
            except Exception:  # noqa: BLE001, S112 - frame detached or navigating
                continue
            if found is not None:
                box = frame.locator(f'[data-siibot="{token}"]').first
                await box.set_checked(True, timeout=self.timeout_ms())
                if not await box.is_checked():
                    raise self.unexpected("the delete option could not be ticked", await self.snapshot())
                return
        raise self.unexpected(f"no delete checkbox {name!r}", await self.snapshot())

    async def _removal_answer(self, user_rut: str) -> tuple[SiiRemovalRecord | None, Snapshot]:
        """Wait for SII's answer to the deletion: its elimination page (parsed), or any other page that
        reports no error (then only the list can tell: None). A modification page means SII saved the
        user instead of deleting it (``UserStillPresent``); the edit screen still there means the
        deletion was never submitted (``UnexpectedPage``)."""

        class _Other(Exception):
            def __init__(self, snap: Snapshot) -> None:
                self.snap = snap

        def answer(snap: Snapshot) -> tuple[SiiRemovalRecord | None, Snapshot] | None:
            kind = result_kind(snap.html)
            if kind == "eliminated":
                return parse_elimination_result(snap.html), snap
            if kind in ("modified", "created"):
                raise errors.UserStillPresent(
                    f"SII answered the deletion of {user_rut} with a modification page: the user was saved, "
                    "not deleted", page_html=snap.html,
                )
            return None

        async def other(snap: Snapshot) -> bool:
            if snap.has_control(Labels.SAVE_CHANGES, exact_only=False) and mentions_user(snap.html, user_rut):
                try:
                    parse_edit_screen(snap.html)
                except ParseError:
                    pass
                else:
                    raise self.unexpected("the edit screen is still shown after «Guardar Cambios»", snap)
            raise _Other(snap)

        try:
            return await self.wait_for(answer, "SII's answer to the deletion", on_other=other)
        except _Other as unknown:
            log.info("SII answered the deletion with an unrecognized page (%s); the list will tell", unknown.snap.url)
            return None, unknown.snap

    async def verify_final(self, *, before: list[SiiUser], removed: str, added: EnrollmentRequest | None,
                           named: tuple[str, ...]) -> dict[str, SiiUser | None]:
        """VERIFY: read the list again (if anything was submitted since it was last read) and check that
        ``removed`` is gone, ``added`` is there with its permissions and nobody else vanished or changed."""
        async with self.stage(Step.VERIFY, "Revisando nuevamente la lista de usuarios autorizados.", evidence=True) as done:
            snap: Snapshot | None = None
            if self.saved_since_list:
                users, _, snap = await self.reopen_list(named)
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
                    # Only the attributes the firm manages: the others were left as they were.
                    for permission, wanted in added.wanted().items():
                        shown = entry.flag(permission)
                        if shown is not None and shown != wanted:
                            problems.append(f"{added.user_rut}: {permission.value} shown {shown}, requested {wanted}")
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


@dataclass
class Removal:
    """What the removal part did; ``result`` turns it into the ``RevocationResult``."""

    outcome: RevocationOutcome
    company_name: str
    removed: SiiUser | None = None
    sii_result: SiiRemovalRecord | None = None
    confirm_text: str | None = None

    def result(self, company_rut: str, user_rut: str, final: dict[str, SiiUser | None], *,
               screenshots: list[tuple[str, bytes]], duration: float) -> RevocationResult:
        """The ``RevocationResult`` with the list entries read last (``final``)."""
        return RevocationResult(
            outcome=self.outcome,
            company_rut=company_rut,
            user_rut=user_rut,
            company_name=self.company_name,
            removed=self.removed,
            sii_result=self.sii_result,
            confirm_text=self.confirm_text,
            final_entries=final,
            screenshots=screenshots,
            duration_seconds=duration,
        )


def _flags(user: SiiUser) -> tuple[bool | None, ...]:
    return tuple(user.flag(permission) for permission in Permission)
