"""The sandbox's data: companies, their authorized users, the person-name registry and sessions.

Persistent part (``Store.data``, written atomically to the state JSON file after every change)::

    {
      "version": 1,
      "companies": {"76086428-5": {"rut", "name", "may_operate": bool, "admins": [person RUT, ...],
                                   "layout": "mipyme" | "market",
                                   "users": {"10345678-9": {"rut", "admin", "folios", "annul", "sign",
                                                            "send", "registry", "authorized_by",
                                                            "created_at", "updated_at"}}}},
      "persons":   {"10345678-9": "MARIA JOSE SOTO PEREZ", ...},
      "sessions":  {"10345678-9": {"logins": n, "logouts": n, "last_login": iso}},
      "max_concurrent_sessions_by_rut": {"10345678-9": n},   # highest number of live sessions seen
      "saves":     {"<company RUT>": {"<user RUT>": n}},      # writes made through the pages
      "log":       [{"at", "action": "create"|"update"|"delete", "company", "user",
                     "admin", "folios", "annul", "sign", "send", "registry", "by"}]
    }

Flags map to SII's form fields (see :mod:`sii_sandbox.attributes`): ``admin`` = SUP_USU, ``folios``
= OBTENER, ``annul`` = ANULAR, ``sign`` = FIRMAR, ``send`` = ENVIAR, ``registry`` = CONSULTAR.
A company's ``layout`` decides which of them its pages show (three on "mipyme", six on "market").
``saves`` and ``log`` count only what the enrolment pages wrote (Grabar Usuario, Guardar Cambios);
changes made through the control API ("behind the bot's back") are in neither.

Live sessions (login cookies) are kept in memory only: a restart logs everybody out, which is
what a real server restart would do too.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import pki as pki_mod
from .attributes import DEFAULT_LAYOUT, KEYS, check_layout, flags_from
from .rut import canonical

STATE_VERSION = 1
# AUT2000 sessions last two hours (the NETSCAPE_LIVEWIRE.locexp cookie says so).
SESSION_TTL_S = 2 * 60 * 60

DEMO_COMPANY_RUT = "76086428-5"
DEMO_COMPANY_NAME = "COMERCIAL DEMO SPA"
NOT_AUTHORIZED_COMPANY_RUT = "96874030-K"
FOREIGN_COMPANY_RUT = "77879240-0"
SHARED_COMPANY_RUT = "76369187-K"
K_COMPANY_RUT = "76999999-K"
# A person to enrol in the demo flows (the accounting firm's representative).
DEMO_USER_RUT = "11111111-1"
DEMO_USER_NAME = "JUAN PEREZ GONZALEZ"

# The demo accounting firm's representative (Autoriza's demo tenant authorizes him); in the registry
# so "Nombre Usuario" resolves, but not yet a user of any company.
FIRM_REPRESENTATIVE_RUT = pki_mod.REPRESENTATIVE_HOLDER_RUT
FIRM_REPRESENTATIVE_NAME = pki_mod.REPRESENTATIVE_HOLDER_NAME

# A company on market software: its pages show six attributes (SANDBOX_MARKET_COMPANY_RUT).
MARKET_COMPANY_RUT = "76543210-3"
MARKET_COMPANY_NAME = "DISTRIBUIDORA FACTURA MERCADO SPA"
# A company where the firm representative is an authorized user with Usuario Administrador, so his
# own certificate (PKI name "representative") can maintain its users (SANDBOX_REPRESENTED_COMPANY_RUT).
REPRESENTED_COMPANY_RUT = "76777777-9"
REPRESENTED_COMPANY_NAME = "ASESORIAS DELEGADAS SPA"

SEED_PERSONS: dict[str, str] = {
    pki_mod.DEMO_HOLDER_RUT: pki_mod.DEMO_HOLDER_NAME,
    FIRM_REPRESENTATIVE_RUT: FIRM_REPRESENTATIVE_NAME,
    pki_mod.ADMIN2_HOLDER_RUT: pki_mod.ADMIN2_HOLDER_NAME,
    pki_mod.K_HOLDER_RUT: pki_mod.K_HOLDER_NAME,
    DEMO_USER_RUT: DEMO_USER_NAME,
    "7880442-4": "ROSA ELENA ARAYA CASTRO",
    "16543210-K": "JOSÉ MIGUEL NÚÑEZ SOTO",
    "14567890-0": "MARCELA IGNACIA ROJAS DÍAZ",
    "10987654-2": "FRANCISCO JAVIER LAGOS VERA",
    "17654321-3": "VALENTINA PAZ ORTIZ MUÑOZ",
    "18765432-7": "DIEGO ANDRÉS FUENTES PIZARRO",
}


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _user(rut: str, by: str | None, **flags: bool) -> dict[str, Any]:
    """A user record with all six flags (missing ones False)."""
    now = _now_iso()
    unknown = set(flags) - set(KEYS)
    if unknown:
        raise StateError("bad_field", f"unknown flags {sorted(unknown)}")
    return {
        "rut": rut, **{k: bool(flags.get(k)) for k in KEYS},
        "authorized_by": by, "created_at": now, "updated_at": now,
    }


def _seed_user(rut: str, admin: bool, sign: bool, registry: bool, by: str | None, **more: bool) -> dict[str, Any]:
    return _user(rut, by, admin=admin, sign=sign, registry=registry, **more)


def seed_data() -> dict[str, Any]:
    """Return a fresh copy of the seeded state (see the module docstring for the shape)."""
    demo = pki_mod.DEMO_HOLDER_RUT
    admin2 = pki_mod.ADMIN2_HOLDER_RUT
    k_holder = pki_mod.K_HOLDER_RUT

    def company(rut: str, name: str, admins: list[str], may_operate: bool = True,
                users: list[dict[str, Any]] | None = None, layout: str = DEFAULT_LAYOUT) -> dict[str, Any]:
        return {
            "rut": rut, "name": name, "may_operate": may_operate, "admins": admins, "layout": layout,
            "users": {u["rut"]: u for u in (users or [])},
        }

    companies = [
        company(DEMO_COMPANY_RUT, DEMO_COMPANY_NAME, [demo], users=[
            _seed_user(demo, True, True, True, None),
            _seed_user("7880442-4", False, True, True, demo),
        ]),
        company(NOT_AUTHORIZED_COMPANY_RUT, "DISTRIBUIDORA SIN AUTORIZACION S.A.", [demo], may_operate=False),
        company(FOREIGN_COMPANY_RUT, "SOCIEDAD AJENA LIMITADA", [admin2], users=[
            _seed_user(admin2, True, True, True, None),
        ]),
        company(SHARED_COMPANY_RUT, "INVERSIONES ÑUÑOA SPA", [demo, admin2], users=[
            _seed_user(DEMO_USER_RUT, False, True, False, admin2),
            _seed_user("16543210-K", False, False, True, admin2),
        ]),
        company(K_COMPANY_RUT, "PANADERIA LA K LIMITADA", [k_holder], users=[
            _seed_user(k_holder, True, True, True, None),
        ]),
        company(MARKET_COMPANY_RUT, MARKET_COMPANY_NAME, [demo], layout="market", users=[
            _seed_user(demo, True, True, True, None, folios=True, annul=True, send=True),
            _seed_user("7880442-4", False, True, False, demo, send=True),
        ]),
        company(REPRESENTED_COMPANY_RUT, REPRESENTED_COMPANY_NAME, [demo], users=[
            _seed_user(FIRM_REPRESENTATIVE_RUT, True, False, False, demo),
            _seed_user("14567890-0", False, True, True, demo),
        ]),
    ]
    # Spare companies administered by the demo holder, so tests can each use a distinct one.
    for i, rut in enumerate(
        ["76111111-6", "76222222-1", "76333333-7", "76444444-2", "76555555-8", "76666666-3"], start=1
    ):
        companies.append(company(rut, f"EMPRESA DE PRUEBA {i:02d} SPA", [demo]))
    return {
        "version": STATE_VERSION,
        "companies": {c["rut"]: c for c in companies},
        "persons": dict(SEED_PERSONS),
        "sessions": {},
        "max_concurrent_sessions_by_rut": {},
        "saves": {},
        "log": [],
    }


class StateError(Exception):
    """A state operation was refused; ``code`` says why (e.g. ``"unknown_company"``, ``"user_exists"``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Session:
    """A logged-in AUT2000 session (what the TOKEN cookie points to)."""

    token: str
    csessionid: str
    holder_rut: str
    holder_name: str
    created: float
    expires: float
    pages: int = 0
    # Confirmation keys issued by the confirmation page: key -> pending user record.
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)


class Store:
    """Thread-safe owner of the sandbox data; every mutation persists the JSON file atomically.

    ``path=None`` keeps the state in memory only.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path).resolve() if path is not None else None
        self.lock = threading.RLock()
        self.sessions: dict[str, Session] = {}
        self._login_times: dict[str, deque[float]] = {}
        self.data = self._load_or_seed()

    # -- persistence ------------------------------------------------------------------------

    def _load_or_seed(self) -> dict[str, Any]:
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("version") == STATE_VERSION:
                    return data
            except (OSError, ValueError):
                pass
            # An unreadable or old file is kept aside, never silently destroyed.
            os.replace(self.path, self.path.with_name(self.path.name + f".bad-{int(time.time())}"))
        data = seed_data()
        self._write(data)
        return data

    def _write(self, data: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Unique temp name per process+thread; rename is atomic on POSIX, so readers never see half a file.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def save(self) -> None:
        """Persist the current data (callers hold ``lock``)."""
        with self.lock:
            self._write(self.data)

    def reset(self) -> None:
        """Restore the seeded data, drop every live session and persist."""
        with self.lock:
            self.data = seed_data()
            self.sessions.clear()
            self._login_times.clear()
            self.save()

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return a deep copy of the data with ``sessions[rut]["active"]`` = live session count."""
        with self.lock:
            data = copy.deepcopy(self.data)
            data.setdefault("max_concurrent_sessions_by_rut", {})
            data.setdefault("saves", {})
            for c in data["companies"].values():
                c.setdefault("layout", DEFAULT_LAYOUT)
            now = time.time()
            for s in self.sessions.values():
                if s.expires > now:
                    entry = data["sessions"].setdefault(s.holder_rut, {"logins": 0, "logouts": 0, "last_login": None})
                    entry["active"] = entry.get("active", 0) + 1
            for entry in data["sessions"].values():
                entry.setdefault("active", 0)
            return data

    def company(self, rut: str) -> dict[str, Any] | None:
        """Return a copy of the company record, or None if unknown."""
        with self.lock:
            c = self.data["companies"].get(canonical(rut))
            return copy.deepcopy(c) if c else None

    def person_name(self, rut: str) -> str | None:
        """Return the registered name of a person RUT, or None when the registry does not know it."""
        with self.lock:
            return self.data["persons"].get(canonical(rut))

    def users(self, company_rut: str) -> list[dict[str, Any]]:
        """Return the company's authorized users sorted by RUT body, each with its ``name`` ('' if unknown)
        and all six flags (see :mod:`sii_sandbox.attributes`).

        Raises StateError("unknown_company") for a company that does not exist.
        """
        with self.lock:
            c = self.data["companies"].get(canonical(company_rut))
            if c is None:
                raise StateError("unknown_company", f"unknown company {company_rut}")
            out = []
            for u in c["users"].values():
                item = {**dict.fromkeys(KEYS, False), **u}  # records from older state files lack some flags
                item["name"] = self.data["persons"].get(u["rut"], "")
                out.append(item)
            return sorted(out, key=lambda u: int(u["rut"].split("-")[0]))

    def can_operate(self, holder_rut: str, company_rut: str) -> bool:
        """True when the person may maintain the company's users: a listed administrator
        (legal representative) or an authorized user with the administrator flag (SUP_USU)."""
        with self.lock:
            c = self.data["companies"].get(company_rut)
            if c is None:
                return False
            if holder_rut in c["admins"]:
                return True
            u = c["users"].get(holder_rut)
            return bool(u and u["admin"])

    # -- writing ----------------------------------------------------------------------------

    def add_company(
        self, rut: str, name: str, admins: list[str] | tuple[str, ...] = (), may_operate: bool = True,
        users: list[dict[str, Any]] | None = None, layout: str = DEFAULT_LAYOUT,
    ) -> dict[str, Any]:
        """Create or replace a company; ``users`` items are ``{"rut", "admin", "sign", ...}`` and/or
        ``{"rut", "attributes": {"SUP_USU": true, ...}}``; ``layout`` is "mipyme" or "market".

        Returns a copy of the stored company.
        """
        with self.lock:
            key = canonical(rut)
            company_users: dict[str, dict[str, Any]] = {}
            company: dict[str, Any] = {
                "rut": key, "name": name, "may_operate": bool(may_operate),
                "admins": [canonical(a) for a in admins], "layout": check_layout(layout), "users": company_users,
            }
            for u in users or []:
                urut = canonical(u["rut"])
                company_users[urut] = _user(urut, u.get("authorized_by"), **flags_from(u))
            self.data["companies"][key] = company
            self.save()
            return copy.deepcopy(company)

    def add_companies(self, companies: list[dict[str, Any]]) -> int:
        """Bulk version of add_company (one file write); returns how many were stored."""
        with self.lock:
            saved_path, self.path = self.path, None  # defer the write to the end
            try:
                for c in companies:
                    self.add_company(
                        c["rut"], c["name"], c.get("admins", ()), c.get("may_operate", True), c.get("users"),
                        c.get("layout", DEFAULT_LAYOUT),
                    )
            finally:
                self.path = saved_path
            self.save()
            return len(companies)

    def set_company(self, rut: str, **changes: Any) -> dict[str, Any]:
        """Change ``name``, ``may_operate``, ``admins`` or ``layout`` of an existing company; returns a copy."""
        with self.lock:
            c = self.data["companies"].get(canonical(rut))
            if c is None:
                raise StateError("unknown_company", f"unknown company {rut}")
            for k, v in changes.items():
                if k == "admins":
                    c["admins"] = [canonical(a) for a in v]
                elif k == "layout":
                    c["layout"] = check_layout(v)
                elif k == "may_operate":
                    c[k] = bool(v)
                elif k == "name":
                    c[k] = str(v)
                else:
                    raise StateError("bad_field", f"cannot change {k}")
            self.save()
            return copy.deepcopy(c)

    def add_person(self, rut: str, name: str) -> None:
        """Register (or rename) a person in the name registry."""
        with self.lock:
            self.data["persons"][canonical(rut)] = name
            self.save()

    def add_persons(self, persons: dict[str, str]) -> None:
        """Register many persons with one file write."""
        with self.lock:
            for rut, name in persons.items():
                self.data["persons"][canonical(rut)] = name
            self.save()

    def _log(self, action: str, company: str, user: dict[str, Any], by: str | None) -> None:
        """Record a write made through the enrolment pages (log entry + ``saves`` count)."""
        self.data["log"].append({
            "at": _now_iso(), "action": action, "company": company, "user": user["rut"],
            **{k: bool(user.get(k)) for k in KEYS}, "by": by,
        })
        saves = self.data.setdefault("saves", {}).setdefault(company, {})
        saves[user["rut"]] = saves.get(user["rut"], 0) + 1

    def add_user(
        self, company_rut: str, user_rut: str, *, by: str | None = None, log: bool = True, **flags: bool,
    ) -> dict[str, Any]:
        """Authorize a user in a company (``flags``: ``admin``, ``folios``, ``annul``, ``sign``,
        ``send``, ``registry``; missing ones False). ``log=False``: a change behind the pages' back
        (no log entry, no save counted). Raises StateError("user_exists") if already there."""
        with self.lock:
            crut, urut = canonical(company_rut), canonical(user_rut)
            c = self.data["companies"].get(crut)
            if c is None:
                raise StateError("unknown_company", f"unknown company {company_rut}")
            if urut in c["users"]:
                raise StateError("user_exists", f"{urut} already authorized in {crut}")
            u = _user(urut, by, **flags)
            c["users"][urut] = u
            if log:
                self._log("create", crut, u, by)
            self.save()
            return dict(u)

    def update_user(
        self, company_rut: str, user_rut: str, *, by: str | None = None, log: bool = True, **flags: bool,
    ) -> dict[str, Any]:
        """Change the given flags of an existing user; the others keep their value.

        Raises StateError("unknown_user") if absent.
        """
        with self.lock:
            crut, urut = canonical(company_rut), canonical(user_rut)
            c = self.data["companies"].get(crut)
            if c is None or urut not in c["users"]:
                raise StateError("unknown_user", f"{user_rut} is not a user of {company_rut}")
            unknown = set(flags) - set(KEYS)
            if unknown:
                raise StateError("bad_field", f"unknown flags {sorted(unknown)}")
            u = c["users"][urut]
            for k in KEYS:
                u.setdefault(k, False)
            u.update({k: bool(v) for k, v in flags.items()}, updated_at=_now_iso())
            if log:
                self._log("update", crut, u, by)
            self.save()
            return dict(u)

    def delete_user(self, company_rut: str, user_rut: str, *, by: str | None = None, log: bool = True) -> dict[str, Any]:
        """Remove a user from a company; returns the removed record."""
        with self.lock:
            crut, urut = canonical(company_rut), canonical(user_rut)
            c = self.data["companies"].get(crut)
            if c is None or urut not in c["users"]:
                raise StateError("unknown_user", f"{user_rut} is not a user of {company_rut}")
            u = c["users"].pop(urut)
            if log:
                self._log("delete", crut, u, by)
            self.save()
            return u

    # -- sessions ---------------------------------------------------------------------------

    def live_sessions(self, holder_rut: str) -> int:
        """Return how many unexpired sessions the holder has."""
        with self.lock:
            now = time.time()
            return sum(1 for s in self.sessions.values() if s.holder_rut == holder_rut and s.expires > now)

    def note_login_attempt(self, holder_rut: str, window_s: float) -> int:
        """Record a login attempt; return how many attempts the holder made within ``window_s``."""
        with self.lock:
            now = time.monotonic()
            q = self._login_times.setdefault(holder_rut, deque())
            q.append(now)
            while q and q[0] < now - window_s:
                q.popleft()
            return len(q)

    def create_session(self, holder_rut: str, holder_name: str) -> Session:
        """Open a session for the holder (counts a login) and return it."""
        with self.lock:
            now = time.time()
            # Drop expired sessions here so the dict cannot grow without bound in long benchmarks.
            for t in [t for t, s in self.sessions.items() if s.expires <= now]:
                del self.sessions[t]
            s = Session(
                token=secrets.token_hex(16).upper(), csessionid=secrets.token_urlsafe(18),
                holder_rut=holder_rut, holder_name=holder_name, created=now, expires=now + SESSION_TTL_S,
            )
            self.sessions[s.token] = s
            entry = self.data["sessions"].setdefault(holder_rut, {"logins": 0, "logouts": 0, "last_login": None})
            entry["logins"] += 1
            entry["last_login"] = _now_iso()
            # A session lasts from login to logout or expiry; expired ones were dropped just above.
            live = sum(1 for x in self.sessions.values() if x.holder_rut == holder_rut)
            peaks = self.data.setdefault("max_concurrent_sessions_by_rut", {})
            peaks[holder_rut] = max(peaks.get(holder_rut, 0), live)
            self.save()
            return s

    def get_session(self, token: str | None) -> Session | None:
        """Return the live session for a TOKEN cookie value, or None."""
        if not token:
            return None
        with self.lock:
            s = self.sessions.get(token)
            if s is None or s.expires <= time.time():
                return None
            return s

    def end_session(self, token: str | None) -> Session | None:
        """Log out: remove the session (counts a logout) and return it, or None if there was none."""
        if not token:
            return None
        with self.lock:
            s = self.sessions.pop(token, None)
            if s is not None:
                entry = self.data["sessions"].setdefault(
                    s.holder_rut, {"logins": 0, "logouts": 0, "last_login": None}
                )
                entry["logouts"] += 1
                self.save()
            return s

    def expire_sessions(self, holder_rut: str | None = None) -> int:
        """Silently expire live sessions (all, or one holder's): the next page redirects to login.

        Returns how many sessions were dropped.
        """
        with self.lock:
            doomed = [t for t, s in self.sessions.items() if holder_rut is None or s.holder_rut == holder_rut]
            for t in doomed:
                del self.sessions[t]
            return len(doomed)
