"""AUT2000: the zeusr-like origin (portal, login entry pages, logout, the ``/ayudas/`` outage page)
and the herculesr-like one (certificate login: the holder's RUT from the client certificate,
authentication error codes, throttling, session limits, and the TOKEN/NETSCAPE_LIVEWIRE cookies).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import secrets
import urllib.parse

from cryptography import x509

from . import login_pages as pages
from .codes import AUTH_MESSAGES, full_code
from .config import (
    CERT_ENTRY_PATH,
    CERT_LOGIN_PATH,
    ERRORP_PATH,
    LOGOUT_PATH,
    OUTAGE_PATH,
    PASSWORD_ENTRY_PATH,
    PORTAL_PATH,
)
from .handlers import Handler
from .pki import rut_from_certificate
from .rut import split, try_canonical
from .state import SESSION_TTL_S, Session

# 01.01.190.500.720.27 is SII's own code (too many sessions); the throttling one is the sandbox's.
CODE_TOO_MANY_SESSIONS = full_code(27)
CODE_THROTTLED = "01.01.190.500.720.28"
TEXT_THROTTLED = (
    "Usted ha realizado demasiados intentos de autenticaci&oacute;n en poco tiempo. "
    "Espere unos minutos antes de volver a intentarlo."
)
DEFAULT_LOGIN_ALERT = "Su certificado digital no ha podido ser validado. Intente nuevamente."

_ZEUS_STEPS = {
    "/": "portal", PORTAL_PATH: "portal", CERT_ENTRY_PATH: "IngresoCertificado",
    PASSWORD_ENTRY_PATH: "IngresoRutClave", LOGOUT_PATH: "autTermino", ERRORP_PATH: "errorp",
    CERT_LOGIN_PATH: "clave_login", OUTAGE_PATH: "ayudas",
}
_LIVEWIRE = ("rut", "dv", "rutm", "dvm", "clave", "mac", "exp", "sec", "lms", "locexp")


def zeus(h: Handler, method: str, body: bytes) -> None:
    """The zeusr-like origin: portal, certificate and RUT/Clave entry pages, logout, errorp."""
    path, query = h.path_and_query()
    step = _ZEUS_STEPS.get(path)
    if step is None:
        h.send_not_found()
        return
    h.wait_latency()
    if h.outage(step) or h.page_faults(step, ()):
        return
    rt = h.rt
    target = urllib.parse.unquote(query) if query.startswith("https%3A") else query
    target = target or rt.enroll_url
    if step == "portal":
        h.send_html(pages.portal_page())
    elif step == "ayudas":
        h.send_html(pages.outage_page(rt.portal_url))
    elif step == "IngresoCertificado":
        action = f"{rt.origins['hercules']}{CERT_LOGIN_PATH}?{target}"
        h.send_html(pages.cert_entry_page(target, action, rt.portal_url))
    elif step == "IngresoRutClave":
        cert_entry = f"{rt.origins['zeus']}{CERT_ENTRY_PATH}?{target}"
        action = f"{rt.origins['zeus']}{CERT_LOGIN_PATH}"
        h.send_html(pages.password_login_page(target, cert_entry, action))
    elif step == "clave_login":
        # RUT + Clave login is not modelled: the product only uses certificates.
        h.send_html(pages.alert_page(
            "La autenticación con RUT y Clave no está disponible en este ambiente. "
            "Identifíquese con Certificado Digital."
        ))
    elif step == "autTermino":
        s = rt.store.end_session(h.cookies().get("TOKEN"))
        expired = "expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/"
        names = ["TOKEN", "CSESSIONID", "RUT_NS", "DV_NS"] + [f"NETSCAPE_LIVEWIRE.{n}" for n in _LIVEWIRE]
        cookies = [f"{n}=DEL; {expired}" for n in names] if s is not None else []
        h.send_html(pages.logout_page(rt.portal_url), cookies=cookies)
    else:
        h.send_html(pages.errorp_page())


def hercules(h: Handler, method: str, body: bytes) -> None:
    """The herculesr-like origin: certificate login (the TLS layer already required the certificate)."""
    path, query = h.path_and_query()
    if path != CERT_LOGIN_PATH:
        h.send_not_found()
        return
    h.wait_latency()
    if h.outage("CAutInicio") or h.page_faults("CAutInicio", ()):
        return
    rt = h.rt
    form = h.form(body) if method == "POST" else {}
    target = form.get("referencia") or (urllib.parse.unquote(query) if query.startswith("https%3A") else query)
    if not any(target.startswith(rt.origins[o] + "/") for o in ("palena", "zeus")):
        # Only our own origins, like SII only returns to sii.cl: never navigate anywhere else.
        target = rt.enroll_url
    errorp = rt.origins["zeus"] + ERRORP_PATH
    der = h.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
    holder: str | None = None
    cert_name = ""
    if der:
        cert = x509.load_der_x509_certificate(der)
        rut_text, _ = rut_from_certificate(cert)
        holder = try_canonical(rut_text)
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cert_name = str(cns[0].value) if cns else ""
    if rt.fault("no_certificate") or holder is None:
        # SII answers a login without a usable certificate with a redirect to errorp.html.
        h.send_redirect(errorp)
        return
    alert = rt.fault("login_alert")
    if alert:
        text = alert if isinstance(alert, str) else DEFAULT_LOGIN_ALERT
        h.send_html(pages.alert_page(text, then=f"location.href = {pages.js_str(rt.portal_url)};"))
        return
    code = rt.take_login_error(holder)
    if code is not None:
        h.send_html(pages.auth_error_page(AUTH_MESSAGES[code], full_code(code),
                                          style=rt.fault("login_error_style") or "page", then_url=rt.portal_url))
        return
    throttle = rt.fault("throttle_logins")
    attempts = rt.store.note_login_attempt(holder, float(rt.fault("throttle_window_s") or 60.0))
    if rt.fault("login_throttled") or (throttle is not None and attempts > throttle):
        h.send_html(pages.message_page("Autenticaci&oacute;n", [TEXT_THROTTLED], code=CODE_THROTTLED))
        return
    max_sessions = rt.session_cap(holder)
    if rt.fault("too_many_sessions") or (
        max_sessions is not None and rt.store.live_sessions(holder) >= max_sessions
    ):
        h.send_html(pages.auth_error_page(AUTH_MESSAGES[27], CODE_TOO_MANY_SESSIONS,
                                          style=rt.fault("login_error_style") or "page", then_url=rt.portal_url))
        return
    name = rt.store.person_name(holder) or cert_name
    session = rt.store.create_session(holder, name)
    livewire = _livewire_cookies(session)
    http_cookies = [
        f"TOKEN={session.token}; path=/",
        f"CSESSIONID={session.csessionid}; path=/",
        f"RUT_NS={split(holder)[0]}; path=/",
        f"DV_NS={split(holder)[1]}; path=/",
    ]
    if rt.cfg().login_response == "redirect":
        h.send_redirect(target, cookies=http_cookies + livewire)
    else:
        h.send_html(pages.login_js_page(livewire, target), cookies=http_cookies)


def _livewire_cookies(session: Session) -> list[str]:
    """NETSCAPE_LIVEWIRE.* cookies (set from JavaScript on SII's success page), 2-hour locexp."""
    body, dv = split(session.holder_rut)
    expires_at = dt.datetime.fromtimestamp(session.created + SESSION_TTL_S, dt.UTC)
    gmt = email.utils.format_datetime(expires_at, usegmt=True)
    values = {
        "rut": body, "dv": dv, "rutm": body, "dvm": dv,
        "clave": secrets.token_hex(6).upper(), "mac": secrets.token_hex(16).upper(),
        "exp": expires_at.strftime("%Y%m%d%H%M%S"), "sec": "0000", "lms": str(SESSION_TTL_S // 60),
        "locexp": urllib.parse.quote(gmt),
    }
    out = []
    for k in _LIVEWIRE:
        extra = f"; expires={gmt}" if k == "locexp" else ""
        out.append(f"NETSCAPE_LIVEWIRE.{k}={values[k]}{extra}; path=/")
    return out
