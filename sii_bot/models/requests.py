"""What callers hand to the bot: one request per kind of job (enrol, revoke, replace), validated
when built (RUTs canonical, a person as the user, permissions a subset of the managed ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..rut import InvalidRut, is_person_rut, normalize_rut
from .permissions import ALL_PERMISSIONS, Permission, permission_labels, permission_set


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
        permissions = permission_set(self.permissions, "Permisos solicitados")
        if not permissions:
            raise ValueError("Indique al menos un permiso: admin, sign, registry, folios, annul o send.")
        managed = permission_set(self.managed, "Permisos administrados")
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
