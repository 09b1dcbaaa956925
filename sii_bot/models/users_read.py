"""Reading the authorized users of several companies in one SII session: the request, each
company's users and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..rut import normalize_rut
from .records import SiiUser

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
