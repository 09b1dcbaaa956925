"""The running sandbox: three HTTPS origins (zeusr-, herculesr- and palena-like) and a control server.

Use :class:`Sandbox` (see ``sii_sandbox/__init__.py`` for the documented API)::

    with Sandbox(pki_dir="var/sandbox/pki", state_path="var/sandbox/state.json") as sb:
        print(sb.env["SII_ENROLL_URL"])

Design notes (why it is built this way):
- One ``ThreadingHTTPServer`` per origin, ``daemon_threads``, HTTP/1.1 keep-alive with exact
  Content-Length, ``TCP_NODELAY`` on every accepted socket (without it a kept-alive answer can stall
  ~40 ms on delayed ACKs), headers and body sent in one write.
- The TLS handshake happens in the per-connection thread (``finish_request``), never in the accept
  loop, so a slow or broken client cannot block other connections.
- The herculesr-like origin requires a client certificate (``CERT_REQUIRED``) and is capped at
  TLS 1.2, so a missing or untrusted certificate fails *the handshake* itself, as the issue and SII's
  older AUT2000 hosts do (with TLS 1.3 the client would only learn it on its first read).
- All three origins share one in-process session store: on loopback they share the host
  127.0.0.1, and cookies are per host, not per port, so the TOKEN set at login reaches the
  enrolment origin exactly as ``.sii.cl`` cookies do in production.
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import json
import random
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from cryptography import x509

from . import pages
from .pki import Pki, ensure_pki, rut_from_certificate
from .rut import PERSON_MAX_BODY, calc_dv, join, split, try_canonical
from .state import DEMO_COMPANY_RUT, SESSION_TTL_S, Session, StateError, Store

ENROLL_PATH = "/cvc_cgi/dte/eu_enrola_usuarios"
CERT_ENTRY_PATH = "/AUT2000/InicioAutenticacion/IngresoCertificado.html"
PASSWORD_ENTRY_PATH = "/AUT2000/InicioAutenticacion/IngresoRutClave.html"
ERRORP_PATH = "/AUT2000/InicioAutenticacion/errorp.html"
LOGOUT_PATH = "/cgi_AUT2000/autTermino.cgi"
CERT_LOGIN_PATH = "/cgi_AUT2000/CAutInicio.cgi"
PORTAL_PATH = "/portal/"

# Enrolment CGIs (palena-like). The names after eu_enrola_usuarios are the sandbox's own: SII's are
# unknown, and the bot must follow forms and button labels, never these names.
PALENA_STEPS = (
    "eu_enrola_usuarios", "eu_valida_empresa", "eu_lista_usuarios", "eu_ingresa_usuario",
    "eu_confirma_usuario", "eu_graba_usuario", "eu_modifica_usuario", "eu_actualiza_usuario",
)
ZEUS_STEPS = ("portal", "IngresoCertificado", "IngresoRutClave", "autTermino", "errorp", "clave_login")
HERCULES_STEPS = ("CAutInicio",)
ALL_STEPS = PALENA_STEPS + ZEUS_STEPS + HERCULES_STEPS

# Message codes. 01.01.190.500.720.27 is SII's own (too many sessions); the others are the sandbox's.
CODE_TOO_MANY_SESSIONS = "01.01.190.500.720.27"
CODE_THROTTLED = "01.01.190.500.720.28"
CODE_GENERIC = "01.01.209.500.709.21"
CODE_BAD_BUTTON = "01.01.209.500.709.99"

TEXT_NOT_AUTHORIZED = "Sr. Contribuyente: la empresa no est&aacute; autorizada para operar en esta modalidad."
TEXT_GENERIC = "No ha sido posible completar su solicitud. Int&eacute;ntelo m&aacute;s tarde."
TEXT_TOO_MANY_SESSIONS = (
    "Usted ha superado el m&aacute;ximo de sesiones autenticadas. Para continuar, cierre alguna de sus "
    "sesiones o espere que expiren."
)
TEXT_THROTTLED = (
    "Usted ha realizado demasiados intentos de autenticaci&oacute;n en poco tiempo. "
    "Espere unos minutos antes de volver a intentarlo."
)
DEFAULT_LOGIN_ALERT = "Su certificado digital no ha podido ser validado. Intente nuevamente."


# ---------------------------------------------------------------------------------------------
# Configuration and faults
# ---------------------------------------------------------------------------------------------


@dataclass
class Config:
    """Switchable behaviour (``Sandbox.configure``). Values are validated by :func:`_check_config`."""

    login_entry: str = "certificate"  # "certificate" | "password": where a session-less page redirects
    company_rut_screens: int = 1  # 1 | 2: the company RUT is asked once or twice
    actions: str = "buttons"  # "buttons" | "links": how navigation controls are rendered
    login_response: str = "javascript"  # "javascript" (200 + document.cookie) | "redirect" (302 + Set-Cookie)
    layout: str = "standard"  # "standard" | "alternate"
    latency_ms: float = 0.0  # added to every page of the three HTTPS origins
    jitter_ms: float = 0.0  # plus uniform random 0..jitter_ms
    require_client_chain: bool = False  # True: herculesr trusts only the root, clients must send the intermediate


_CONFIG_CHOICES: dict[str, tuple[Any, ...]] = {
    "login_entry": ("certificate", "password"),
    "company_rut_screens": (1, 2),
    "actions": ("buttons", "links"),
    "login_response": ("javascript", "redirect"),
    "layout": ("standard", "alternate"),
}


def _check_config(changes: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(Config)}
    out: dict[str, Any] = {}
    for k, v in changes.items():
        if k not in known:
            raise ValueError(f"unknown config option {k!r}; known: {sorted(known)}")
        if k in _CONFIG_CHOICES:
            if k == "company_rut_screens":
                v = int(v)
            if v not in _CONFIG_CHOICES[k]:
                raise ValueError(f"{k} must be one of {_CONFIG_CHOICES[k]}, not {v!r}")
        elif k in ("latency_ms", "jitter_ms"):
            v = float(v)
            if v < 0:
                raise ValueError(f"{k} must be >= 0")
        elif k == "require_client_chain":
            v = bool(v)
        out[k] = v
    return out


def _bool_or_ruts(v: Any) -> bool | list[str]:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        v = [v]
    if isinstance(v, (list, tuple)):
        ruts = [try_canonical(str(x)) for x in v]
        if any(r is None for r in ruts):
            raise ValueError(f"invalid RUT in {v!r}")
        return [r for r in ruts if r]
    raise TypeError(f"expected true/false or a list of company RUTs, not {v!r}")


def _bool_or_steps(v: Any) -> bool | list[str]:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        v = [v]
    if isinstance(v, (list, tuple)):
        bad = [s for s in v if s not in ALL_STEPS]
        if bad:
            raise ValueError(f"unknown steps {bad}; known: {list(ALL_STEPS)}")
        return list(v)
    raise TypeError(f"expected true/false or a list of steps, not {v!r}")


def _opt_int(v: Any) -> int | None:
    if v is None or v is False:
        return None
    if isinstance(v, bool) or int(v) < 0:
        raise ValueError(f"expected a non-negative integer, not {v!r}")
    return int(v)


def _steps_or_none(v: Any) -> list[str] | None:
    if v is None:
        return None
    out = _bool_or_steps(v)
    if isinstance(out, bool):
        raise TypeError("expected a list of steps")
    return out


def _rate(v: Any) -> float:
    f = float(v)
    if not 0.0 <= f <= 1.0:
        raise ValueError("rate must be within 0..1")
    return f


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"expected one of {options}, not {v!r}")
        return str(v)

    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"expected true/false, not {v!r}")
    return v


def _bool_or_text(v: Any) -> bool | str:
    if isinstance(v, (bool, str)):
        return v
    raise ValueError(f"expected true/false or an alert text, not {v!r}")


# name -> validator. See sii_sandbox/__init__.py for what each fault does.
FAULTS: dict[str, Callable[[Any], Any]] = {
    "company_not_authorized": _bool_or_ruts,
    "holder_not_admin": _bool_or_ruts,
    "user_exists": _bool_or_ruts,
    "too_many_sessions": _bool,
    "max_sessions": _opt_int,
    "login_throttled": _bool,
    "throttle_logins": _opt_int,
    "throttle_window_s": lambda v: float(v),
    "session_expiry_pages": _opt_int,
    "waf": _bool_or_steps,
    "waf_style": _choice("f5", "transaccion"),
    "generic_error": _bool_or_steps,
    "http500_rate": _rate,
    "http500_steps": _steps_or_none,
    "seed": lambda v: int(v),
    "alt_layout": _bool,
    "login_alert": _bool_or_text,
    "no_certificate": _bool,
}
# Accepted by set_faults for convenience; they change the configuration instead.
_FAULT_CONFIG_ALIASES = ("latency_ms", "jitter_ms")


def _applies(value: Any, item: str) -> bool:
    """A fault value of True applies everywhere; a list applies to the items it names."""
    if value is True:
        return True
    if isinstance(value, list):
        return item in value
    return False


# ---------------------------------------------------------------------------------------------
# Runtime shared by all handlers
# ---------------------------------------------------------------------------------------------


class Runtime:
    """Config, faults, RNG, store and URLs shared by the handlers of all origins (thread-safe)."""

    def __init__(self, store: Store, pki: Pki, config: Config, seed: int, verbose: bool) -> None:
        self.store = store
        self.pki = pki
        self.initial_config = replace(config)
        self.config = replace(config)
        self.initial_seed = seed
        self.faults: dict[str, Any] = {}
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.verbose = verbose
        self.origins: dict[str, str] = {}
        self.on_config_change: Callable[[], None] | None = None

    # -- config / faults -------------------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        checked = _check_config(changes)
        with self.lock:
            for k, v in checked.items():
                setattr(self.config, k, v)
            cfg = asdict(self.config)
        if "require_client_chain" in checked and self.on_config_change:
            self.on_config_change()
        return cfg

    def set_faults(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        cfg_changes = {k: changes[k] for k in _FAULT_CONFIG_ALIASES if k in changes}
        checked: dict[str, Any] = {}
        for k, v in changes.items():
            if k in _FAULT_CONFIG_ALIASES:
                continue
            if k not in FAULTS:
                raise ValueError(f"unknown fault {k!r}; known: {sorted(FAULTS)}")
            checked[k] = None if v is None else FAULTS[k](v)
        if cfg_changes:
            self.configure(**cfg_changes)
        with self.lock:
            for k, v in checked.items():
                if v is None or v is False:
                    self.faults.pop(k, None)
                else:
                    self.faults[k] = v
            if "seed" in checked and checked["seed"] is not None:
                self.rng = random.Random(checked["seed"])
            return copy.deepcopy(self.faults)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.rng = random.Random(self.initial_seed)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.config = replace(self.initial_config)
            self.rng = random.Random(self.initial_seed)
            self.store.reset()
        if self.on_config_change:
            self.on_config_change()

    def fault(self, name: str) -> Any:
        with self.lock:
            return self.faults.get(name)

    def cfg(self) -> Config:
        with self.lock:
            return replace(self.config)

    def alt_layout(self) -> bool:
        with self.lock:
            return self.config.layout == "alternate" or bool(self.faults.get("alt_layout"))

    def random(self) -> float:
        with self.lock:
            return self.rng.random()

    def state(self) -> dict[str, Any]:
        data = self.store.snapshot()
        with self.lock:
            data["faults"] = copy.deepcopy(self.faults)
            data["config"] = asdict(self.config)
        return data

    # -- URLs ------------------------------------------------------------------------------

    @property
    def enroll_url(self) -> str:
        return self.origins["palena"] + ENROLL_PATH

    @property
    def portal_url(self) -> str:
        return self.origins["zeus"] + PORTAL_PATH

    def login_redirect(self, target: str) -> str:
        """Where a session-less enrolment page sends the browser (raw target as the whole query)."""
        path = PASSWORD_ENTRY_PATH if self.cfg().login_entry == "password" else CERT_ENTRY_PATH
        return f"{self.origins['zeus']}{path}?{target}"


# ---------------------------------------------------------------------------------------------
# HTTP servers
# ---------------------------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with TCP_NODELAY, a larger backlog, connection tracking and quiet errors."""

    daemon_threads = True
    request_queue_size = 256
    # Set by the owner: "zeus" | "hercules" | "palena" | "control".
    origin = ""
    runtime: Runtime

    def server_bind(self) -> None:
        super().server_bind()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # Without TCP_NODELAY, kept-alive answers wait for delayed ACKs (~40 ms each).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_connections(self) -> None:
        """Shut down kept-alive connections so their threads end promptly on stop."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.track(request, True)
        try:
            super().finish_request(request, client_address)
        finally:
            self.track(request, False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping connections or failing TLS are normal here; only log real bugs.
        import sys
        import traceback

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, BrokenPipeError, OSError)):
            return
        traceback.print_exc()


class _TLSServer(_QuietServer):
    """HTTPS server whose TLS handshake runs in the connection's own thread."""

    ssl_context: ssl.SSLContext
    handshake_timeout = 15.0

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.handshake_timeout)
        self.track(request, True)  # so stop() can cut a client stuck in the handshake
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            if self.runtime.verbose:
                print(f"[{self.origin}] TLS handshake failed from {client_address}: {e}", flush=True)
            return
        finally:
            self.track(request, False)
        self.track(tls, True)
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            self.track(tls, False)
            try:
                tls.close()
            except OSError:
                pass


def _server_context(pki: Pki, name: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.servers[name].cert), str(pki.servers[name].key))
    return ctx


def _hercules_context(pki: Pki, require_chain: bool) -> ssl.SSLContext:
    ctx = _server_context(pki, "hercules")
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Trusting the intermediate too accepts clients that send only their leaf; require_client_chain
    # trusts only the root, so the client must send the intermediate like some real CAs need.
    ctx.load_verify_locations(str(pki.root_ca if require_chain else pki.ca_bundle))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# ---------------------------------------------------------------------------------------------
# Request handling
# ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    server: _QuietServer

    # -- plumbing --------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.runtime.verbose:
            super().log_message(format, *args)

    @property
    def rt(self) -> Runtime:
        return self.server.runtime

    def _send(self, status: int, body: bytes, *, content_type: str = "text/html",
              headers: list[tuple[str, str]] | None = None, cookies: list[str] | None = None) -> None:
        self.send_response(status)
        # SII declares no charset: the bytes are ISO-8859-1 and the client has to know it.
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        for k, v in headers or []:
            self.send_header(k, v)
        for c in cookies or []:
            self.send_header("Set-Cookie", c)
        # Headers and body in a single write (one TCP segment for small pages).
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        if self.command != "HEAD":
            self._headers_buffer.append(body)  # type: ignore[attr-defined]
        self.flush_headers()

    def _html(self, page: str, status: int = 200, **kw: Any) -> None:
        self._send(status, pages.to_bytes(page), **kw)

    def _redirect(self, location: str, cookies: list[str] | None = None) -> None:
        body = pages.to_bytes(
            f'<HTML><HEAD><TITLE>302 Found</TITLE></HEAD><BODY>Moved <A HREF="{pages.raw(location)}">here</A>.</BODY></HTML>\n'
        )
        self._send(302, body, headers=[("Location", location)], cookies=cookies)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1_000_000:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _split_path(self) -> tuple[str, str]:
        path, _, query = self.path.partition("?")
        return path, query

    def _form(self, body: bytes) -> dict[str, str]:
        """Query string + urlencoded body, decoded as ISO-8859-1 (what SII's CGIs expect)."""
        _, query = self._split_path()
        out: dict[str, str] = {}
        for text in (query, body.decode("ascii", errors="replace")):
            if not text:
                continue
            for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="iso-8859-1"):
                out[k] = v
        return out

    def _cookies(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, eq, value = part.strip().partition("=")
                if eq:
                    out[name] = value
        return out

    def _latency(self) -> None:
        cfg = self.rt.cfg()
        delay = cfg.latency_ms + (self.rt.random() * cfg.jitter_ms if cfg.jitter_ms else 0.0)
        if delay > 0:
            time.sleep(delay / 1000.0)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body() if method in ("POST", "DELETE") else b""
        except ValueError:
            self._send(413, b"too large", content_type="text/plain")
            return
        origin = self.server.origin
        try:
            if origin == "control":
                self._control(method, body)
            elif origin == "zeus":
                self._zeus(method, body)
            elif origin == "hercules":
                self._hercules(method, body)
            else:
                self._palena(method, body)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            raise
        except Exception:  # noqa: BLE001 (a sandbox bug must surface as a 500 the tests can see, not a hang)
            import traceback

            traceback.print_exc()
            self._html(pages.http500_body(), 500)

    def _control(self, method: str, body: bytes) -> None:
        _control(self, method, body)

    def _not_found(self) -> None:
        self._html(
            "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD><BODY><H1>Not Found</H1>"
            "<P>The requested URL was not found on this server.</P></BODY></HTML>\n",
            404,
        )

    # -- page-level faults -----------------------------------------------------------------

    def _page_faults(self, step: str, default_steps: tuple[str, ...]) -> bool:
        """Apply WAF / HTTP 500 / generic-error faults for ``step``; True when a fault answered."""
        waf = self.rt.fault("waf")
        if waf is True and step in default_steps or isinstance(waf, list) and step in waf:
            support_id = str(10**18 + int(self.rt.random() * 8 * 10**18))
            style = self.rt.fault("waf_style") or "transaccion"
            page = pages.waf_f5_page(support_id) if style == "f5" else pages.waf_transaccion_page(support_id)
            self._html(page)
            return True
        rate = self.rt.fault("http500_rate")
        if rate:
            steps = self.rt.fault("http500_steps") or default_steps
            if step in steps and self.rt.random() < rate:
                self._html(pages.http500_body(), 500)
                return True
        generic = self.rt.fault("generic_error")
        if generic is True and step in default_steps or isinstance(generic, list) and step in generic:
            self._html(pages.message_page(pages.TITLE, [TEXT_GENERIC], code=CODE_GENERIC, alt=self.rt.alt_layout(),
                                          back="history"))
            return True
        return False

    # -- zeus-like origin ------------------------------------------------------------------

    def _zeus(self, method: str, body: bytes) -> None:
        path, query = self._split_path()
        steps = {
            "/": "portal", PORTAL_PATH: "portal", CERT_ENTRY_PATH: "IngresoCertificado",
            PASSWORD_ENTRY_PATH: "IngresoRutClave", LOGOUT_PATH: "autTermino", ERRORP_PATH: "errorp",
            CERT_LOGIN_PATH: "clave_login",
        }
        step = steps.get(path)
        if step is None:
            self._not_found()
            return
        self._latency()
        if self._page_faults(step, ()):
            return
        target = urllib.parse.unquote(query) if query.startswith("https%3A") else query
        target = target or self.rt.enroll_url
        if step == "portal":
            self._html(pages.portal_page())
        elif step == "IngresoCertificado":
            action = f"{self.rt.origins['hercules']}{CERT_LOGIN_PATH}?{target}"
            self._html(pages.cert_entry_page(target, action, self.rt.portal_url))
        elif step == "IngresoRutClave":
            cert_entry = f"{self.rt.origins['zeus']}{CERT_ENTRY_PATH}?{target}"
            action = f"{self.rt.origins['zeus']}{CERT_LOGIN_PATH}"
            self._html(pages.password_login_page(target, cert_entry, action))
        elif step == "clave_login":
            # RUT + Clave login is not modelled: the product only uses certificates.
            self._html(pages.alert_page(
                "La autenticación con RUT y Clave no está disponible en este ambiente. "
                "Identifíquese con Certificado Digital."
            ))
        elif step == "autTermino":
            s = self.rt.store.end_session(self._cookies().get("TOKEN"))
            expired = "expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/"
            names = ["TOKEN", "CSESSIONID", "RUT_NS", "DV_NS"] + [f"NETSCAPE_LIVEWIRE.{n}" for n in _LIVEWIRE]
            cookies = [f"{n}=DEL; {expired}" for n in names] if s is not None else []
            self._html(pages.logout_page(self.rt.portal_url), cookies=cookies)
        else:
            self._html(pages.errorp_page())

    # -- hercules-like origin (certificate login) --------------------------------------------

    def _hercules(self, method: str, body: bytes) -> None:
        path, query = self._split_path()
        if path != CERT_LOGIN_PATH:
            self._not_found()
            return
        self._latency()
        if self._page_faults("CAutInicio", ()):
            return
        form = self._form(body) if method == "POST" else {}
        target = form.get("referencia") or (urllib.parse.unquote(query) if query.startswith("https%3A") else query)
        if not any(target.startswith(self.rt.origins[o] + "/") for o in ("palena", "zeus")):
            # Only our own origins, like SII only returns to sii.cl: never navigate anywhere else.
            target = self.rt.enroll_url
        errorp = self.rt.origins["zeus"] + ERRORP_PATH
        der = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        holder: str | None = None
        cert_name = ""
        if der:
            cert = x509.load_der_x509_certificate(der)
            rut_text, _ = rut_from_certificate(cert)
            holder = try_canonical(rut_text)
            cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            cert_name = str(cns[0].value) if cns else ""
        if self.rt.fault("no_certificate") or holder is None:
            # SII answers a login without a usable certificate with a redirect to errorp.html.
            self._redirect(errorp)
            return
        alert = self.rt.fault("login_alert")
        if alert:
            text = alert if isinstance(alert, str) else DEFAULT_LOGIN_ALERT
            self._html(pages.alert_page(text, then=f"location.href = {pages.js_str(self.rt.portal_url)};"))
            return
        throttle = self.rt.fault("throttle_logins")
        attempts = self.rt.store.note_login_attempt(holder, float(self.rt.fault("throttle_window_s") or 60.0))
        if self.rt.fault("login_throttled") or (throttle is not None and attempts > throttle):
            self._html(pages.message_page("Autenticaci&oacute;n", [TEXT_THROTTLED], code=CODE_THROTTLED))
            return
        max_sessions = self.rt.fault("max_sessions")
        if self.rt.fault("too_many_sessions") or (
            max_sessions is not None and self.rt.store.live_sessions(holder) >= max_sessions
        ):
            self._html(pages.message_page("Autenticaci&oacute;n", [TEXT_TOO_MANY_SESSIONS], code=CODE_TOO_MANY_SESSIONS))
            return
        name = self.rt.store.person_name(holder) or cert_name
        session = self.rt.store.create_session(holder, name)
        livewire = _livewire_cookies(session)
        http_cookies = [
            f"TOKEN={session.token}; path=/",
            f"CSESSIONID={session.csessionid}; path=/",
            f"RUT_NS={split(holder)[0]}; path=/",
            f"DV_NS={split(holder)[1]}; path=/",
        ]
        if self.rt.cfg().login_response == "redirect":
            self._redirect(target, cookies=http_cookies + livewire)
        else:
            self._html(pages.login_js_page(livewire, target), cookies=http_cookies)

    # -- palena-like origin (enrolment) -----------------------------------------------------

    def _palena(self, method: str, body: bytes) -> None:
        path, _ = self._split_path()
        prefix = "/cvc_cgi/dte/"
        step = path[len(prefix):] if path.startswith(prefix) else ""
        if step not in PALENA_STEPS:
            self._not_found()
            return
        self._latency()
        waf = self.rt.fault("waf")
        if waf is True or isinstance(waf, list) and step in waf:
            # The WAF sits in front of everything, sessions included.
            self._page_faults(step, PALENA_STEPS)
            return
        target = self.rt.origins["palena"] + self.path
        session = self.rt.store.get_session(self._cookies().get("TOKEN"))
        if session is None:
            self._redirect(self.rt.login_redirect(target))
            return
        with self.rt.store.lock:
            session.pages += 1
            pages_seen = session.pages
        limit = self.rt.fault("session_expiry_pages")
        if limit is not None and pages_seen > limit:
            # The session dies mid-flow, as an SII session that timed out would.
            with self.rt.store.lock:
                self.rt.store.sessions.pop(session.token, None)
            self._redirect(self.rt.login_redirect(target))
            return
        if self._page_faults(step, PALENA_STEPS):
            return
        form = self._form(body)
        _Enrolment(self, session, form).run(step)


_LIVEWIRE = ("rut", "dv", "rutm", "dvm", "clave", "mac", "exp", "sec", "lms", "locexp")


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


class _Enrolment:
    """The palena-like CGIs for one request with a valid session."""

    def __init__(self, h: _Handler, session: Session, form: dict[str, str]) -> None:
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
        self.h._html(page, status)

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
        if company is None or not company["may_operate"] or _applies(self.rt.fault("company_not_authorized"), rut):
            self.message([TEXT_NOT_AUTHORIZED], back="eu_enrola_usuarios")
            return None
        if not self.rt.store.can_operate(self.session.holder_rut, rut) or _applies(
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

    def flags(self) -> dict[str, bool]:
        return {
            "admin": self.form.get("SUP_USU") == "S",
            "sign": self.form.get("FIRMAR") == "S",
            "registry": self.form.get("CONSULTAR") == "S",
        }

    def record(self, user_rut: str, flags: Mapping[str, bool]) -> dict[str, Any]:
        return {"rut": user_rut, "name": self.rt.store.person_name(user_rut) or "", **flags}

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
        flags = self.flags()
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
        flags = {k: bool(pending[k]) for k in ("admin", "sign", "registry")}
        user_rut = pending["user"]
        if self.form.get("ACEPTAR") == "Modificar Datos":
            body, dv = split(user_rut)
            prefill = {"RUT_USU": body, "DV_USU": dv, "SUP_USU": "S" if flags["admin"] else "",
                       "FIRMAR": "S" if flags["sign"] else "", "CONSULTAR": "S" if flags["registry"] else ""}
            self.html(pages.new_user_form(company, order=self.order, alt=self.alt, prefill=prefill))
            return
        if _applies(self.rt.fault("user_exists"), company["rut"]):
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
            sentence = (
                f"Se ha eliminado satisfactoriamente el usuario {user['rut']} de la empresa "
                f"{pages.ent(company['name'])}, Rut {company['rut']}."
            )
            self.html(pages.result_page(
                "ELIMINACION DE USUARIOS AUTORIZADOS", sentence, company, None, self.session.holder_name,
                order=self.order, actions=self.cfg.actions, alt=self.alt,
            ))
            return
        flags = self.flags()
        if not any(flags.values()):
            self.html(pages.alert_page("Debe seleccionar al menos un privilegio para el usuario."))
            return
        self.rt.store.update_user(company["rut"], user["rut"], by=by, **flags)
        sentence = (
            f"Se ha modificado satisfactoriamente el usuario en la empresa {pages.ent(company['name'])}, "
            f"Rut {company['rut']}, con los siguientes antecedentes:"
        )
        self.html(pages.result_page(
            "MODIFICACION DE USUARIOS AUTORIZADOS", sentence, company, self.record(user["rut"], flags),
            self.session.holder_name, order=self.order, actions=self.cfg.actions, alt=self.alt,
        ))


# ---------------------------------------------------------------------------------------------
# Control server (plain HTTP, JSON)
# ---------------------------------------------------------------------------------------------


def _control_routes(h: _Handler, method: str, body: bytes) -> tuple[int, Any]:
    rt = h.rt
    path, query = h._split_path()
    params = dict(urllib.parse.parse_qsl(query))
    payload: Any = json.loads(body.decode("utf-8")) if body.strip() else {}
    if method == "GET" and path == "/state":
        return 200, rt.state()
    if method == "GET" and path == "/health":
        return 200, {"ok": True}
    if path == "/faults":
        if method == "GET":
            return 200, rt.state()["faults"]
        if method == "DELETE":
            rt.clear_faults()
            return 200, {}
        if method == "POST":
            if not isinstance(payload, dict):
                raise ValueError("faults body must be a JSON object")
            if params.get("replace") in ("1", "true"):
                rt.clear_faults()
            return 200, rt.set_faults(payload)
    if method == "POST" and path == "/reset":
        rt.reset()
        return 200, {"ok": True}
    if method == "POST" and path == "/config":
        return 200, rt.configure(**payload)
    if method == "POST" and path == "/companies":
        items = payload["companies"] if isinstance(payload, dict) and "companies" in payload else payload
        items = items if isinstance(items, list) else [items]
        return 200, {"stored": rt.store.add_companies(items)}
    if method == "POST" and path == "/persons":
        persons = payload.get("persons") if "persons" in payload else {payload["rut"]: payload["name"]}
        rt.store.add_persons(persons)
        return 200, {"stored": len(persons)}
    if path == "/users":
        if method == "GET":
            return 200, rt.store.users(params["company"])
        if method == "POST":
            return 200, rt.store.add_user(
                payload["company"], payload["rut"], admin=bool(payload.get("admin")),
                sign=bool(payload.get("sign")), registry=bool(payload.get("registry")), log=False,
            )
    if method == "POST" and path == "/sessions/expire":
        return 200, {"expired": rt.store.expire_sessions(payload.get("holder"))}
    return 404, {"error": f"no route {method} {path}"}


def _control(self: _Handler, method: str, body: bytes) -> None:
    """Answer a control-server request with JSON (400 on bad input, 409 on refused state changes)."""
    try:
        status, result = _control_routes(self, method, body)
    except StateError as e:
        status, result = 409, {"error": str(e), "code": e.code}
    except (ValueError, KeyError, TypeError) as e:
        status, result = 400, {"error": str(e)}
    data = json.dumps(result, ensure_ascii=False, indent=1).encode("utf-8")
    self._send(status, data, content_type="application/json; charset=utf-8")


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

_ORIGINS = ("zeus", "hercules", "palena", "control")


class Sandbox:
    """A running SII sandbox (three HTTPS origins + control server) in background threads.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. All arguments after the paths
    are keyword-only. ``state_path=None`` keeps the state in memory; ``ports`` maps
    ``zeus``/``hercules``/``palena``/``control`` to fixed ports (0 or missing = ephemeral).
    """

    def __init__(
        self,
        pki_dir: str | Path = "var/sandbox/pki",
        state_path: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        latency_ms: float = 0,
        jitter_ms: float = 0,
        login_entry: str = "certificate",
        company_rut_screens: int = 1,
        actions: str = "buttons",
        login_response: str = "javascript",
        layout: str = "standard",
        require_client_chain: bool = False,
        ports: Mapping[str, int] | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        cfg = Config(**_check_config({
            "login_entry": login_entry, "company_rut_screens": company_rut_screens, "actions": actions,
            "login_response": login_response, "layout": layout, "latency_ms": latency_ms, "jitter_ms": jitter_ms,
            "require_client_chain": require_client_chain,
        }))
        self.host = host
        self._ports = {name: int((ports or {}).get(name, 0)) for name in _ORIGINS}
        self.pki: Pki = ensure_pki(pki_dir)
        self.store = Store(state_path)
        self.runtime = Runtime(self.store, self.pki, cfg, seed, verbose)
        self.runtime.on_config_change = self._refresh_tls
        self._servers: dict[str, _QuietServer] = {}
        self._threads: list[threading.Thread] = []
        self._serving: set[str] = set()
        self.env: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and start all servers; fills :attr:`env`. Returns self."""
        if self._servers:
            return self
        try:
            for name in _ORIGINS:
                cls = _QuietServer if name == "control" else _TLSServer
                srv = cls((self.host, self._ports[name]), _Handler)
                srv.origin = name
                srv.runtime = self.runtime
                if isinstance(srv, _TLSServer):
                    srv.ssl_context = (
                        _hercules_context(self.pki, self.runtime.config.require_client_chain)
                        if name == "hercules" else _server_context(self.pki, name)
                    )
                self._servers[name] = srv
                scheme = "http" if name == "control" else "https"
                self.runtime.origins[name] = f"{scheme}://{_url_host(self.host)}:{srv.server_address[1]}"
            for name, srv in self._servers.items():
                t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                                     name=f"sii-sandbox-{name}", daemon=True)
                t.start()
                self._serving.add(name)
                self._threads.append(t)
        except BaseException:
            self.stop()
            raise
        self.env = self._make_env()
        return self

    def stop(self) -> None:
        """Stop all servers and close their connections (idempotent)."""
        for name, srv in self._servers.items():
            if name in self._serving:
                srv.shutdown()  # blocks until serve_forever returns; only valid once it started
            srv.close_connections()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        self._serving.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _refresh_tls(self) -> None:
        srv = self._servers.get("hercules")
        if isinstance(srv, _TLSServer):
            srv.ssl_context = _hercules_context(self.pki, self.runtime.cfg().require_client_chain)

    # -- information -----------------------------------------------------------------------

    @property
    def origins(self) -> dict[str, str]:
        """``{"zeus": "https://127.0.0.1:P", "hercules": ..., "palena": ..., "control": "http://..."}``."""
        return dict(self.runtime.origins)

    def _make_env(self) -> dict[str, str]:
        o = self.runtime.origins
        demo = self.pki["demo"]
        return {
            "SII_ENROLL_URL": o["palena"] + ENROLL_PATH,
            "SII_CERT_ORIGINS": o["hercules"],
            "SII_CA_BUNDLE": str(self.pki.ca_bundle),
            "SII_LOGOUT_URL": o["zeus"] + LOGOUT_PATH,
            "SANDBOX_DEMO_PFX": str(demo.path),
            "SANDBOX_DEMO_PFX_PASSWORD": demo.password or "",
            "SANDBOX_DEMO_COMPANY_RUT": DEMO_COMPANY_RUT,
            "SANDBOX_STATE_URL": o["control"] + "/state",
            "SANDBOX_CONTROL_URL": o["control"],
            "SANDBOX_PKI_MANIFEST": str(self.pki.manifest_path),
        }

    def env_lines(self) -> list[str]:
        """``NAME=value`` lines of :attr:`env`, shell-quoted only where needed (sourceable)."""
        import shlex

        out = []
        for k, v in self.env.items():
            q = shlex.quote(v)
            out.append(f"{k}={q}")
        return out

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The whole state as GET /state returns it (companies, persons, sessions, log, faults, config)."""
        return self.runtime.state()

    def users(self, company_rut: str) -> list[dict[str, Any]]:
        """Authorized users of a company: ``[{"rut", "name", "admin", "sign", "registry", "authorized_by", ...}]``."""
        return self.store.users(company_rut)

    def reset(self) -> None:
        """Restore the seeded state, log everybody out, clear faults and restore the initial config."""
        self.runtime.reset()

    def add_company(self, rut: str, name: str, admins: list[str] | tuple[str, ...] = (), *,
                    may_operate: bool = True, users: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Create or replace a company (``users``: ``[{"rut", "admin", "sign", "registry"}]``); returns it."""
        return self.store.add_company(rut, name, admins, may_operate, users)

    def add_companies(self, companies: list[dict[str, Any]]) -> int:
        """Bulk add (one file write): items like add_company's arguments as dicts. Returns the count."""
        return self.store.add_companies(companies)

    def set_company(self, rut: str, **changes: Any) -> dict[str, Any]:
        """Change ``name``, ``may_operate`` or ``admins`` of a company; returns it."""
        return self.store.set_company(rut, **changes)

    def add_person(self, rut: str, name: str) -> None:
        """Register a person's name (shown as Nombre Usuario for that RUT)."""
        self.store.add_person(rut, name)

    def add_user(self, company_rut: str, user_rut: str, *, admin: bool = False, sign: bool = False,
                 registry: bool = False) -> dict[str, Any]:
        """Put a user straight into a company's list (e.g. to test "user already exists")."""
        return self.store.add_user(company_rut, user_rut, admin=admin, sign=sign, registry=registry, log=False)

    def expire_sessions(self, holder_rut: str | None = None) -> int:
        """Drop live sessions (all or one holder's); the next enrolment page redirects to login."""
        return self.store.expire_sessions(try_canonical(holder_rut) if holder_rut else None)

    # -- faults / config -------------------------------------------------------------------

    def set_faults(self, faults: Mapping[str, Any] | None = None, /, **kw: Any) -> dict[str, Any]:
        """Merge faults (dict and/or keywords; a value of None/False removes one). Returns all active faults."""
        return self.runtime.set_faults({**(faults or {}), **kw})

    def clear_faults(self) -> None:
        """Remove every fault (config is kept)."""
        self.runtime.clear_faults()

    def faults(self) -> dict[str, Any]:
        """The active faults."""
        return self.runtime.state()["faults"]

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change behaviour at run time: login_entry, company_rut_screens, actions, login_response,
        layout, latency_ms, jitter_ms, require_client_chain. Returns the whole config."""
        return self.runtime.configure(**changes)

    def config(self) -> dict[str, Any]:
        """The current configuration."""
        return asdict(self.runtime.cfg())


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
