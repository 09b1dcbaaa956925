"""The six attributes SII lets a company grant a user (``Permission``), their field names and labels,
and the sets callers use (all six, the three of MIPYME)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any


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


def permission_set(value: Any, what: str) -> frozenset[Permission]:
    """The permissions ``value`` names (a comma-separated string, or values/``Permission`` members);
    ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, str):
        return Permission.parse_list(value)
    try:
        return frozenset(p if isinstance(p, Permission) else Permission(p) for p in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: use admin, sign, registry, folios, annul o send.") from None
