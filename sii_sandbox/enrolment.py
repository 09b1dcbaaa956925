"""The palena-like enrolment CGIs (``eu_*``): session check, then SII's company and user pages.

:func:`palena` answers the origin: the outage first (SII sends every page to its help page), the
WAF (it sits in front of everything, sessions included), then the session (none: redirect to the
login entry page, or the …28/…29 message for a stale one), the session-expiry and page faults, and
finally :class:`Enrolment`, one method per CGI.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from . import attributes as attrs
from . import pages
from .codes import AUTH_MESSAGES, PALENA_CODE_PREFIX, full_code
from .config import PALENA_STEPS, applies
from .handlers import TEXT_GENERIC, Handler
from .login_pages import auth_error_page
from .rut import PERSON_MAX_BODY, calc_dv, join, split
from .state import Session, StateError

# The sandbox's own code for a button value the CGI does not expect.
CODE_BAD_BUTTON = "01.01.209.500.709.99"
TEXT_NOT_AUTHORIZED = "Sr. Contribuyente: la empresa no est&aacute; autorizada para operar en esta modalidad."


def palena(h: Handler, method: str, body: bytes) -> None:
    """The palena-like origin: an enrolment CGI for a request with a live session."""
    path, _ = h.path_and_query()
    prefix = "/cvc_cgi/dte/"
    step = path[len(prefix):] if path.startswith(prefix) else ""
    if step not in PALENA_STEPS:
        h.send_not_found()
        return
    h.wait_latency()
    rt = h.rt
    if h.outage(step):
        return
    waf = rt.fault("waf")
    if waf is True or isinstance(waf, list) and step in waf:
        # The WAF sits in front of everything, sessions included.
        h.page_faults(step, PALENA_STEPS)
        return
    target = rt.origins["palena"] + h.path
    token = h.cookies().get("TOKEN")
    session = rt.store.get_session(token)
    if session is None:
        # A browser that never logged in goes to the login; one whose session is gone may get the
        # …28/…29 message instead (session_expired_code).
        _session_gone(h, target, stale=bool(token))
        return
    with rt.store.lock:
        session.pages += 1
        pages_seen = session.pages
    if rt.take_session_expiry(step, pages_seen):
        # The session dies mid-flow, as an SII session that timed out would.
        with rt.store.lock:
            rt.store.sessions.pop(session.token, None)
        _session_gone(h, target, stale=True)
        return
    if h.page_faults(step, PALENA_STEPS):
        return
    Enrolment(h, session, h.form(body)).run(step)


def _session_gone(h: Handler, target: str, *, stale: bool) -> None:
    code = h.rt.fault("session_expired_code")
    if stale and code:
        h.send_html(auth_error_page(AUTH_MESSAGES[code], full_code(code, PALENA_CODE_PREFIX),
                                    style=h.rt.fault("login_error_style") or "page", then_url=h.rt.login_redirect(target)))
        return
    h.send_redirect(h.rt.login_redirect(target))


class Enrolment:
    """The palena-like CGIs for one request with a valid session."""

    def __init__(self, h: Handler, session: Session, form: dict[str, str]) -> None:
        self.h = h
        self.rt = h.rt
        self.session = session
        self.form = form
        self.cfg = self.rt.cfg()
        self.alt = self.rt.alt_layout()
        self.order = "R" if form.get("ORDEN") == "R" else "A"

    def run(self, step: str) -> None:
        getattr(self, step)()

    # -- helpers ---------------------------------------------------------------------------

    def html(self, page: str, status: int = 200) -> None:
        self.h.send_html(page, status)

    def message(self, lines: list[str], *, code: str | None = None, back: str | None = "history",
                comment: str = "") -> None:
        page = pages.message_page(pages.TITLE, lines, alt=self.alt, back=back, code=code)
        self.html(page + (f"<!-- sandbox: {comment} -->\n" if comment else ""))

    def button_ok(self, allowed: tuple[str, ...], required: bool) -> bool:
        """SII's CGIs dispatch on the ACEPTAR value: an unexpected one gets a generic error."""
        value = self.form.get("ACEPTAR")
        if value is None and not required:
            return True
        if value in allowed:
            return True
        self.message([TEXT_GENERIC], code=CODE_BAD_BUTTON,
                     comment=f"unexpected ACEPTAR value {value!r}; expected one of {allowed}")
        return False

    def rut_field(self, body_key: str, dv_key: str, person: bool) -> str | None:
        """Server-side copy of the form's JavaScript checks; answers the alert page on failure."""
        body = self.form.get(body_key, "").strip()
        dv = self.form.get(dv_key, "").strip().upper()
        error = None
        if not body and not dv:
            error = "Ingrese un RUT y un DV"
        elif not body.isdigit() or not body.isascii():
            error = "El Rut debe contener solo números (sin puntos)."
        elif not dv:
            error = "No ha ingresado el dígito verificador"
        elif calc_dv(str(int(body))) != dv:
            error = "RUT incorrecto según Módulo 11"
        elif person and int(body) > PERSON_MAX_BODY:
            error = "El rut debe ser de una persona natural."
        if error:
            self.html(pages.alert_page(error))
            return None
        return join(str(int(body)), dv)

    def company(self) -> dict[str, Any] | None:
        """Read RUT_EMP/DV_EMP and run SII's company checks; answers the error page and returns None on failure."""
        rut = self.rut_field("RUT_EMP", "DV_EMP", person=False)
        if rut is None:
            return None
        company = self.rt.store.company(rut)
        if company is None or not company["may_operate"] or applies(self.rt.fault("company_not_authorized"), rut):
            self.message([TEXT_NOT_AUTHORIZED], back="eu_enrola_usuarios")
            return None
        if not self.rt.store.can_operate(self.session.holder_rut, rut) or applies(
            self.rt.fault("holder_not_admin"), rut
        ):
            self.message(
                [f"Sr. Contribuyente: Usted no est&aacute; autorizado para operar en la empresa {rut}.",
                 ("Solo el representante legal o un usuario administrador puede mantener los usuarios "
                 "autorizados de la empresa.")],
                back="eu_enrola_usuarios",
            )
            return None
        return company

    def flags(self, company: Mapping[str, Any]) -> dict[str, bool]:
        """The checkboxes of the company's layout as state flags (only the attributes the page shows)."""
        return {attrs.FIELD_KEYS[f]: self.form.get(f) == "S" for f in attrs.fields(attrs.layout_of(company))}

    def record(self, user_rut: str, flags: Mapping[str, bool]) -> dict[str, Any]:
        return {"rut": user_rut, "name": self.rt.store.person_name(user_rut) or "", **flags}

    def saved_then_error(self, company: Mapping[str, Any]) -> bool:
        """Fault ``error_after_save``: the write is done, but the answer is an error page."""
        if not self.rt.error_after_save(company["rut"]):
            return False
        if self.rt.fault("error_after_save_answer") == "http500":
            self.html(pages.http500_body(), 500)
        else:
            self.h.send_generic_error()
        return True

    # -- CGIs ------------------------------------------------------------------------------

    def eu_enrola_usuarios(self) -> None:
        screens = self.cfg.company_rut_screens
        self.html(pages.company_form("eu_valida_empresa", with_order=screens == 1, alt=self.alt, screen=1))

    def eu_valida_empresa(self) -> None:
        if not self.button_ok(("Ingresar",), required=True):
            return
        company = self.company()
        if company is None:
            return
        if self.cfg.company_rut_screens == 2:
            self.html(pages.company_form("eu_lista_usuarios", with_order=True, alt=self.alt, screen=2))
            return
        self.list_page(company)

    def list_page(self, company: dict[str, Any]) -> None:
        users = self.rt.store.users(company["rut"])
        self.html(pages.user_list_page(company, users, order=self.order, actions=self.cfg.actions, alt=self.alt))

    def eu_lista_usuarios(self) -> None:
        if not self.button_ok(("Ingresar", "Modificar Otro Usuario"), required=False):
            return
        company = self.company()
        if company is not None:
            self.list_page(company)

    def eu_ingresa_usuario(self) -> None:
        if not self.button_ok(("Ingresar Nuevo Usuario", "Ingresar Otro Usuario"), required=False):
            return
        company = self.company()
        if company is not None:
            self.html(pages.new_user_form(company, order=self.order, alt=self.alt))

    def eu_confirma_usuario(self) -> None:
        if not self.button_ok(("Aceptar",), required=True):
            return
        company = self.company()
        if company is None:
            return
        user_rut = self.rut_field("RUT_USU", "DV_USU", person=True)
        if user_rut is None:
            return
        flags = self.flags(company)
        if not any(flags.values()):
            self.html(pages.alert_page("Debe seleccionar al menos un privilegio para el usuario."))
            return
        if any(u["rut"] == user_rut for u in self.rt.store.users(company["rut"])):
            self.user_exists(company, user_rut)
            return
        key = secrets.token_hex(20).upper()
        with self.rt.store.lock:
            self.session.pending[key] = {"company": company["rut"], "user": user_rut, **flags}
        self.html(pages.confirm_page(
            company, self.record(user_rut, flags), self.session.holder_name,
            key=key, order=self.order, actions=self.cfg.actions, alt=self.alt,
        ))

    def user_exists(self, company: Mapping[str, Any], user_rut: str) -> None:
        # SII's wording for this case is unknown; this text is the sandbox's own.
        self.message(
            [(f"El usuario {user_rut} ya se encuentra registrado como usuario autorizado de la empresa "
             f"{pages.ent(str(company['name']))}, Rut {company['rut']}.")],
            back=f"eu_lista_usuarios?RUT_EMP={split(company['rut'])[0]}&DV_EMP={split(company['rut'])[1]}",
        )

    def eu_graba_usuario(self) -> None:
        key = self.form.get("key", "")
        with self.rt.store.lock:
            pending = self.session.pending.pop(key, None) if key else None
        if pending is None:
            # Observed on SII: the save CGI without a valid key answers HTTP 500.
            self.html(pages.http500_body(), 500)
            return
        if not self.button_ok(("Grabar Usuario", "Modificar Datos"), required=True):
            return
        company = self.company()
        if company is None:
            return
        if company["rut"] != pending["company"]:
            self.html(pages.http500_body(), 500)
            return
        flags = {k: bool(pending.get(k)) for k in attrs.KEYS}
        user_rut = pending["user"]
        if self.form.get("ACEPTAR") == "Modificar Datos":
            body, dv = split(user_rut)
            prefill = {"RUT_USU": body, "DV_USU": dv,
                       **{f: "S" if flags[k] else "" for f, k in attrs.FIELD_KEYS.items()}}
            self.html(pages.new_user_form(company, order=self.order, alt=self.alt, prefill=prefill))
            return
        if applies(self.rt.fault("user_exists"), company["rut"]):
            # Simulates a race: someone else authorized the user meanwhile (now it is in the list).
            try:
                self.rt.store.add_user(company["rut"], user_rut, by=None, log=False, **flags)
            except StateError:
                pass
            self.user_exists(company, user_rut)
            return
        try:
            self.rt.store.add_user(company["rut"], user_rut, by=self.session.holder_rut, **flags)
        except StateError:
            self.user_exists(company, user_rut)
            return
        if self.saved_then_error(company):
            return
        sentence = (
            f"Se ha grabado satisfactoriamente el nuevo usuario en la empresa {pages.ent(company['name'])}, "
            f"Rut {company['rut']}, con los siguientes antecedentes:"
        )
        self.html(pages.result_page(
            "INGRESO DE USUARIOS AUTORIZADOS", sentence, company, self.record(user_rut, flags),
            self.session.holder_name, order=self.order, actions=self.cfg.actions, alt=self.alt,
        ))

    def _user(self, company: Mapping[str, Any]) -> dict[str, Any] | None:
        user_rut = join(self.form.get("RUT_USU", ""), self.form.get("DV_USU", ""))
        users = {u["rut"]: u for u in self.rt.store.users(company["rut"])} if user_rut else {}
        if user_rut not in users:
            self.message([f"El usuario no se encuentra registrado en la empresa {company['rut']}."],
                         back="eu_enrola_usuarios")
            return None
        return users[user_rut]

    def eu_modifica_usuario(self) -> None:
        if not self.button_ok(("Modificar",), required=False):
            return
        company = self.company()
        if company is None:
            return
        user = self._user(company)
        if user is not None:
            self.html(pages.edit_form(company, user, order=self.order, alt=self.alt))

    def eu_actualiza_usuario(self) -> None:
        if not self.button_ok(("Guardar Cambios",), required=True):
            return
        company = self.company()
        if company is None:
            return
        user = self._user(company)
        if user is None:
            return
        by = self.session.holder_rut
        if self.form.get("ELIMINAR") == "S":
            self.rt.store.delete_user(company["rut"], user["rut"], by=by)
            if self.saved_then_error(company):
                return
            sentence = (
                f"Se ha eliminado satisfactoriamente el usuario {user['rut']} de la empresa "
                f"{pages.ent(company['name'])}, Rut {company['rut']}."
            )
            self.html(pages.result_page(
                "ELIMINACION DE USUARIOS AUTORIZADOS", sentence, company, None, self.session.holder_name,
                order=self.order, actions=self.cfg.actions, alt=self.alt,
            ))
            return
        # Only the attributes this layout shows change; the others keep their value.
        flags = self.flags(company)
        if not any(flags.values()):
            self.html(pages.alert_page("Debe seleccionar al menos un privilegio para el usuario."))
            return
        updated = self.rt.store.update_user(company["rut"], user["rut"], by=by, **flags)
        if self.saved_then_error(company):
            return
        sentence = (
            f"Se ha modificado satisfactoriamente el usuario en la empresa {pages.ent(company['name'])}, "
            f"Rut {company['rut']}, con los siguientes antecedentes:"
        )
        self.html(pages.result_page(
            "MODIFICACION DE USUARIOS AUTORIZADOS", sentence, company,
            self.record(user["rut"], {k: bool(updated.get(k)) for k in attrs.KEYS}),
            self.session.holder_name, order=self.order, actions=self.cfg.actions, alt=self.alt,
        ))
