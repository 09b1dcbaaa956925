"""What SII shows, as read by ``sii_bot.screens``: user-list rows, confirmation and result records,
the edit screen and its checkboxes, removal messages."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .permissions import Permission


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
