"""The :class:`Runtime` every request handler shares: config, faults, fault RNG, store and origins."""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from .config import (
    CERT_ENTRY_PATH,
    ENROLL_PATH,
    FAULT_CONFIG_ALIASES,
    FAULTS,
    PASSWORD_ENTRY_PATH,
    PORTAL_PATH,
    Config,
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
