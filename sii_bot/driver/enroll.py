"""Enrolment: authorize a user in a company with exactly the requested permissions.

A new user goes through "Ingresar Nuevo Usuario", the form, SII's confirmation and "Grabar Usuario";
nothing is saved unless the confirmation shows exactly the requested company, user and permissions.
A user already on the list is either already authorized (nothing saved) or updated through its edit
screen and "Guardar Cambios" (the delete option is always left unticked).

A save answered with an error (or a session that expired while saving) is never submitted again as
is: the attempt starts over from the company step (``Session.resuming``) and the user list decides.
If it shows the user with exactly the requested permissions, the save went through and the outcome
is what that save was ("created"/"updated"); otherwise the user is created or updated again.
"""

from __future__ import annotations

import time

from .. import errors
from ..models import (
    EnrollmentResult,
    Outcome,
    Permission,
    SiiUser,
    SiiUserRecord,
    Step,
)
from ..rut import display_rut, split_rut
from ..screens import (
    ParseError,
    mentions_existing_user,
    parse_confirmation,
    parse_result,
    result_kind,
)
from .controls import Labels, Snapshot
from .scripts import JS_SET_CHECKBOXES
from .session import Session

__all__ = ["EnrollFlow"]

# The login may be re-entered after a user-exists race at most this many times.
_MAX_LIST_VISITS = 2


class EnrollFlow(Session):
    """Authorize ``self.request``'s user (an ``EnrollmentRequest``, or a replacement's addition)."""

    # What the last save submitted in this attempt would have done, until a result confirms it.
    pending_outcome: Outcome | None = None

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
            if existing is None:
                outcome = await self._create(company_name)
            else:
                outcome = await self._update(existing, company_name)
            if outcome is not None:
                return outcome
        raise errors.UnexpectedPage("SII kept saying the user already exists but it was not in the list")

    async def _create(self, company_name: str) -> EnrollmentResult | None:
        request = self.request
        assert request is not None
        body, dv = split_rut(request.user_rut)
        async with self.stage(Step.NEW_USER, "Abriendo «Ingresar Nuevo Usuario».") as done:
            await self.click(Labels.NEW_USER, "opening the new-user form", exact_only=False)
            await self.wait_for(lambda s: True if s.has_field("RUT_USU") and s.has_field("DV_USU") else None,
                                "the new-user form (RUT_USU, DV_USU)")
            done.append("Formulario de nuevo usuario abierto.")
        async with self.stage(Step.FILL_FORM, f"Ingresando el RUT {display_rut(request.user_rut)} y los permisos solicitados.") as done:
            await self.fill({"RUT_USU": body, "DV_USU": dv})
            await self._set_permissions()
            await self.click(Labels.ACCEPT_FORM, "accepting the new-user form")
            done.append("Datos del usuario enviados.")

        async with self.stage(Step.CONFIRM, "Revisando la confirmación del SII.", evidence=True) as done:
            snap = await self.wait_for(self._confirmation_or_exists, "the confirmation page")
            if snap == "exists":
                self._exists_detour(Step.CONFIRM, done)
                return None
            assert isinstance(snap, Snapshot)
            record = parse_confirmation(snap.html)
            self._verify(record, snap, saved=False)
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
            self._verify(record, snap, saved=True)
            done.append(f"El SII grabó al usuario {record.user_rut} en la empresa {record.company_rut}.")
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

    def _verify(self, record: SiiUserRecord, snap: Snapshot, *, saved: bool) -> None:
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

    async def _update(self, existing: SiiUser, company_name: str) -> EnrollmentResult | None:
        request = self.request
        assert request is not None
        wanted = request.flags()
        shown = {"admin": existing.admin, "sign": existing.sign, "registry": existing.registry}
        if all(v is not None for v in shown.values()) and shown == wanted:
            return self._already(existing, company_name)

        async with self.stage(Step.NEW_USER, f"El usuario {request.user_rut} ya existe: abriendo su modificación.") as done:
            await self.open_edit_screen(request.user_rut)
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
            self.mark_saved()
            self.pending_outcome = "updated"
            await self.click(Labels.SAVE_CHANGES, "saving the changes", exact_only=False)
            done.append("Solicitud de modificación enviada.")
        async with self.stage(Step.RESULT, "Leyendo el resultado.", evidence=True) as done:
            def result(snap: Snapshot) -> tuple[SiiUserRecord, Snapshot] | None:
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

            record, snap = await self.wait_for(result, "the result page")
            self._verify(record, snap, saved=True)
            done.append(f"El SII actualizó los permisos del usuario {record.user_rut}.")
        return self._result("updated", record)

    async def _current_checkboxes(self) -> dict[str, bool] | None:
        """Checked state of SUP_USU/FIRMAR/CONSULTAR on the current form, or None if one is missing."""
        state: dict[str, bool] = {}
        for permission in Permission:
            found = None
            for frame in self.frames():
                locator = frame.locator(f'input[type="checkbox" i][name="{permission.field_name}" i]')
                try:
                    if await locator.count():
                        found = await locator.first.is_checked()
                        break
                except Exception:  # noqa: BLE001, S112 - frame detached or navigating
                    continue
            if found is None:
                return None
            state[permission.value] = found
        return state

    def _already(self, existing: SiiUser, company_name: str, *, from_edit: bool = False) -> EnrollmentResult:
        request = self.request
        assert request is not None
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
        return self._result(outcome, record)

    def _result(self, outcome: Outcome, record: SiiUserRecord) -> EnrollmentResult:
        return EnrollmentResult(
            outcome=outcome,
            record=record,
            screenshots=self.job.screenshots,
            duration_seconds=time.monotonic() - self.job.started,
        )

    async def _set_permissions(self) -> None:
        """Check exactly the requested permissions; every other checkbox (ELIMINAR, OBTENER...) off.

        One round trip per frame; boxes are clicked (not just flipped) so the page's handlers run,
        and ``UnexpectedPage`` if one is missing or would not take its state."""
        wanted = [[p.field_name, p.label, p in self.request.permissions] for p in Permission]
        for frame in self.frames():
            try:
                missing, stuck = await frame.evaluate(JS_SET_CHECKBOXES, [wanted, True])
            except Exception:  # noqa: BLE001, S112 - frame detached or navigating
                continue
            if stuck:
                raise self.unexpected(f"checkbox {', '.join(stuck)} did not keep the state the bot set",
                                      await self.snapshot())
            wanted = [w for w in wanted if w[0] in missing]
        if wanted:
            absent = ", ".join(f"{name} ({label!r})" for name, label, _ in wanted)
            raise self.unexpected(f"no checkbox {absent}", await self.snapshot())
