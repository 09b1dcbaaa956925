"""Configuration of the SII bot: every SII URL and the certificate origins are configuration, never constants.

``SiiSettings.from_env()`` reads ``SII_*`` environment variables (the sandbox exports the same names);
``SiiSettings.for_environment()`` gives the real SII production or certification ("maullin") presets.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "SiiSettings",
    "JOB_GRACE_SECONDS",
    "PRODUCTION_ENROLL_URL",
    "CERTIFICATION_ENROLL_URL",
    "DEFAULT_CERT_ORIGINS",
    "DEFAULT_LOGOUT_URL",
    "default_chromium_path",
]

PRODUCTION_ENROLL_URL = "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
CERTIFICATION_ENROLL_URL = "https://maullin.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
# The certificate login (zeusr entry page, herculesr mTLS) is the same for both environments.
DEFAULT_CERT_ORIGINS: tuple[str, ...] = ("https://herculesr.sii.cl",)
DEFAULT_LOGOUT_URL = "https://zeusr.sii.cl/cgi_AUT2000/autTermino.cgi"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
# Debian's `chromium-headless-shell`: the headless-only build Playwright itself uses for headless
# Chromium. Against the sandbox it needs half the CPU of the full browser per enrolment and ~180 MB
# less memory per browser (docs/performance.md).
DEBIAN_HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"

_TRUE = {"1", "true", "yes", "on", "si", "sí"}
_FALSE = {"0", "false", "no", "off", ""}


def default_chromium_path(*, headless: bool = True) -> str | None:
    """Return the system Chromium to use, or None to let Playwright use its own downloaded build.

    Headless, Debian's ``chromium-headless-shell`` comes first (lighter, and what Playwright uses for
    headless Chromium). Then Debian's ``/usr/bin/chromium`` (preferred to Playwright's own build
    because ``playwright install`` cannot download on every host); ``chromium``/``chromium-browser``
    on PATH are the next choice.
    """
    if headless and os.path.exists(DEBIAN_HEADLESS_SHELL):
        return DEBIAN_HEADLESS_SHELL
    if os.path.exists(DEBIAN_CHROMIUM):
        return DEBIAN_CHROMIUM
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _parse_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {value!r}")


def _parse_positive_float(value: str, name: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not parsed > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return parsed


def _parse_count(value: str, name: str) -> int:
    try:
        parsed = int(value.strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if parsed < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return parsed


def _parse_backoff(value: str, name: str) -> tuple[float, ...]:
    try:
        parsed = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{name} must be comma-separated seconds (e.g. 0.5,1,2), got {value!r}") from None
    if not parsed or any(p < 0 for p in parsed):
        raise ValueError(f"{name} must list non-negative seconds (e.g. 0.5,1,2), got {value!r}")
    return parsed


def _origin(url: str) -> str:
    """Return ``scheme://host[:port]`` exactly as Playwright matches client-certificate origins."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not an http(s) origin: {url!r}")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{host}{port}"


# How long a caller (``BrowserEngine``) waits beyond ``job_timeout_seconds`` before it declares a job
# stuck and cancels it: logout and context teardown happen after the budget. With it, a job ends
# (result, failure or cancellation) at most ``job_timeout_seconds + JOB_GRACE_SECONDS`` after it gets
# its browser slot; a caller that watches jobs from outside must not give up on one sooner.
JOB_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class SiiSettings:
    """Where the SII pages are and how the bot runs.

    - ``enroll_url``: the "Mantención de usuarios autorizados" entry page.
    - ``cert_origins``: every origin (scheme://host[:port]) that asks for the client certificate; the
      certificate is presented only to these.
    - ``ca_bundle``: PEM file of extra trust anchors (the sandbox's test CA); None for the real SII.
      See ``sii_bot.browser`` for exactly what it must contain.
    - ``logout_url``: visited at the end of every job, also after failures.
    - ``step_timeout_seconds`` / ``job_timeout_seconds``: per page step and for the whole job.
    - ``chromium_path``: Chromium executable, or None for Playwright's own build.
    - ``headless``: False only to watch the bot locally.
    - ``screenshots``: take PNGs of the pages that are evidence (returned to the caller, never written
      to disk): the user list as found, SII's confirmation, SII's result, and for removals the deletion
      and the list afterwards; a failure always keeps a screenshot of where it happened.
    - ``screenshot_every_step``: also one after every other step (login, company, forms...), to debug a
      page change; each one costs 50-150 ms of the job (docs/performance.md).
    - ``transient_retries`` / ``transient_backoff_seconds``: within one attempt, a page that failed
      with an HTTP 5xx or SII's generic "No ha sido posible completar su solicitud" is requested
      again up to ``transient_retries`` times, waiting the n-th backoff (the last one repeats) before
      the n-th retry. A save ("Grabar Usuario", "Guardar Cambios") is never requested again: the
      user list decides whether it went through.
    - ``resume_limit``: how many times one attempt may start over from the company step after a
      session expiry or an error on a save; ``relogin_limit``: how many of those may log in again
      (SII throttles quick re-logins, so one by default).
    - ``company_pause_seconds``: when reading several companies in one session (``read_users``), the
      wait before each company after the first, so a long run does not hammer the SII.
    """

    enroll_url: str = PRODUCTION_ENROLL_URL
    cert_origins: tuple[str, ...] = DEFAULT_CERT_ORIGINS
    ca_bundle: str | None = None
    logout_url: str = DEFAULT_LOGOUT_URL
    step_timeout_seconds: float = 30.0
    job_timeout_seconds: float = 240.0
    chromium_path: str | None = dataclasses.field(default_factory=default_chromium_path)
    headless: bool = True
    screenshots: bool = True
    screenshot_every_step: bool = False
    transient_retries: int = 3
    transient_backoff_seconds: tuple[float, ...] = (0.5, 1.0, 2.0)
    resume_limit: int = 3
    relogin_limit: int = 1
    company_pause_seconds: float = 0.0

    def __post_init__(self) -> None:
        # Normalize so that equality/hashing and Playwright origin matching are predictable.
        origins = tuple(_origin(o) for o in self.cert_origins if o.strip())
        if not origins:
            raise ValueError("cert_origins must list at least one origin")
        object.__setattr__(self, "cert_origins", origins)
        for name in ("enroll_url", "logout_url"):
            _origin(getattr(self, name))  # validates scheme and host
        if self.step_timeout_seconds <= 0 or self.job_timeout_seconds <= 0:
            raise ValueError("timeouts must be positive")
        if self.transient_retries < 0 or self.resume_limit < 0 or self.relogin_limit < 0:
            raise ValueError("transient_retries, resume_limit and relogin_limit must not be negative")
        if self.company_pause_seconds < 0:
            raise ValueError("company_pause_seconds must not be negative")
        backoff = tuple(float(b) for b in self.transient_backoff_seconds)
        if not backoff or any(b < 0 for b in backoff):
            raise ValueError("transient_backoff_seconds must list at least one non-negative number")
        object.__setattr__(self, "transient_backoff_seconds", backoff)

    def backoff_seconds(self, retry: int) -> float:
        """The wait before the ``retry``-th (1-based) in-attempt retry of a page."""
        return self.transient_backoff_seconds[min(retry, len(self.transient_backoff_seconds)) - 1]

    @property
    def is_real_sii(self) -> bool:
        """True when the enrolment page is on ``sii.cl`` (production or certification)."""
        host = urlsplit(self.enroll_url).hostname or ""
        return host == "sii.cl" or host.endswith(".sii.cl")

    @property
    def enroll_origin(self) -> str:
        """The origin of ``enroll_url``."""
        return _origin(self.enroll_url)

    def replace(self, **changes: Any) -> SiiSettings:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SiiSettings:
        """Build settings from ``SII_*`` variables (``os.environ`` by default); unset ones take defaults.

        Raises ``ValueError`` naming the variable when a value cannot be parsed.
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        if env.get("SII_ENROLL_URL", "").strip():
            kwargs["enroll_url"] = env["SII_ENROLL_URL"].strip()
        if env.get("SII_CERT_ORIGINS", "").strip():
            kwargs["cert_origins"] = tuple(o.strip() for o in env["SII_CERT_ORIGINS"].split(",") if o.strip())
        if env.get("SII_CA_BUNDLE", "").strip():
            kwargs["ca_bundle"] = env["SII_CA_BUNDLE"].strip()
        if env.get("SII_LOGOUT_URL", "").strip():
            kwargs["logout_url"] = env["SII_LOGOUT_URL"].strip()
        if env.get("SII_STEP_TIMEOUT", "").strip():
            kwargs["step_timeout_seconds"] = _parse_positive_float(env["SII_STEP_TIMEOUT"], "SII_STEP_TIMEOUT")
        if env.get("SII_JOB_TIMEOUT", "").strip():
            kwargs["job_timeout_seconds"] = _parse_positive_float(env["SII_JOB_TIMEOUT"], "SII_JOB_TIMEOUT")
        if env.get("SII_CHROMIUM_PATH", "").strip():
            kwargs["chromium_path"] = env["SII_CHROMIUM_PATH"].strip()
        for name, field_name in (("SII_TRANSIENT_RETRIES", "transient_retries"), ("SII_RESUME_LIMIT", "resume_limit"),
                                 ("SII_RELOGIN_LIMIT", "relogin_limit")):
            if env.get(name, "").strip():
                kwargs[field_name] = _parse_count(env[name], name)
        if env.get("SII_TRANSIENT_BACKOFF", "").strip():
            kwargs["transient_backoff_seconds"] = _parse_backoff(env["SII_TRANSIENT_BACKOFF"], "SII_TRANSIENT_BACKOFF")
        if "SII_HEADLESS" in env:
            kwargs["headless"] = _parse_bool(env["SII_HEADLESS"], "SII_HEADLESS")
            if not kwargs["headless"] and "chromium_path" not in kwargs:
                kwargs["chromium_path"] = default_chromium_path(headless=False)  # a window needs the full browser
        if "SII_SCREENSHOTS" in env:
            # 1/0 (evidence pages only, or none) or "all" (after every step, for debugging).
            if env["SII_SCREENSHOTS"].strip().lower() in ("all", "todos", "todas"):
                kwargs["screenshots"] = kwargs["screenshot_every_step"] = True
            else:
                kwargs["screenshots"] = _parse_bool(env["SII_SCREENSHOTS"], "SII_SCREENSHOTS")
        return cls(**kwargs)

    @classmethod
    def for_environment(
        cls, environment: Literal["production", "certification"] = "production", **overrides: Any
    ) -> SiiSettings:
        """Return the preset for the real SII: ``"production"`` (palena) or ``"certification"`` (maullin).

        The certificate login hosts (herculesr, zeusr) are the same for both; ``overrides`` change
        other fields (timeouts, chromium_path, ...).
        """
        if environment == "production":
            url = PRODUCTION_ENROLL_URL
        elif environment == "certification":
            url = CERTIFICATION_ENROLL_URL
        else:
            raise ValueError(f"unknown SII environment {environment!r} (production or certification)")
        base: dict[str, Any] = {
            "enroll_url": url,
            "cert_origins": DEFAULT_CERT_ORIGINS,
            "logout_url": DEFAULT_LOGOUT_URL,
            "ca_bundle": None,
        }
        base.update(overrides)
        return cls(**base)
