"""What the bot gives back when a job of each kind ends (enrol, revoke, replace): the outcome and
what SII showed before and after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .permissions import Permission
from .records import SiiRemovalRecord, SiiUser, SiiUserRecord

Outcome = Literal["created", "updated", "already_authorized"]
RevocationOutcome = Literal["revoked", "not_present"]
ReplacementOutcome = Literal["replaced"]


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
