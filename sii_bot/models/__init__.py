"""Every record type of the bot: what callers hand to it (requests, permissions), what it reports
(steps, progress events) and what it gives back (results), and what SII shows (user-list rows,
confirmation/result records, edit screens, removal messages).

Plain frozen dataclasses and enums; nothing here reads a page or drives a browser. One module per
concern: `permissions`, `requests`, `steps` (steps and progress events), `records` (what SII shows),
`results`, `users_read` (reading several companies' users); import them from here.
"""

from __future__ import annotations

from .permissions import ALL_PERMISSIONS, MIPYME_PERMISSIONS, Permission, permission_labels, permission_set
from .records import PermissionBox, SiiEditScreen, SiiRemovalRecord, SiiUser, SiiUserRecord
from .requests import EnrollmentRequest, ReplacementRequest, RevocationRequest
from .results import (
    EnrollmentResult,
    Outcome,
    ReplacementOutcome,
    ReplacementResult,
    RevocationOutcome,
    RevocationResult,
)
from .steps import JobKind, ProgressEvent, Step, StepStatus
from .users_read import USER_ATTRIBUTES, CompanyUsersRead, UsersReadRequest, UsersReadResult

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
    "permission_set",
]
