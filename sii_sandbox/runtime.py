"""The :class:`Runtime` every request handler shares: config, faults, fault RNG, store and origins."""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from .config import (
    CERT_ENTRY_PATH,
    ENROLL_PATH,
    FAULT_CONFIG_ALIASES,
    FAULTS,
    OUTAGE_PATH,
    OUTAGE_STEPS,
    PASSWORD_ENTRY_PATH,
    PORTAL_PATH,
    Config,
    applies,
    check_config,
)
from .state import Store


class Runtime:
    """Config, faults, RNG, store and URLs shared by the handlers of all origins (thread-safe)."""

    def __init__(self, store: Store, config: Config, seed: int, verbose: bool) -> None:
        self.store = store
        self.initial_config = replace(config)
        self.config = replace(config)
        self.initial_seed = seed
        self.faults: dict[str, Any] = {}
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.verbose = verbose
        # Filled by Sandbox.start: "zeus" | "hercules" | "palena" | "control" -> origin URL.
        self.origins: dict[str, str] = {}
        # Called after a change of require_client_chain (and on reset) so the TLS context follows.
        self.on_config_change: Callable[[], None] | None = None
        # time.monotonic() at which the outage ends (set with outage_seconds).
        self.outage_until: float | None = None

    # -- config / faults -------------------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Apply validated config changes; returns the whole config."""
        checked = check_config(changes)
        with self.lock:
            for k, v in checked.items():
                setattr(self.config, k, v)
            cfg = asdict(self.config)
        if "require_client_chain" in checked and self.on_config_change:
            self.on_config_change()
        return cfg

    def set_faults(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge validated faults (None/False removes one); returns all active faults."""
        cfg_changes = {k: changes[k] for k in FAULT_CONFIG_ALIASES if k in changes}
        checked: dict[str, Any] = {}
        for k, v in changes.items():
            if k in FAULT_CONFIG_ALIASES:
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
            if "outage_seconds" in checked:
                seconds = self.faults.get("outage_seconds")
                self.outage_until = time.monotonic() + seconds if seconds else None
            return copy.deepcopy(self.faults)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.outage_until = None
            self.rng = random.Random(self.initial_seed)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.outage_until = None
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

    # -- faults that count down or depend on who logs in ------------------------------------

    def _drop(self, *names: str) -> None:
        for n in names:
            self.faults.pop(n, None)

    def take_login_error(self, holder_rut: str) -> int | None:
        """The authentication code (``login_error``) this holder's login answers now, or None.

        An entry with ``times`` counts down and disappears at zero (so code 34 can happen once).
        """
        with self.lock:
            table = self.faults.get("login_error")
            if not table:
                return None
            key = holder_rut if holder_rut in table else "*" if "*" in table else None
            if key is None:
                return None
            entry = table[key]
            if entry["times"] is not None:
                entry["times"] -= 1
                if entry["times"] <= 0:
                    del table[key]
                    if not table:
                        self._drop("login_error")
            return int(entry["code"])

    def session_cap(self, holder_rut: str) -> int | None:
        """``max_sessions`` for this holder (a number for everybody or a per-RUT table)."""
        with self.lock:
            cap = self.faults.get("max_sessions")
            if isinstance(cap, dict):
                return cap.get(holder_rut, cap.get("*"))
            return cap

    def take_outage(self, step: str) -> bool:
        """True when this page must go to the outage help page (counts ``outage_pages`` down; an
        outage past ``outage_seconds`` ends itself)."""
        with self.lock:
            outage = self.faults.get("outage")
            if not outage:
                return False
            if self.outage_until is not None and time.monotonic() >= self.outage_until:
                self._drop("outage", "outage_seconds", "outage_pages")
                self.outage_until = None
                return False
            if not (outage is True and step in OUTAGE_STEPS or isinstance(outage, list) and step in outage):
                return False
            pages = self.faults.get("outage_pages")
            if pages is not None:
                if pages <= 1:
                    self._drop("outage", "outage_seconds", "outage_pages")
                    self.outage_until = None
                else:
                    self.faults["outage_pages"] = pages - 1
            return True

    def take_session_expiry(self, step: str, pages_seen: int) -> bool:
        """True when the session must die on this page (``session_expiry_pages`` / ``_steps``);
        ``session_expiry_count`` counts the deaths down and ends the fault at zero."""
        with self.lock:
            limit = self.faults.get("session_expiry_pages")
            steps = self.faults.get("session_expiry_steps")
            if not (limit is not None and pages_seen > limit or steps and step in steps):
                return False
            count = self.faults.get("session_expiry_count")
            if count is not None:
                if count <= 1:
                    self._drop("session_expiry_pages", "session_expiry_steps", "session_expiry_count")
                else:
                    self.faults["session_expiry_count"] = count - 1
            return True

    def error_after_save(self, company_rut: str) -> bool:
        """True when this save must answer an error page after it was written (``error_after_save``)."""
        with self.lock:
            value = self.faults.get("error_after_save")
            if isinstance(value, float):
                return self.rng.random() < value
            return applies(value, company_rut)

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

    @property
    def outage_url(self) -> str:
        return self.origins["zeus"] + OUTAGE_PATH

    def login_redirect(self, target: str) -> str:
        """Where a session-less enrolment page sends the browser (raw target as the whole query)."""
        path = PASSWORD_ENTRY_PATH if self.cfg().login_entry == "password" else CERT_ENTRY_PATH
        return f"{self.origins['zeus']}{path}?{target}"
