"""Every record type of the bot: what callers hand to it (requests, permissions), what it reports
(steps, progress events) and what it gives back (results), and what SII shows (user-list rows,
confirmation/result records, edit screens, removal messages).

Plain frozen dataclasses and enums; nothing here reads a page or drives a browser.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .rut import InvalidRut, is_person_rut, normalize_rut

__all__ = [
    "ALL_PERMISSIONS",
    "MIPYME_PERMISSIONS",
    "USER_ATTRIBUTES",
    "CompanyUsersRead",
    "EnrollmentRequest",
    "EnrollmentResult",
    "JobKind",
    "Outcome",
    "Permission",
    "PermissionBox",
    "ProgressEvent",
    "ReplacementOutcome",
    "ReplacementRequest",
    "ReplacementResult",
    "RevocationOutcome",
    "RevocationRequest",
    "RevocationResult",
    "SiiEditScreen",
    "SiiRemovalRecord",
    "SiiUser",
    "SiiUserRecord",
    "Step",
    "StepStatus",
    "UsersReadRequest",
    "UsersReadResult",
    "permission_labels",
]

Outcome = Literal["created", "updated", "already_authorized"]
RevocationOutcome = Literal["revoked", "not_present"]
ReplacementOutcome = Literal["replaced"]
StepStatus = Literal["started", "done", "failed", "skipped"]
JobKind = Literal["enroll", "revoke", "replace", "read_users"]


class Permission(enum.Enum):
    """An attribute of an authorized user, as SII's new-user and edit forms name it.

    The six of SII's market-software page, in member order ADMIN, SIGN, REGISTRY, FOLIOS, ANNUL,
    SEND (MIPYME companies see only the first three). ``field_name`` is SII's checkbox name (from its
    validation script), ``label`` the usual Spanish label, ``labels`` every label the bot accepts for
    the checkbox when its name is not a known one. The values equal the ``SiiUser`` /
    ``SiiUserRecord`` attribute names.
    """

    ADMIN = "admin"
    SIGN = "sign"
    REGISTRY = "registry"
    FOLIOS = "folios"
    ANNUL = "annul"
    SEND = "send"

    @property
    def field_name(self) -> str:
        """The checkbox name in SII's form (``SUP_USU``, ``FIRMAR``, ``CONSULTAR``, ``OBTENER``, ``ANULAR``, ``ENVIAR``)."""
        return _FIELDS[self]

    @property
    def label(self) -> str:
        """The Spanish label SII shows next to the checkbox (REGISTRY: "Registro", as on MIPYME pages)."""
        return _LABELS[self][0]

    @property
    def labels(self) -> tuple[str, ...]:
        """Every visible label SII is known (or likely) to use for this attribute, most specific first."""
        return _LABELS[self]

    @classmethod
    def from_field(cls, name: str) -> Permission | None:
        """The attribute whose SII field name is ``name`` (any case), else None."""
        return _BY_FIELD.get(name.strip().upper())

    @classmethod
    def parse_list(cls, text: str | Iterable[str]) -> frozenset[Permission]:
        """Parse ``"admin,sign,registry"`` (or an iterable of names) into a frozenset.

        Accepts the enum values, the SII field names (``SUP_USU``, ``FIRMAR``, ``CONSULTAR``,
        ``OBTENER``, ``ANULAR``, ``ENVIAR``) and the Spanish labels, in any case. Raises ``ValueError``
        (Spanish message) for unknown names or an empty list.
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
                    f"Permiso desconocido: «{name}». Use admin, sign, registry, folios, annul o send "
                    "(Usuario Administrador, Firmar Documentos, Registro, Solicitar Folios, Anular "
                    "Documentos, Enviar Documentos)."
                )
            found.add(permission)
        if not found:
            raise ValueError("Indique al menos un permiso: admin, sign, registry, folios, annul o send.")
        return frozenset(found)


_FIELDS = {
    Permission.ADMIN: "SUP_USU",
    Permission.SIGN: "FIRMAR",
    Permission.REGISTRY: "CONSULTAR",
    Permission.FOLIOS: "OBTENER",
    Permission.ANNUL: "ANULAR",
    Permission.SEND: "ENVIAR",
}
_BY_FIELD = {field_name: permission for permission, field_name in _FIELDS.items()}
# Labels: the guide's MIPYME page ("Registro"), third-party guides for market software ("Consulta",
# "Anular Documentos"), SII's 2009 manual ("Anular Folios", "Firmar Doctos", "Enviar Doctos").
_LABELS: dict[Permission, tuple[str, ...]] = {
    Permission.ADMIN: ("Usuario Administrador", "Usuario-Administrador", "Administrador"),
    Permission.SIGN: ("Firmar Documentos", "Firmar Doctos", "Firma Documentos", "Firmar"),
    Permission.REGISTRY: ("Registro", "Consulta/Registro", "Consulta / Registro", "Registro/Consulta", "Consulta",
                          "Consultar Documentos", "Consultar"),
    Permission.FOLIOS: ("Solicitar Folios", "Obtener Folios", "Solicitud de Folios"),
    Permission.ANNUL: ("Anular Documentos", "Anular Folios", "Anular Doctos", "Anular"),
    Permission.SEND: ("Enviar Documentos", "Enviar Doctos", "Envío de Documentos", "Enviar"),
}
_ALIASES: dict[str, Permission] = {}
for _p in Permission:
    for _alias in (_p.value, _FIELDS[_p], *_LABELS[_p]):
        _ALIASES[_alias.casefold()] = _p
_ALIASES.update({"firmar": Permission.SIGN, "consultar": Permission.REGISTRY, "folios": Permission.FOLIOS})

ALL_PERMISSIONS: frozenset[Permission] = frozenset(Permission)
"""The six attributes: what a firm manages unless it says otherwise."""

MIPYME_PERMISSIONS: frozenset[Permission] = frozenset({Permission.ADMIN, Permission.SIGN, Permission.REGISTRY})
"""The three attributes SII's MIPYME page offers."""


def permission_labels(permissions: Iterable[Permission]) -> str:
    """``"Usuario Administrador, Firmar Documentos"``: the labels, in ``Permission`` order."""
    chosen = set(permissions)
    return ", ".join(p.label for p in Permission if p in chosen)


def _permission_set(value: Any, what: str) -> frozenset[Permission]:
    if isinstance(value, str):
        return Permission.parse_list(value)
    try:
        return frozenset(p if isinstance(p, Permission) else Permission(p) for p in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: use admin, sign, registry, folios, annul o send.") from None


@dataclass(frozen=True)
class EnrollmentRequest:
    """Authorize ``user_rut`` in company ``company_rut`` with exactly ``permissions`` among ``managed``.

    ``managed``: the attributes the firm manages (default all six). The bot sets each managed
    attribute the page offers to "requested or not" and never touches the others (an existing
    user keeps them as they were; a new user gets them unticked). ``permissions`` must be a
    non-empty subset of ``managed``. A requested attribute the company's page does not offer
    (MIPYME pages show three) is reported in ``EnrollmentResult.unavailable_permissions``; the job
    fails (``PermissionsUnavailable``) only when none of the requested ones is offered.

    RUTs are normalized on construction (dots, lower-case k accepted); the user must be a natural
    person. Raises ``ValueError`` (``InvalidRut`` for RUTs) with a Spanish message otherwise.
    """

    company_rut: str
    user_rut: str
    permissions: frozenset[Permission]
    managed: frozenset[Permission] = ALL_PERMISSIONS

    def __post_init__(self) -> None:
        object.__setattr__(self, "company_rut", normalize_rut(self.company_rut))
        user = normalize_rut(self.user_rut)
        if not is_person_rut(user):
            raise InvalidRut("El usuario a autorizar debe ser una persona natural (RUT menor a 50.000.000).", user)
        object.__setattr__(self, "user_rut", user)
        permissions = _permission_set(self.permissions, "Permisos solicitados")
        if not permissions:
            raise ValueError("Indique al menos un permiso: admin, sign, registry, folios, annul o send.")
        managed = _permission_set(self.managed, "Permisos administrados")
        if not permissions <= managed:
            raise ValueError(
                f"Se solicitan permisos que la oficina no administra: {permission_labels(permissions - managed)}."
            )
        object.__setattr__(self, "permissions", permissions)
        object.__setattr__(self, "managed", managed)

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
        """Whether "Registro" / "Consulta" (CONSULTAR) is requested."""
        return Permission.REGISTRY in self.permissions

    @property
    def folios(self) -> bool:
        """Whether "Solicitar Folios" (OBTENER) is requested."""
        return Permission.FOLIOS in self.permissions

    @property
    def annul(self) -> bool:
        """Whether "Anular Documentos" (ANULAR) is requested."""
        return Permission.ANNUL in self.permissions

    @property
    def send(self) -> bool:
        """Whether "Enviar Documentos" (ENVIAR) is requested."""
        return Permission.SEND in self.permissions

    def flags(self) -> dict[str, bool]:
        """``{"admin": bool, "sign": bool, "registry": bool, "folios": bool, "annul": bool, "send": bool}``."""
        return {p.value: p in self.permissions for p in Permission}

    def wanted(self) -> dict[Permission, bool]:
        """``{managed attribute: requested?}``: the state the bot sets for every managed attribute offered."""
        return {p: p in self.permissions for p in Permission if p in self.managed}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: RUTs and the sorted permission values (requested and managed)."""
        return {
            "company_rut": self.company_rut,
            "user_rut": self.user_rut,
            "permissions": sorted(p.value for p in self.permissions),
            "managed": sorted(p.value for p in self.managed),
        }


def _person(rut: str, what: str) -> str:
    canonical = normalize_rut(rut)
    if not is_person_rut(canonical):
        raise InvalidRut(f"{what} debe ser una persona natural (RUT menor a 50.000.000).", canonical)
    return canonical


@dataclass(frozen=True)
class RevocationRequest:
    """Remove ``user_rut`` from the authorized users of company ``company_rut``.

    RUTs are normalized on construction; the user must be a natural person (SII's list only holds
    people). Raises ``InvalidRut`` (a ``ValueError``) with a Spanish message otherwise.
    """

    company_rut: str
    user_rut: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "company_rut", normalize_rut(self.company_rut))
        object.__setattr__(self, "user_rut", _person(self.user_rut, "El usuario a eliminar"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"company_rut": self.company_rut, "user_rut": self.user_rut}


@dataclass(frozen=True)
class ReplacementRequest:
    """In company ``company_rut``, authorize ``new_user_rut`` with ``permissions``, then remove ``old_user_rut``.

    One job, one SII session, always in that order: the company is never left with neither. RUTs are
    normalized; both users must be natural persons and different; at least one permission is needed.
    """

    company_rut: str
    new_user_rut: str
    old_user_rut: str
    permissions: frozenset[Permission]
    managed: frozenset[Permission] = ALL_PERMISSIONS

    def __post_init__(self) -> None:
        addition = EnrollmentRequest(self.company_rut, self.new_user_rut, self.permissions, self.managed)
        object.__setattr__(self, "company_rut", addition.company_rut)
        object.__setattr__(self, "new_user_rut", addition.user_rut)
        object.__setattr__(self, "permissions", addition.permissions)
        object.__setattr__(self, "managed", addition.managed)
        old = _person(self.old_user_rut, "El usuario a reemplazar")
        if old == addition.user_rut:
            raise ValueError("El nuevo representante y el anterior no pueden ser la misma persona.")
        object.__setattr__(self, "old_user_rut", old)

    @property
    def addition(self) -> EnrollmentRequest:
        """The first part: authorize the new representative (an ordinary enrolment)."""
        return EnrollmentRequest(self.company_rut, self.new_user_rut, self.permissions, self.managed)

    @property
    def removal(self) -> RevocationRequest:
        """The second part: remove the old representative."""
        return RevocationRequest(self.company_rut, self.old_user_rut)

    def flags(self) -> dict[str, bool]:
        """``EnrollmentRequest.flags()`` of the new representative (the six attributes)."""
        return self.addition.flags()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "company_rut": self.company_rut,
            "new_user_rut": self.new_user_rut,
            "old_user_rut": self.old_user_rut,
            "permissions": sorted(p.value for p in self.permissions),
            "managed": sorted(p.value for p in self.managed),
        }


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


# ---------------------------------------------------------------------------------------------------
# What SII shows (read by ``sii_bot.screens``)


@dataclass(frozen=True)
class SiiUser:
    """One row of the company's authorized-user list.

    Attributes, as SII's columns name them: ``admin`` Usuario Administrador (SUP_USU), ``sign``
    Firmar Documentos (FIRMAR), ``registry`` Registro / Consulta (CONSULTAR), and on market-software
    companies also ``folios`` Solicitar Folios (OBTENER), ``annul`` Anular Documentos (ANULAR),
    ``send`` Enviar Documentos (ENVIAR). A flag is ``None`` when the list does not show it.
    """

    rut: str
    name: str
    admin: bool | None = None
    sign: bool | None = None
    registry: bool | None = None
    folios: bool | None = None
    annul: bool | None = None
    send: bool | None = None

    def flag(self, permission: Permission) -> bool | None:
        """The list's SI/NO for ``permission``; None when the list does not show it."""
        return getattr(self, permission.value)

    def shown(self) -> frozenset[Permission]:
        """The attributes the list shows (a column, SI or NO)."""
        return frozenset(p for p in Permission if self.flag(p) is not None)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class SiiUserRecord:
    """What SII shows on the confirmation or result page for one authorized user.

    Every attribute row the page shows: ``admin``/``sign``/``registry`` (on every known page) and,
    on market-software pages, ``folios``/``annul``/``send`` (None when the page has no such row).
    """

    company_name: str
    company_rut: str
    user_rut: str
    user_name: str
    admin: bool
    sign: bool
    registry: bool
    authorized_by: str
    folios: bool | None = None
    annul: bool | None = None
    send: bool | None = None

    def flag(self, permission: Permission) -> bool | None:
        """The page's SI/NO for ``permission``; None when the page has no such row."""
        return getattr(self, permission.value)

    def granted(self) -> frozenset[Permission]:
        """The attributes shown as SI."""
        return frozenset(p for p in Permission if self.flag(p))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (for the job record and the audit log)."""
        return asdict(self)


@dataclass(frozen=True)
class SiiRemovalRecord:
    """What SII's elimination page says: "Se ha eliminado satisfactoriamente el usuario <RUT> de la
    empresa <NAME>, Rut <RUT>." Fields SII does not show are ""."""

    company_name: str
    company_rut: str
    user_rut: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class PermissionBox:
    """One attribute checkbox of SII's new-user form or edit screen, as the page shows it.

    ``name``/``value``: the input's own (how the bot finds it again; ``name`` may be one the bot
    does not know when the checkbox was recognised by its ``label``). ``by``: "name" (an SII field
    name, ``SUP_USU``...), "value" (the value is one) or "label" (the visible label matched).
    ``checked``: its state as the page was loaded.
    """

    permission: Permission
    name: str
    value: str
    label: str
    checked: bool
    by: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {**asdict(self), "permission": self.permission.value}


@dataclass(frozen=True)
class SiiEditScreen:
    """The edit screen of one authorized user, as shown (before anything is changed).

    ``user_ruts``: the person RUTs the screen names as *the* user (labelled "Rut Usuario" or in the
    form's ``RUT_USU``/``DV_USU`` fields); ``company_ruts``: every company RUT on the page (header,
    sentence, ``RUT_EMP``/``DV_EMP`` fields). A screen that shows exactly one of each, equal to the
    request, is the right one. Flags are ``None`` when the screen has no such checkbox.
    ``delete_kind``: "checkbox" (tick it, then "Guardar Cambios"), "button" (a control of its own) or
    None (no delete option); ``delete_name`` is the checkbox name or the control's label.
    """

    company_name: str
    company_ruts: tuple[str, ...]
    user_ruts: tuple[str, ...]
    user_name: str
    admin: bool | None
    sign: bool | None
    registry: bool | None
    delete_kind: str | None
    delete_name: str
    has_save: bool
    folios: bool | None = None
    annul: bool | None = None
    send: bool | None = None
    boxes: tuple[PermissionBox, ...] = ()

    def flag(self, permission: Permission) -> bool | None:
        """Whether ``permission``'s checkbox is ticked; None when the screen has no such checkbox."""
        return getattr(self, permission.value)

    @property
    def offered(self) -> frozenset[Permission]:
        """The attributes the screen has a checkbox for."""
        return frozenset(box.permission for box in self.boxes)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        data = asdict(self)
        data["boxes"] = [box.to_dict() for box in self.boxes]
        return data


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


@dataclass(frozen=True, repr=False)
class EnrollmentResult:
    """A finished enrolment.

    ``outcome``: "created" (new user saved), "updated" (existing user's managed attributes changed
    through "Modificar" / "Guardar Cambios", then seen on the user list) or "already_authorized" (the
    user already had exactly the requested managed attributes; nothing was saved).
    ``record``: what SII showed for the user (result page; the user list or edit screen when nothing
    was saved). ``offered_permissions``: the attributes the company's page offers (its checkboxes;
    the list's columns when the list alone decided). ``unavailable_permissions``: requested ones the
    page does not offer (e.g. Enviar Documentos on a MIPYME company): reported, never set.
    ``previous``: the user's list entry before the change (None for a new user); ``final_entry``: the
    user's list entry read after an update (None when no list was read after the save).
    ``screenshots``: ``(step value, PNG)`` pairs; ``duration_seconds``: wall time of the job.
    """

    outcome: Outcome
    record: SiiUserRecord
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)
    duration_seconds: float = 0.0
    offered_permissions: frozenset[Permission] = frozenset()
    unavailable_permissions: frozenset[Permission] = frozenset()
    previous: SiiUser | None = None
    final_entry: SiiUser | None = None

    def __repr__(self) -> str:
        return (
            f"EnrollmentResult(outcome={self.outcome!r}, record={self.record!r}, "
            f"unavailable_permissions={sorted(p.value for p in self.unavailable_permissions)!r}, "
            f"screenshots=<{len(self.screenshots)}>, duration_seconds={self.duration_seconds:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form without the screenshots."""
        return {
            "outcome": self.outcome,
            "record": self.record.to_dict(),
            "offered_permissions": sorted(p.value for p in self.offered_permissions),
            "unavailable_permissions": sorted(p.value for p in self.unavailable_permissions),
            "previous": self.previous.to_dict() if self.previous is not None else None,
            "final_entry": self.final_entry.to_dict() if self.final_entry is not None else None,
            "screenshot_steps": [step for step, _ in self.screenshots],
            "duration_seconds": round(self.duration_seconds, 3),
        }


def _entries_dict(entries: dict[str, SiiUser | None]) -> dict[str, Any]:
    return {rut: (user.to_dict() if user is not None else None) for rut, user in entries.items()}


@dataclass(frozen=True, repr=False)
class RevocationResult:
    """A finished revocation (or the removal part of a replacement).

    ``outcome``: "revoked" (SII deleted the user and the list, read again, no longer shows it) or
    "not_present" (the user was not in the list: nothing to do, nothing saved).
    ``removed``: the user's list entry before the deletion (None when not present).
    ``sii_result``: SII's elimination page, parsed, when it showed one (None otherwise: the list is
    the proof). ``confirm_text``: the text of the delete ``confirm()`` the bot accepted, if any.
    ``final_entries``: ``{user RUT: entry on the last list read, or None when absent}`` for the RUTs the
    job was about (here: ``{user_rut: None}``). ``screenshots``/``duration_seconds`` as in
    ``EnrollmentResult`` (empty/partial when this is the removal part of a ``ReplacementResult``).
    """

    outcome: RevocationOutcome
    company_rut: str
    user_rut: str
    company_name: str = ""
    removed: SiiUser | None = None
    sii_result: SiiRemovalRecord | None = None
    confirm_text: str | None = None
    final_entries: dict[str, SiiUser | None] = field(default_factory=dict)
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)
    duration_seconds: float = 0.0

    def __repr__(self) -> str:
        return (
            f"RevocationResult(outcome={self.outcome!r}, company_rut={self.company_rut!r}, "
            f"user_rut={self.user_rut!r}, sii_result={self.sii_result!r}, "
            f"screenshots=<{len(self.screenshots)}>, duration_seconds={self.duration_seconds:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form without the screenshots."""
        return {
            "outcome": self.outcome,
            "company_rut": self.company_rut,
            "user_rut": self.user_rut,
            "company_name": self.company_name,
            "removed": self.removed.to_dict() if self.removed else None,
            "sii_result": self.sii_result.to_dict() if self.sii_result else None,
            "confirm_text": self.confirm_text,
            "final_entries": _entries_dict(self.final_entries),
            "screenshot_steps": [step for step, _ in self.screenshots],
            "duration_seconds": round(self.duration_seconds, 3),
        }


@dataclass(frozen=True, repr=False)
class ReplacementResult:
    """A finished change of representative: the new one authorized, then the old one removed.

    ``outcome`` is always "replaced"; the parts say what was actually done:
    ``addition`` (an ``EnrollmentResult``: "created" | "updated" | "already_authorized") and
    ``removal`` (a ``RevocationResult``: "revoked" | "not_present"). ``final_entries``: the last list
    read, for both RUTs (``{new: SiiUser, old: None}``). ``screenshots`` hold the job's evidence PNGs (the
    parts carry none); ``duration_seconds`` is the whole job.
    """

    outcome: ReplacementOutcome
    addition: EnrollmentResult
    removal: RevocationResult
    final_entries: dict[str, SiiUser | None] = field(default_factory=dict)
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def add_outcome(self) -> Outcome:
        """"created" | "updated" | "already_authorized"."""
        return self.addition.outcome

    @property
    def remove_outcome(self) -> RevocationOutcome:
        """"revoked" | "not_present"."""
        return self.removal.outcome

    def __repr__(self) -> str:
        return (
            f"ReplacementResult(outcome={self.outcome!r}, add_outcome={self.add_outcome!r}, "
            f"remove_outcome={self.remove_outcome!r}, screenshots=<{len(self.screenshots)}>, "
            f"duration_seconds={self.duration_seconds:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form without the screenshots."""
        return {
            "outcome": self.outcome,
            "add_outcome": self.add_outcome,
            "remove_outcome": self.remove_outcome,
            "addition": self.addition.to_dict(),
            "removal": self.removal.to_dict(),
            "final_entries": _entries_dict(self.final_entries),
            "screenshot_steps": [step for step, _ in self.screenshots],
            "duration_seconds": round(self.duration_seconds, 3),
        }


# ---------------------------------------------------------------------------------------------------
# Reading the authorized users of several companies

# The attributes of an authorized user as ``SiiUser`` fields, in the market-software page's order,
# with the Spanish label an operator reads.
USER_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("admin", "Usuario Administrador"),
    ("folios", "Solicitar Folios"),
    ("annul", "Anular Documentos"),
    ("sign", "Firmar Documentos"),
    ("send", "Enviar Documentos"),
    ("registry", "Consulta/Registro"),
)


@dataclass(frozen=True)
class UsersReadRequest:
    """Read the authorized users of each company in ``company_ruts``, in one SII session.

    RUTs are normalized on construction (dots, lower-case k accepted); repeats are dropped, keeping
    the first occurrence's order. Raises ``ValueError`` (``InvalidRut`` for a RUT) with a Spanish
    message for an invalid RUT or an empty list.
    """

    company_ruts: tuple[str, ...]

    def __post_init__(self) -> None:
        raw = [self.company_ruts] if isinstance(self.company_ruts, str) else list(self.company_ruts)
        ruts: list[str] = []
        for item in raw:
            rut = normalize_rut(item)
            if rut not in ruts:
                ruts.append(rut)
        if not ruts:
            raise ValueError("Indique al menos una empresa.")
        object.__setattr__(self, "company_ruts", tuple(ruts))

    @property
    def company_rut(self) -> str:
        """The first company: the one the session starts with."""
        return self.company_ruts[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"company_ruts": list(self.company_ruts)}


@dataclass(frozen=True)
class CompanyUsersRead:
    """One company of a ``UsersReadResult``: its users as SII listed them, or why they could not be read.

    ``users``: the list's rows (attributes the company's page does not show are ``None``), in SII's
    order; empty when the company has none or when ``failure`` is set. ``company_name``: as the list
    page names it ("" when it did not, or on failure). ``failure``: ``None`` when the list was read,
    else the typed failure as ``EnrollmentFailure.to_dict()`` (``code``, ``user_message``, ...), either
    this company's own (e.g. "holder_not_administrator") or the session's that ended the run before or
    while reading it (e.g. "too_many_sessions"); ``sii_bot.errors.failure_from_code(failure["code"])``
    gives its class.
    """

    company_rut: str
    company_name: str = ""
    users: list[SiiUser] = field(default_factory=list)
    failure: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the company's user list was read."""
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "company_rut": self.company_rut,
            "company_name": self.company_name,
            "users": [user.to_dict() for user in self.users],
            "failure": dict(self.failure) if self.failure is not None else None,
        }


@dataclass(frozen=True, repr=False)
class UsersReadResult:
    """A finished read of several companies' authorized users, one ``CompanyUsersRead`` per requested
    company, in the request's order.

    ``logins``: SII sessions the run opened (1, or 0 when the certificate login failed: then every
    company carries the login's failure). ``screenshots``/``duration_seconds`` as in
    ``EnrollmentResult`` (one evidence PNG per list read when screenshots are enabled).
    """

    per_company: list[CompanyUsersRead]
    logins: int
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def all_read(self) -> bool:
        """True when every company's list was read."""
        return all(company.ok for company in self.per_company)

    def company(self, rut: str) -> CompanyUsersRead:
        """The entry of company ``rut`` (any RUT format); ``KeyError`` if it was not requested."""
        canonical = normalize_rut(rut)
        for company in self.per_company:
            if company.company_rut == canonical:
                return company
        raise KeyError(rut)

    def __repr__(self) -> str:
        read = sum(1 for company in self.per_company if company.ok)
        return (
            f"UsersReadResult(companies={len(self.per_company)}, read={read}, logins={self.logins}, "
            f"screenshots=<{len(self.screenshots)}>, duration_seconds={self.duration_seconds:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form without the screenshots."""
        return {
            "per_company": [company.to_dict() for company in self.per_company],
            "logins": self.logins,
            "screenshot_steps": [step for step, _ in self.screenshots],
            "duration_seconds": round(self.duration_seconds, 3),
        }
