"""What the bot reports while it works: the steps of each kind of job (``Step``, ``Step.flow``) and
the progress events (``ProgressEvent``) its caller receives."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

JobKind = Literal["enroll", "revoke", "replace", "read_users"]

StepStatus = Literal["started", "done", "failed", "skipped"]

# Steps that only removals use. Iterating ``Step`` leaves them out, so that ``list(Step)`` is the ten
# steps of the enrolment guide, which the client's timeline numbers and shows.
_REMOVAL_STEP_VALUES = frozenset({"open_edit", "delete", "verify"})


class _StepType(enum.EnumType):
    """``Step``'s metaclass: iteration and ``len`` cover the enrolment guide only (see ``Step``)."""

    def __iter__(cls):  # type: ignore[no-untyped-def]
        return (m for m in super().__iter__() if m.value not in _REMOVAL_STEP_VALUES)

    def __reversed__(cls):  # type: ignore[no-untyped-def]
        return reversed(list(cls.__iter__()))

    def __len__(cls) -> int:
        return sum(1 for _ in cls.__iter__())


class Step(enum.Enum, metaclass=_StepType):
    """The steps of SII's guide, in order; ``label`` is the Spanish text shown to the client.

    ``list(Step)`` / ``len(Step)`` are the ten steps of the enrolment guide. Revocations and replacements also use ``OPEN_EDIT``, ``DELETE`` and ``VERIFY``; they are
    ordinary members (``Step.DELETE``, ``Step("delete")``, ``Step.__members__``) but are left out of
    iteration. ``Step.flow(kind)`` gives the ordered steps of each kind of job.
    """

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
    # Removal steps (not iterated, see the class docstring).
    OPEN_EDIT = "open_edit"
    DELETE = "delete"
    VERIFY = "verify"

    @property
    def label(self) -> str:
        """Spanish label of the step."""
        return _STEP_LABELS[self]

    @property
    def number(self) -> int:
        """1-based position in the enrolment guide; for removal steps, in the revocation flow."""
        for kind in ("enroll", "revoke"):
            steps = Step.flow(kind)  # type: ignore[arg-type]
            if self in steps:
                return steps.index(self) + 1
        raise AssertionError(self)  # pragma: no cover

    def number_in(self, kind: JobKind) -> int | None:
        """1-based position in the flow of ``kind`` ("enroll" | "revoke" | "replace"), None if not in it."""
        steps = Step.flow(kind)
        return steps.index(self) + 1 if self in steps else None

    @staticmethod
    def flow(kind: JobKind) -> tuple[Step, ...]:
        """The steps a job of ``kind`` reports, in order ("enroll" | "revoke" | "replace" | "read_users")."""
        try:
            return _FLOWS[kind]
        except KeyError:
            raise ValueError(f"unknown job kind {kind!r}; use enroll, revoke, replace or read_users") from None


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
    Step.OPEN_EDIT: "Abrir la ficha del usuario",
    Step.DELETE: "Eliminar al usuario",
    Step.VERIFY: "Verificar la lista de usuarios",
}

_ENROLL_FLOW = (Step.OPEN_PAGE, Step.LOGIN, Step.COMPANY, Step.USER_LIST, Step.NEW_USER, Step.FILL_FORM,
                Step.CONFIRM, Step.SAVE, Step.RESULT, Step.LOGOUT)
_REMOVAL_TAIL = (Step.OPEN_EDIT, Step.DELETE, Step.VERIFY, Step.LOGOUT)
_FLOWS: dict[str, tuple[Step, ...]] = {
    "enroll": _ENROLL_FLOW,
    "revoke": _ENROLL_FLOW[:4] + _REMOVAL_TAIL,
    "replace": _ENROLL_FLOW[:-1] + _REMOVAL_TAIL,
    # Reading users: COMPANY and USER_LIST repeat once per company, in one session.
    "read_users": (Step.OPEN_PAGE, Step.LOGIN, Step.COMPANY, Step.USER_LIST, Step.LOGOUT),
}



@dataclass(frozen=True, repr=False)
class ProgressEvent:
    """One progress report: ``step`` reached ``status``; ``message`` is Spanish and safe to show.

    ``screenshot`` (PNG), when screenshots are enabled, accompanies "failed" events and the "done"
    events of evidence pages (or of every step with ``screenshot_every_step``); it may show personal
    data, so the caller encrypts it before storing.
    """

    step: Step
    status: StepStatus
    message: str
    screenshot: bytes | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

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
