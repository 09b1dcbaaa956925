"""The running sandbox: three HTTPS origins (zeusr-, herculesr- and palena-like) and a control server.

Use :class:`Sandbox` (see ``sii_sandbox/__init__.py`` for the documented API)::

    with Sandbox(pki_dir="var/sandbox/pki", state_path="var/sandbox/state.json") as sb:
        print(sb.env["SII_ENROLL_URL"])

Design notes (why it is built this way):
- One ``ThreadingHTTPServer`` per origin (``handlers.QuietServer``), ``daemon_threads``, HTTP/1.1
  keep-alive with exact Content-Length, ``TCP_NODELAY`` on every accepted socket (without it a
  kept-alive answer can stall ~40 ms on delayed ACKs), headers and body sent in one write.
- The TLS handshake happens in the per-connection thread (``tls.TLSServer``), never in the accept
  loop, so a slow or broken client cannot block other connections; the herculesr-like origin
  requires the client certificate in the handshake itself (``tls.hercules_context``).
- All three origins share one in-process session store: on loopback they share the host
  127.0.0.1, and cookies are per host, not per port, so the TOKEN set at login reaches the
  enrolment origin exactly as ``.sii.cl`` cookies do in production.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self

from .attributes import DEFAULT_LAYOUT, KEYS, flags_from
from .auth import hercules, zeus
from .config import ENROLL_PATH, LOGOUT_PATH, Config, check_config
from .control import control
from .enrolment import palena
from .handlers import Handler, QuietServer, Route
from .pki import Pki, ensure_pki
from .runtime import Runtime
from .rut import try_canonical
from .state import DEMO_COMPANY_RUT, MARKET_COMPANY_RUT, REPRESENTED_COMPANY_RUT, Store
from .tls import TLSServer, hercules_context, server_context

__all__ = ["Sandbox"]

_ORIGINS = ("zeus", "hercules", "palena", "control")
_ROUTES: dict[str, Route] = {"zeus": zeus, "hercules": hercules, "palena": palena, "control": control}


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
        cfg = Config(**check_config({
            "login_entry": login_entry, "company_rut_screens": company_rut_screens, "actions": actions,
            "login_response": login_response, "layout": layout, "latency_ms": latency_ms, "jitter_ms": jitter_ms,
            "require_client_chain": require_client_chain,
        }))
        self.host = host
        self._ports = {name: int((ports or {}).get(name, 0)) for name in _ORIGINS}
        self.pki: Pki = ensure_pki(pki_dir)
        self.store = Store(state_path)
        self.runtime = Runtime(self.store, cfg, seed, verbose)
        self.runtime.on_config_change = self._refresh_tls
        self._servers: dict[str, QuietServer] = {}
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
                cls = QuietServer if name == "control" else TLSServer
                srv = cls((self.host, self._ports[name]), Handler)
                srv.origin = name
                srv.runtime = self.runtime
                srv.route = _ROUTES[name]
                if isinstance(srv, TLSServer):
                    srv.ssl_context = (
                        hercules_context(self.pki, self.runtime.config.require_client_chain)
                        if name == "hercules" else server_context(self.pki, name)
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
        if isinstance(srv, TLSServer):
            srv.ssl_context = hercules_context(self.pki, self.runtime.cfg().require_client_chain)

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
            "SANDBOX_MARKET_COMPANY_RUT": MARKET_COMPANY_RUT,
            "SANDBOX_REPRESENTED_COMPANY_RUT": REPRESENTED_COMPANY_RUT,
            "SANDBOX_REPRESENTATIVE_PFX": str(self.pki["representative"].path),
            "SANDBOX_STATE_URL": o["control"] + "/state",
            "SANDBOX_CONTROL_URL": o["control"],
            "SANDBOX_PKI_MANIFEST": str(self.pki.manifest_path),
        }

    def env_lines(self) -> list[str]:
        """``NAME=value`` lines of :attr:`env`, shell-quoted only where needed (sourceable)."""
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
                    may_operate: bool = True, users: list[dict[str, Any]] | None = None,
                    layout: str = DEFAULT_LAYOUT) -> dict[str, Any]:
        """Create or replace a company (``users``: ``[{"rut", "admin", "sign", "registry", ...}]`` or
        ``[{"rut", "attributes": {"SUP_USU": True, ...}}]``; ``layout``: "mipyme" | "market"); returns it."""
        return self.store.add_company(rut, name, admins, may_operate, users, layout)

    def add_companies(self, companies: list[dict[str, Any]]) -> int:
        """Bulk add (one file write): items like add_company's arguments as dicts. Returns the count."""
        return self.store.add_companies(companies)

    def set_company(self, rut: str, **changes: Any) -> dict[str, Any]:
        """Change ``name``, ``may_operate``, ``admins`` or ``layout`` of a company; returns it."""
        return self.store.set_company(rut, **changes)

    def add_person(self, rut: str, name: str) -> None:
        """Register a person's name (shown as Nombre Usuario for that RUT)."""
        self.store.add_person(rut, name)

    def add_user(self, company_rut: str, user_rut: str, *, attributes: Mapping[str, bool] | None = None,
                 **flags: bool) -> dict[str, Any]:
        """Put a user straight into a company's list, behind the pages' back (no log, no save counted).

        ``flags``: ``admin``, ``folios``, ``annul``, ``sign``, ``send``, ``registry``; or ``attributes``
        by SII field name (``{"SUP_USU": True, "ENVIAR": True}``). Missing ones are False.
        """
        return self.store.add_user(company_rut, user_rut, log=False, **_flags(flags, attributes, partial=False))

    def update_user(self, company_rut: str, user_rut: str, *, attributes: Mapping[str, bool] | None = None,
                    **flags: bool) -> dict[str, Any]:
        """Change some attributes of a user behind the pages' back (drift); the others keep their value."""
        return self.store.update_user(company_rut, user_rut, log=False, **_flags(flags, attributes, partial=True))

    def delete_user(self, company_rut: str, user_rut: str) -> dict[str, Any]:
        """Remove a user behind the pages' back (drift); returns the removed record."""
        return self.store.delete_user(company_rut, user_rut, log=False)

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


def _flags(flags: Mapping[str, bool], attributes: Mapping[str, bool] | None, *, partial: bool) -> dict[str, bool]:
    unknown = set(flags) - set(KEYS)
    if unknown:
        raise TypeError(f"unknown flags {sorted(unknown)}; known: {list(KEYS)}")
    return flags_from({**flags, "attributes": attributes or {}}, partial=partial)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
