"""Enrolment: authorize a user in a company with exactly the requested attributes among those the
firm manages.

The attribute checkboxes a page offers are read by field name, else by visible label
(``screens.permission_boxes``). A requested attribute the page does not offer (MIPYME pages show
three of the six) is reported (a progress event, ``EnrollmentResult.unavailable_permissions``),
never invented; the job fails (``PermissionsUnavailable``) only when none of the requested ones is
offered.

A new user goes through "Ingresar Nuevo Usuario", the form, SII's confirmation and "Grabar Usuario";
nothing is saved unless the confirmation shows, row by row, exactly the requested company, user and
attributes (requested and offered SI, every other NO). A user already on the list is either already
authorized (every managed attribute as requested: nothing saved) or updated through its edit screen
("Modificar", then "Guardar Cambios"): the managed attributes the screen offers are set as
requested, the others (and the delete option, left unticked) are not touched; the result page and
then the user list, read again, must show exactly that.

A save answered with an error (or a session that expired while saving) is never submitted again as
is: the attempt starts over from the company step (``Session.resuming``) and the user list decides.
If it shows the user with exactly the requested permissions, the save went through and the outcome
is what that save was ("created"/"updated"); otherwise the user is created or updated again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .. import errors
from ..models import (
    MIPYME_PERMISSIONS,
    EnrollmentResult,
    Outcome,
    Permission,
    PermissionBox,
    SiiEditScreen,
    SiiUser,
    SiiUserRecord,
    Step,
    permission_labels,
)
from ..rut import display_rut, split_rut
from ..screens import (
    ParseError,
    mentions_existing_user,
    parse_confirmation,
    parse_result,
    permission_boxes,
    result_kind,
)
from .records import Job, Labels, Snapshot
from .scripts import JS_READ_BOXES, JS_SET_BOXES
from .session import Session

if TYPE_CHECKING:
    from playwright.async_api import Page

__all__ = ["EnrollFlow"]

# The login may be re-entered after a user-exists race at most this many times.
_MAX_LIST_VISITS = 2


class EnrollFlow(Session):
    """Authorize ``self.request``'s user (an ``EnrollmentRequest``, or a replacement's addition)."""

    # What the last save submitted in this attempt would have done, until a result confirms it.
    pending_outcome: Outcome | None = None

    def __init__(self, page: Page, job: Job) -> None:
        super().__init__(page, job)
        # What the company's page offers (its checkboxes, or the list's columns) and which requested
        # attributes it lacks; the unavailable ones already reported as progress.
        self.offered: frozenset[Permission] = frozenset()
        self.unavailable: frozenset[Permission] = frozenset()
        self.reported: set[Permission] = set()
        # The user's list entry before anything was saved in this attempt, and on the last list read.
        self.previous: SiiUser | None = None
        self.final_entry: SiiUser | None = None

    async def run_steps(self) -> EnrollmentResult:
        await self.start()
        return await self.resuming(self._from_company)

    async def _from_company(self) -> EnrollmentResult:
        return await self.authorize(await self.company_and_list())

    async def authorize(self, listed: tuple[list[SiiUser], str], named: tuple[str, ...] = ()) -> EnrollmentResult:
        """Create or update ``self.request``'s user, starting from the list just read."""
        request = self.request
        assert request is not None
        for visit in range(_MAX_LIST_VISITS):
            if visit:
                # A user-exists race: read the list again from the start (the session is still valid).
                await self.goto(self.settings.enroll_url, "reopening the enrolment page")
                listed = await self.company_and_list(named)
            users, company_name = listed
            existing = next((u for u in users if u.rut == request.user_rut), None)
            self.final_entry = existing
            if not self.saved_any and self.previous is None:
                self.previous = existing
            if existing is None:
                outcome = await self._create(company_name)
            else:
                outcome = await self._update(existing, company_name)
            if outcome is not None:
                return outcome
        raise errors.UnexpectedPage("SII kept saying the user already exists but it was not in the list")

    # -- what the page offers ----------------------------------------------------------------------

    def _take_offer(self, offered: frozenset[Permission], snap: Snapshot) -> None:
        """Note what the page offers, report each requested attribute it lacks (once per job), and
        raise ``PermissionsUnavailable`` when it offers none of the requested ones."""
        request = self.request
        assert request is not None
        self.offered = offered
        self.unavailable = request.permissions - offered
        if offered == MIPYME_PERMISSIONS:
            system = " (sistema MIPYME)"
        elif offered:
            system = f" (el SII ofrece: {permission_labels(offered)})"
        else:
            system = ""
        for permission in Permission:
            if permission in self.unavailable and permission not in self.reported:
                self.reported.add(permission)
                self.emit(self.step or Step.FILL_FORM, "started",
                          f"El SII no ofrece «{permission.label}» para esta empresa{system}.")
        if not request.permissions & offered:
            raise errors.PermissionsUnavailable(
                f"the page offers {sorted(p.field_name for p in offered) or 'no attribute checkbox'}, none of the "
                f"requested {sorted(p.field_name for p in request.permissions)}",
                page_html=snap.html,
            )

    # -- a new user --------------------------------------------------------------------------------

    async def _create(self, company_name: str) -> EnrollmentResult | None:
        request = self.request
        assert request is not None
        body, dv = split_rut(request.user_rut)
        async with self.stage(Step.NEW_USER, "Abriendo «Ingresar Nuevo Usuario».") as done:
            await self.click(Labels.NEW_USER, "opening the new-user form", exact_only=False)
            form = await self.wait_for(lambda s: s if s.has_field("RUT_USU") and s.has_field("DV_USU") else None,
                                       "the new-user form (RUT_USU, DV_USU)")
            done.append("Formulario de nuevo usuario abierto.")
        async with self.stage(Step.FILL_FORM, f"Ingresando el RUT {display_rut(request.user_rut)} y los permisos solicitados.") as done:
            boxes = permission_boxes(form.html)
            self._take_offer(frozenset(box.permission for box in boxes), form)
            await self.fill({"RUT_USU": body, "DV_USU": dv})
            # A new user: requested and offered ticked, every other checkbox unticked.
            await self._set_boxes([(box, box.permission in request.permissions) for box in boxes], others_off=True)
            await self.click(Labels.ACCEPT_FORM, "accepting the new-user form")
            done.append(f"Datos del usuario enviados con: {permission_labels(request.permissions & self.offered)}.")
        expected = {p: p in request.permissions for p in self.offered}

        async with self.stage(Step.CONFIRM, "Revisando la confirmación del SII.", evidence=True) as done:
            snap = await self.wait_for(self._confirmation_or_exists, "the confirmation page")
            if snap == "exists":
                self._exists_detour(Step.CONFIRM, done)
                return None
            assert isinstance(snap, Snapshot)
            record = parse_confirmation(snap.html)
            self._verify(record, snap, expected, others_no=True, saved=False)
            if not snap.has_control(Labels.SAVE, exact_only=False):
                raise self.unexpected("the confirmation page has no «Grabar Usuario» control", snap)
            done.append("La confirmación coincide exactamente con lo solicitado.")

        async with self.stage(Step.SAVE, "Grabando el usuario en el SII.") as done:
            self.mark_saved()
            self.pending_outcome = "created"
            await self.click(Labels.SAVE, "saving the user", exact_only=False)
            done.append("Solicitud de grabación enviada.")
        async with self.stage(Step.RESULT, "Leyendo el resultado.", evidence=True) as done:
            result = await self.wait_for(self._result_or_exists, "the result page", on_other=None)
            if result == "exists":
                self._exists_detour(Step.RESULT, done)
                return None
            assert isinstance(result, tuple)
            record, snap = result
            self._verify(record, snap, expected, others_no=True, saved=True)
            done.append(f"El SII grabó al usuario {record.user_rut} en la empresa {record.company_rut}.")
        self.final_entry = None  # no list was read after this save
        return self._result("created", record)

    def _exists_detour(self, step: Step, done: list[str]) -> None:
        # SII says the user exists although it was not in the list we read (someone added it
        # meanwhile): read the list again and decide between "already authorized" and an update.
        # SII answered: it did not save ours (someone else's is there), whatever the list shows next.
        self.pending_outcome = None
        done.append("El SII indica que el usuario ya existe; se revisará nuevamente la lista.")

    def _confirmation_or_exists(self, snap: Snapshot) -> Snapshot | str | None:
        # The page itself first: a help text mentioning existing users must not hide a confirmation.
        try:
            parse_confirmation(snap.html)
        except ParseError:
            return "exists" if mentions_existing_user(snap.html) else None
        return snap

    def _result_or_exists(self, snap: Snapshot) -> tuple[SiiUserRecord, Snapshot] | str | None:
        try:
            return parse_result(snap.html), snap
        except ParseError:
            return "exists" if mentions_existing_user(snap.html) else None

    def _verify(self, record: SiiUserRecord, snap: Snapshot, expected: dict[Permission, bool], *,
                others_no: bool, saved: bool) -> None:
        """Raise ``ConfirmationMismatch`` unless ``record`` shows the requested company and user and,
        row by row, each attribute of ``expected`` as expected (a missing row is a mismatch too); with
        ``others_no``, no other attribute may show SI."""
        request = self.request
        assert request is not None
        differences = []
        if record.company_rut != request.company_rut:
            differences.append(f"company {record.company_rut} != {request.company_rut}")
        if record.user_rut != request.user_rut:
            differences.append(f"user {record.user_rut} != {request.user_rut}")
        for permission in Permission:
            shown = record.flag(permission)
            if permission in expected:
                if shown != expected[permission]:
                    differences.append(f"{permission.field_name} shown {_si_no(shown)}, "
                                       f"expected {_si_no(expected[permission])}")
            elif others_no and shown:
                differences.append(f"{permission.field_name} shown SI, never ticked")
        if differences:
            where = "the saved record (SII result page)" if saved else "the confirmation page (nothing saved)"
            raise errors.ConfirmationMismatch(f"{where} differs from the request: {'; '.join(differences)}",
                                              page_html=snap.html)

    # -- an existing user --------------------------------------------------------------------------

    async def _update(self, existing: SiiUser, company_name: str) -> EnrollmentResult | None:
        request = self.request
        assert request is not None
        wanted = request.wanted()
        listed = {p: existing.flag(p) for p in wanted}
        if all(listed[p] == want for p, want in wanted.items()):
            # The list shows every managed attribute, each as requested.
            self.offered = existing.shown()
            self.unavailable = request.permissions - self.offered
            return self._already(existing, company_name, {p: existing.flag(p) for p in Permission})

        async with self.stage(Step.NEW_USER, f"El usuario {request.user_rut} ya existe: abriendo su modificación.") as done:
            snap, screen = await self.open_edit_screen(request.user_rut)
            self._take_offer(screen.offered, snap)
            current = await self._live_states(screen)
            done.append("Pantalla de modificación del usuario abierta; muestra exactamente la empresa y el "
                        "usuario solicitados.")
        targets = {p: want for p, want in wanted.items() if p in screen.offered}
        if all(current[p] == want for p, want in targets.items()):
            # The list did not show every managed attribute, but the edit screen does: nothing to change.
            return self._already(existing, company_name, {p: current.get(p) for p in Permission}, from_edit=True)
        # After the save: the managed attributes as requested, every other one as it was.
        expected = {**current, **targets}

        async with self.stage(Step.FILL_FORM, "Marcando exactamente los permisos solicitados.", evidence=True) as done:
            changes = [(box, targets[box.permission]) for box in screen.boxes if box.permission in targets]
            await self._set_boxes(changes, others_off=False, delete=screen)
            done.append(f"Permisos marcados: {permission_labels(p for p, on in targets.items() if on)}"
                        + (f"; sin marcar: {permission_labels(p for p, on in targets.items() if not on)}"
                           if not all(targets.values()) else "") + ".")
        self.skip(Step.CONFIRM, "La modificación de un usuario existente no tiene página de confirmación.")
        async with self.stage(Step.SAVE, "Guardando los cambios en el SII («Guardar Cambios»).") as done:
            self.mark_saved()
            self.pending_outcome = "updated"
            await self.click(Labels.SAVE_CHANGES, "saving the changes", exact_only=False)
            done.append("Solicitud de modificación enviada.")
        async with self.stage(Step.RESULT, "Leyendo el resultado.", evidence=True) as done:
            def result(snap: Snapshot) -> tuple[SiiUserRecord | None, Snapshot] | None:
                kind = result_kind(snap.html)
                if kind == "eliminated":
                    # Never expected (the delete option is unticked): stop and report loudly.
                    raise errors.VerificationFailed(
                        f"SII answered a permission change of {request.user_rut} with an elimination page",
                        page_html=snap.html,
                    )
                if kind is None:
                    return None
                try:
                    return parse_result(snap.html), snap
                except ParseError:
                    return None, snap  # SII said it saved, without the rows: the list is the proof

            record, snap = await self.wait_for(result, "the result page")
            if record is not None:
                self._verify(record, snap, expected, others_no=False, saved=True)
            # SII answered the save: reading pages again from here on is safe.
            self.saving = False
            done.append("El SII guardó los cambios del usuario."
                        if record is None else f"El SII actualizó los permisos del usuario {record.user_rut}.")
        async with self.stage(Step.RESULT, "Verificando los permisos en la lista de usuarios autorizados.", evidence=True) as done:
            users, _, list_snap = await self.reopen_list((request.user_rut,))
            entry = next((u for u in users if u.rut == request.user_rut), None)
            self._verify_entry(entry, existing, expected, proven=record is not None, snap=list_snap)
            assert entry is not None
            self.final_entry = entry
            done.append("La lista de usuarios autorizados muestra al usuario con exactamente los permisos solicitados.")
        if record is None:
            record = self._record(company_name, entry, {p: entry.flag(p) if entry.flag(p) is not None
                                                        else expected.get(p) for p in Permission})
        return self._result("updated", record)

    def _verify_entry(self, entry: SiiUser | None, before: SiiUser, expected: dict[Permission, bool], *,
                      proven: bool, snap: Snapshot) -> None:
        """``VerificationFailed`` unless the list, read after "Guardar Cambios", shows the user with
        ``expected`` and every attribute the edit screen did not offer as it was before."""
        request = self.request
        assert request is not None
        problems: list[str] = []
        shown_any = False
        if entry is None:
            problems.append(f"{request.user_rut} is no longer listed")
        else:
            for permission in Permission:
                shown = entry.flag(permission)
                if shown is None:
                    continue
                want = expected.get(permission, before.flag(permission))
                if permission in expected:
                    shown_any = True
                if want is not None and shown != want:
                    problems.append(f"{permission.field_name} listed {_si_no(shown)}, expected {_si_no(want)}")
        if not problems and not proven and not shown_any:
            problems.append("neither the result page nor the list show the user's attributes")
        if problems:
            raise errors.VerificationFailed(f"after «Guardar Cambios», the user list: {'; '.join(problems)}",
                                            page_html=snap.html)

    async def _live_states(self, screen: SiiEditScreen) -> dict[Permission, bool]:
        """The checked state of the screen's attribute checkboxes as the browser has them now (a
        page script may have ticked them after loading); the loaded state for any not found."""
        wanted = [[box.name, box.value] for box in screen.boxes]
        states: dict[Permission, bool] = {box.permission: box.checked for box in screen.boxes}
        for frame in self.frames():
            try:
                found = await frame.evaluate(JS_READ_BOXES, wanted)
            except Exception:  # noqa: BLE001, S112 - frame detached or navigating
                continue
            for box, state in zip(screen.boxes, found, strict=False):
                if state is not None:
                    states[box.permission] = bool(state)
            break
        return states

    def _already(self, existing: SiiUser, company_name: str, flags: dict[Permission, bool | None], *,
                 from_edit: bool = False) -> EnrollmentResult:
        outcome: Outcome = self.pending_outcome or "already_authorized"
        self.step = Step.RESULT
        if self.pending_outcome is not None:
            # Our own save went through although SII answered it with an error: the list proves it.
            self.emit(Step.RESULT, "done", "El SII no mostró el resultado de la grabación, pero la lista de "
                                           "usuarios autorizados confirma que el usuario quedó con exactamente "
                                           "los permisos solicitados; no se volvió a grabar.")
        else:
            message = "El usuario ya estaba autorizado con exactamente esos permisos; no se grabó nada."
            if not from_edit:
                self.skip(Step.NEW_USER, message)
            for step in (Step.FILL_FORM, Step.CONFIRM, Step.SAVE):
                self.skip(step, message)
            self.emit(Step.RESULT, "done", message)
        return self._result(outcome, self._record(company_name, existing, flags))

    def _record(self, company_name: str, entry: SiiUser, flags: dict[Permission, bool | None]) -> SiiUserRecord:
        """The user's record when SII showed no result page for it (list entry and known states)."""
        request = self.request
        assert request is not None
        return SiiUserRecord(
            company_name=company_name,
            company_rut=request.company_rut,
            user_rut=request.user_rut,
            user_name=entry.name,
            admin=bool(flags.get(Permission.ADMIN)),
            sign=bool(flags.get(Permission.SIGN)),
            registry=bool(flags.get(Permission.REGISTRY)),
            authorized_by="",
            folios=flags.get(Permission.FOLIOS),
            annul=flags.get(Permission.ANNUL),
            send=flags.get(Permission.SEND),
        )

    def _result(self, outcome: Outcome, record: SiiUserRecord) -> EnrollmentResult:
        return EnrollmentResult(
            outcome=outcome,
            record=record,
            screenshots=self.job.screenshots,
            duration_seconds=time.monotonic() - self.job.started,
            offered_permissions=self.offered,
            unavailable_permissions=self.unavailable,
            previous=self.previous,
            final_entry=self.final_entry,
        )

    async def _set_boxes(self, changes: list[tuple[PermissionBox, bool]], *, others_off: bool,
                         delete: SiiEditScreen | None = None) -> None:
        """Set each attribute checkbox of ``changes`` to its state, found by its own name and value
        (one round trip per frame; boxes are clicked, not just flipped, so the page's handlers run).

        ``others_off``: every other checkbox unticked (a new user). Otherwise the others are left as
        they are, except the edit screen's delete checkbox (``delete``), always unticked.
        ``UnexpectedPage`` if a checkbox is missing or would not take its state.
        """
        wanted = [[box.name, box.value, state] for box, state in changes]
        if delete is not None and delete.delete_kind == "checkbox" and delete.delete_name:
            wanted.append([delete.delete_name, "", False])
        for frame in self.frames():
            try:
                missing, stuck = await frame.evaluate(JS_SET_BOXES, [wanted, others_off])
            except Exception:  # noqa: BLE001, S112 - frame detached or navigating
                continue
            if stuck:
                raise self.unexpected(f"checkbox {', '.join(stuck)} did not keep the state the bot set",
                                      await self.snapshot())
            wanted = [w for w in wanted if w[0] in missing]
        if wanted:
            raise self.unexpected(f"no checkbox {', '.join(str(w[0]) for w in wanted)}", await self.snapshot())


def _si_no(value: bool | None) -> str:
    return "(no row)" if value is None else "SI" if value else "NO"
