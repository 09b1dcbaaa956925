"""What the sandbox serves where, and what can be switched at run time.

- URL paths and step names of the three HTTPS origins (the step names are fault targets).
- :class:`Config`: the switchable behaviour (``Sandbox.configure``), validated by :func:`check_config`.
- :data:`FAULTS`: every fault's name and validator (``Sandbox.set_faults``); see ``__init__.py`` for
  what each one does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .codes import check_code
from .rut import try_canonical

ENROLL_PATH = "/cvc_cgi/dte/eu_enrola_usuarios"
CERT_ENTRY_PATH = "/AUT2000/InicioAutenticacion/IngresoCertificado.html"
PASSWORD_ENTRY_PATH = "/AUT2000/InicioAutenticacion/IngresoRutClave.html"
ERRORP_PATH = "/AUT2000/InicioAutenticacion/errorp.html"
LOGOUT_PATH = "/cgi_AUT2000/autTermino.cgi"
CERT_LOGIN_PATH = "/cgi_AUT2000/CAutInicio.cgi"
PORTAL_PATH = "/portal/"
# SII's "servicio no disponible" help page (www.sii.cl/ayudas/900.html in production).
OUTAGE_PATH = "/ayudas/900.html"

# Enrolment CGIs (palena-like). The names after eu_enrola_usuarios are the sandbox's own: SII's are
# unknown, and the bot must follow forms and button labels, never these names.
PALENA_STEPS = (
    "eu_enrola_usuarios", "eu_valida_empresa", "eu_lista_usuarios", "eu_ingresa_usuario",
    "eu_confirma_usuario", "eu_graba_usuario", "eu_modifica_usuario", "eu_actualiza_usuario",
)
ZEUS_STEPS = ("portal", "IngresoCertificado", "IngresoRutClave", "autTermino", "errorp", "clave_login", "ayudas")
HERCULES_STEPS = ("CAutInicio",)
ALL_STEPS = PALENA_STEPS + ZEUS_STEPS + HERCULES_STEPS
# What ``outage: true`` sends to the help page: every login and enrolment page (not the portal, nor
# the help page itself).
OUTAGE_STEPS = PALENA_STEPS + HERCULES_STEPS + (
    "IngresoCertificado", "IngresoRutClave", "autTermino", "errorp", "clave_login",
)


@dataclass
class Config:
    """Switchable behaviour (``Sandbox.configure``). Values are validated by :func:`check_config`."""

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


def check_config(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes with normalized values; ValueError names the first unknown option or bad value."""
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


def _bool_or_ruts_or_rate(v: Any) -> bool | list[str] | float:
    if isinstance(v, float) or isinstance(v, int) and not isinstance(v, bool):
        return _rate(v)
    return _bool_or_ruts(v)


def _rut_key(v: Any) -> str:
    if v == "*":
        return "*"
    rut = try_canonical(str(v))
    if rut is None:
        raise ValueError(f"invalid RUT {v!r}")
    return rut


def _per_rut_int(v: Any) -> int | dict[str, int] | None:
    """N for everybody, or ``{RUT: N}`` per holder (``"*"``: everybody else)."""
    if isinstance(v, Mapping):
        out = {_rut_key(k): _opt_int(n) for k, n in v.items()}
        return {k: n for k, n in out.items() if n is not None} or None
    return _opt_int(v)


def _login_error(v: Any) -> dict[str, dict[str, int | None]]:
    """Normalize to ``{RUT or "*": {"code": NN, "times": N or None}}``."""
    def spec(x: Any) -> dict[str, int | None]:
        if isinstance(x, Mapping):
            return {"code": check_code(x["code"]), "times": _opt_int(x.get("times"))}
        return {"code": check_code(x), "times": None}

    if isinstance(v, Mapping) and "code" not in v:
        return {_rut_key(k): spec(x) for k, x in v.items()}
    return {"*": spec(v)}


def _expired_code(v: Any) -> int:
    code = check_code(v)
    if code not in (28, 29):
        raise ValueError("session_expired_code must be 28 or 29")
    return code


def _seconds(v: Any) -> float:
    f = float(v)
    if f <= 0:
        raise ValueError("expected a number of seconds > 0")
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
    "max_sessions": _per_rut_int,
    "login_error": _login_error,
    "login_error_style": _choice("page", "alert"),
    "login_throttled": _bool,
    "throttle_logins": _opt_int,
    "throttle_window_s": lambda v: float(v),
    "session_expiry_pages": _opt_int,
    "session_expiry_steps": _steps_or_none,
    "session_expiry_count": _opt_int,
    "session_expired_code": _expired_code,
    "outage": _bool_or_steps,
    "outage_seconds": _seconds,
    "outage_pages": _opt_int,
    "error_after_save": _bool_or_ruts_or_rate,
    "error_after_save_answer": _choice("generic", "http500"),
    "waf": _bool_or_steps,
    "waf_style": _choice("f5", "transaccion"),
    "generic_error": _bool_or_steps,
    "http500_rate": _rate,
    "http500_steps": _steps_or_none,
    "generic_error_rate": _rate,
    "generic_error_steps": _steps_or_none,
    "seed": lambda v: int(v),
    "alt_layout": _bool,
    "login_alert": _bool_or_text,
    "no_certificate": _bool,
}
# Accepted by set_faults for convenience; they change the configuration instead.
FAULT_CONFIG_ALIASES = ("latency_ms", "jitter_ms")


def applies(value: Any, item: str) -> bool:
    """A fault value of True applies everywhere; a list applies to the items it names."""
    if value is True:
        return True
    if isinstance(value, list):
        return item in value
    return False
