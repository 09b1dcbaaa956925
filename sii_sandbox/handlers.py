"""HTTP plumbing shared by every origin: the threaded server and the request handler base.

Each origin's server carries a :data:`Route` (``auth.zeus``, ``auth.hercules``,
``enrolment.palena``, ``control.control``) that answers its requests through :class:`Handler`'s
helpers: ISO-8859-1 pages with exact Content-Length, redirects, forms, cookies, added latency and
the page-level faults (WAF, HTTP 500, generic error).
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import pages
from .runtime import Runtime

# The sandbox's own message code and wording for "try again later".
CODE_GENERIC = "01.01.209.500.709.21"
TEXT_GENERIC = "No ha sido posible completar su solicitud. Int&eacute;ntelo m&aacute;s tarde."

Route = Callable[["Handler", str, bytes], None]
"""Answers one request of an origin, given the handler, the method and the request body."""


class QuietServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with TCP_NODELAY, a larger backlog, connection tracking and quiet errors."""

    daemon_threads = True
    request_queue_size = 256
    # Set by the owner: "zeus" | "hercules" | "palena" | "control", and what answers its requests.
    origin = ""
    runtime: Runtime
    route: Route

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
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, BrokenPipeError, OSError)):
            return
        traceback.print_exc()


class Handler(BaseHTTPRequestHandler):
    """One connection of any origin; each request goes to the server's :data:`Route`."""

    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    server: QuietServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.runtime.verbose:
            super().log_message(format, *args)

    @property
    def rt(self) -> Runtime:
        return self.server.runtime

    # -- answers ---------------------------------------------------------------------------

    def send_body(self, status: int, body: bytes, *, content_type: str = "text/html",
                  headers: list[tuple[str, str]] | None = None, cookies: list[str] | None = None) -> None:
        """Send status, headers and body (none for HEAD) in one write."""
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

    def send_html(self, page: str, status: int = 200, **kw: Any) -> None:
        """Send a page encoded as ISO-8859-1 (``kw``: ``headers``, ``cookies``)."""
        self.send_body(status, pages.to_bytes(page), **kw)

    def send_redirect(self, location: str, cookies: list[str] | None = None) -> None:
        """Send Apache's 302 page to ``location``, with optional Set-Cookie headers."""
        body = pages.to_bytes(
            f'<HTML><HEAD><TITLE>302 Found</TITLE></HEAD><BODY>Moved <A HREF="{pages.raw(location)}">here</A>.</BODY></HTML>\n'
        )
        self.send_body(302, body, headers=[("Location", location)], cookies=cookies)

    def send_not_found(self) -> None:
        self.send_html(
            "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD><BODY><H1>Not Found</H1>"
            "<P>The requested URL was not found on this server.</P></BODY></HTML>\n",
            404,
        )

    # -- reading the request ---------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1_000_000:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def path_and_query(self) -> tuple[str, str]:
        """The request path and its raw query string (without ``?``)."""
        path, _, query = self.path.partition("?")
        return path, query

    def form(self, body: bytes) -> dict[str, str]:
        """Query string + urlencoded body, decoded as ISO-8859-1 (what SII's CGIs expect)."""
        _, query = self.path_and_query()
        out: dict[str, str] = {}
        for text in (query, body.decode("ascii", errors="replace")):
            if not text:
                continue
            for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="iso-8859-1"):
                out[k] = v
        return out

    def cookies(self) -> dict[str, str]:
        """The request's cookies by name."""
        out: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, eq, value = part.strip().partition("=")
                if eq:
                    out[name] = value
        return out

    # -- what every page goes through ------------------------------------------------------

    def wait_latency(self) -> None:
        """Sleep the configured latency plus jitter."""
        cfg = self.rt.cfg()
        delay = cfg.latency_ms + (self.rt.random() * cfg.jitter_ms if cfg.jitter_ms else 0.0)
        if delay > 0:
            time.sleep(delay / 1000.0)

    def outage(self, step: str) -> bool:
        """Fault ``outage``: a 302 to SII's "servicio no disponible" help page; True when it answered."""
        if self.rt.take_outage(step):
            self.send_redirect(self.rt.outage_url)
            return True
        return False

    def send_generic_error(self) -> None:
        """SII's "No ha sido posible completar su solicitud" page (HTTP 200) with the sandbox's code."""
        self.send_html(pages.message_page(pages.TITLE, [TEXT_GENERIC], code=CODE_GENERIC, alt=self.rt.alt_layout(),
                                          back="history"))

    def page_faults(self, step: str, default_steps: tuple[str, ...]) -> bool:
        """Apply WAF / HTTP 500 / generic-error faults for ``step``; True when a fault answered."""
        waf = self.rt.fault("waf")
        if waf is True and step in default_steps or isinstance(waf, list) and step in waf:
            support_id = str(10**18 + int(self.rt.random() * 8 * 10**18))
            style = self.rt.fault("waf_style") or "transaccion"
            page = pages.waf_f5_page(support_id) if style == "f5" else pages.waf_transaccion_page(support_id)
            self.send_html(page)
            return True
        rate = self.rt.fault("http500_rate")
        if rate:
            steps = self.rt.fault("http500_steps") or default_steps
            if step in steps and self.rt.random() < rate:
                self.send_html(pages.http500_body(), 500)
                return True
        generic = self.rt.fault("generic_error")
        if generic is True and step in default_steps or isinstance(generic, list) and step in generic:
            self.send_generic_error()
            return True
        rate = self.rt.fault("generic_error_rate")
        if rate:
            steps = self.rt.fault("generic_error_steps") or default_steps
            if step in steps and self.rt.random() < rate:
                self.send_generic_error()
                return True
        return False

    # -- dispatch --------------------------------------------------------------------------

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
            self.send_body(413, b"too large", content_type="text/plain")
            return
        try:
            self.server.route(self, method, body)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            raise
        except Exception:  # noqa: BLE001 (a sandbox bug must surface as a 500 the tests can see, not a hang)
            traceback.print_exc()
            self.send_html(pages.http500_body(), 500)
