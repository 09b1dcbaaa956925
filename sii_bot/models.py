"""What callers hand to the bot and what they get back: requests, permissions, steps, progress, results."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .pages import SiiUserRecord
from .rut import InvalidRut, is_person_rut, normalize_rut

__all__ = ["Permission", "EnrollmentRequest", "Step", "ProgressEvent", "EnrollmentResult", "Outcome", "StepStatus"]

Outcome = Literal["created", "updated", "already_authorized"]
StepStatus = Literal["started", "done", "failed", "skipped"]


class Permission(enum.Enum):
    """A permission of an authorized user, as SII's new-user form names it."""

    ADMIN = "admin"
    SIGN = "sign"
    REGISTRY = "registry"

    @property
    def field_name(self) -> str:
        """The checkbox name in SII's form (``SUP_USU``, ``FIRMAR``, ``CONSULTAR``)."""
        return _FIELDS[self]

    @property
    def label(self) -> str:
        """The Spanish label SII shows next to the checkbox."""
        return _LABELS[self]

    @classmethod
    def parse_list(cls, text: str | Iterable[str]) -> frozenset[Permission]:
        """Parse ``"admin,sign,registry"`` (or an iterable of names) into a frozenset.

        Accepts the enum values, the SII field names (``SUP_USU``, ``FIRMAR``, ``CONSULTAR``) and the
        Spanish labels, in any case. Raises ``ValueError`` (Spanish message) for unknown names or an
        empty list.
        """
        items = text.split(",") if isinstance(text, str) else list(text)
        found: set[Permission] = set()
        for raw in items:
            name = str(raw).strip()
            if not name:
                continue
            permission = _ALIASES.get(name.casefold())
            if permission is None:
                raise ValueError(
                    f"Permiso desconocido: «{name}». Use admin, sign o registry "
                    "(Usuario Administrador, Firmar Documentos, Registro)."
                )
            found.add(permission)
        if not found:
            raise ValueError("Indique al menos un permiso: admin, sign o registry.")
        return frozenset(found)


_FIELDS = {Permission.ADMIN: "SUP_USU", Permission.SIGN: "FIRMAR", Permission.REGISTRY: "CONSULTAR"}
_LABELS = {
    Permission.ADMIN: "Usuario Administrador",
    Permission.SIGN: "Firmar Documentos",
    Permission.REGISTRY: "Registro",
}
_ALIASES: dict[str, Permission] = {}
for _p in Permission:
    for _alias in (_p.value, _FIELDS[_p], _LABELS[_p]):
        _ALIASES[_alias.casefold()] = _p
_ALIASES.update({"administrador": Permission.ADMIN, "firmar": Permission.SIGN, "consultar": Permission.REGISTRY})


@dataclass(frozen=True)
class EnrollmentRequest:
    """Authorize ``user_rut`` in company ``company_rut`` with exactly ``permissions``.

    RUTs are normalized on construction (dots, lower-case k accepted); the user must be a natural
    person and at least one permission is required. Raises ``ValueError`` (``InvalidRut`` for RUTs)
    with a Spanish message otherwise.
    """

    company_rut: str
    user_rut: str
    permissions: frozenset[Permission]

    def __post_init__(self) -> None:
        object.__setattr__(self, "company_rut", normalize_rut(self.company_rut))
        user = normalize_rut(self.user_rut)
        if not is_person_rut(user):
            raise InvalidRut("El usuario a autorizar debe ser una persona natural (RUT menor a 50.000.000).", user)
        object.__setattr__(self, "user_rut", user)
        permissions = self.permissions
        if isinstance(permissions, str):
            permissions = Permission.parse_list(permissions)
        permissions = frozenset(Permission(p) if not isinstance(p, Permission) else p for p in permissions)
        if not permissions:
            raise ValueError("Indique al menos un permiso: admin, sign o registry.")
        object.__setattr__(self, "permissions", permissions)

    @property
    def admin(self) -> bool:
        """Whether "Usuario Administrador" (SUP_USU) is requested."""
        return Permission.ADMIN in self.permissions

    @property
    def sign(self) -> bool:
        """Whether "Firmar Documentos" (FIRMAR) is requested."""
        return Permission.SIGN in self.permissions

    @property
    def registry(self) -> bool:
        """Whether "Registro" (CONSULTAR) is requested."""
        return Permission.REGISTRY in self.permissions

    def flags(self) -> dict[str, bool]:
        """``{"admin": bool, "sign": bool, "registry": bool}``."""
        return {"admin": self.admin, "sign": self.sign, "registry": self.registry}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: RUTs and the sorted permission values."""
        return {
            "company_rut": self.company_rut,
            "user_rut": self.user_rut,
            "permissions": sorted(p.value for p in self.permissions),
        }


class Step(enum.Enum):
    """The steps of SII's guide, in order; ``label`` is the Spanish text shown to the client."""

    OPEN_PAGE = "open_page"
    LOGIN = "login"
    COMPANY = "company"
    USER_LIST = "user_list"
    NEW_USER = "new_user"
    FILL_FORM = "fill_form"
    CONFIRM = "confirm"
    SAVE = "save"
    RESULT = "result"
    LOGOUT = "logout"

    @property
    def label(self) -> str:
        """Spanish label of the step."""
        return _STEP_LABELS[self]

    @property
    def number(self) -> int:
        """1-based position in the guide."""
        return list(Step).index(self) + 1


_STEP_LABELS = {
    Step.OPEN_PAGE: "Abrir Mantención de usuarios autorizados",
    Step.LOGIN: "Identificarse con el certificado digital",
    Step.COMPANY: "Ingresar el RUT de la empresa",
    Step.USER_LIST: "Revisar los usuarios autorizados",
    Step.NEW_USER: "Ingresar Nuevo Usuario",
    Step.FILL_FORM: "Ingresar el RUT del usuario y sus permisos",
    Step.CONFIRM: "Revisar la confirmación",
    Step.SAVE: "Grabar Usuario",
    Step.RESULT: "Leer el resultado",
    Step.LOGOUT: "Cerrar la sesión",
}


@dataclass(frozen=True, repr=False)
class ProgressEvent:
    """One progress report: ``step`` reached ``status``; ``message`` is Spanish and safe to show.

    ``screenshot`` (PNG) accompanies "done"/"failed" events when screenshots are enabled; it may show
    personal data, so the caller encrypts it before storing.
    """

    step: Step
    status: StepStatus
    message: str
    screenshot: bytes | None = None
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __repr__(self) -> str:
        shot = f"<{len(self.screenshot)} bytes>" if self.screenshot else None
        return (
            f"ProgressEvent(step={self.step.value!r}, status={self.status!r}, message={self.message!r}, "
            f"screenshot={shot}, at={self.at.isoformat()})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form without the screenshot."""
        return {
            "step": self.step.value,
            "step_label": self.step.label,
            "status": self.status,
            "message": self.message,
            "at": self.at.isoformat(),
            "has_screenshot": self.screenshot is not None,
        }


@dataclass(frozen=True, repr=False)
class EnrollmentResult:
    """A finished enrolment.

    ``outcome``: "created" (new user saved), "updated" (existing user's permissions changed) or
    "already_authorized" (the user already had exactly these permissions; nothing was saved).
    ``record``: what SII showed for the user (result page, or the user list when nothing was saved).
    ``screenshots``: ``(step value, PNG)`` pairs; ``duration_seconds``: wall time of the job.
    """

    outcome: Outcome
    record: SiiUserRecord
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)
    duration_seconds: float = 0.0

    def __repr__(self) -> str:
        return (
            f"EnrollmentResult(outcome={self.outcome!r}, record={self.record!r}, "
            f"screenshots=<{len(self.screenshots)}>, duration_seconds={self.duration_seconds:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form without the screenshots."""
        return {
            "outcome": self.outcome,
            "record": self.record.to_dict(),
            "screenshot_steps": [step for step, _ in self.screenshots],
            "duration_seconds": round(self.duration_seconds, 3),
        }
