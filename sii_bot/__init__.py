"""sii_bot: authorizes a user in SII's "Mantención de usuarios autorizados" with the owner's certificate.

Django-free. Typical use (from a worker)::

    from sii_bot import EnrollmentRequest, Permission, SiiSettings, enroll, open_pkcs12

    bundle = open_pkcs12(pfx_bytes, password)                     # at upload; CertificateError if refused
    request = EnrollmentRequest("76.086.428-5", "11.111.111-1", Permission.parse_list("sign,registry"))
    result = enroll(request, bundle.material, SiiSettings.from_env(), on_progress=print)
    result.outcome  # "created" | "updated" | "already_authorized"

    # Remove a user, or change the representative (add the new one, then remove the old one):
    revoke(RevocationRequest("76.086.428-5", "11.111.111-1"), bundle.material).outcome  # "revoked" | "not_present"
    replaced = replace(ReplacementRequest("76.086.428-5", "22.222.222-2", "11.111.111-1", {Permission.ADMIN}),
                       bundle.material)
    replaced.add_outcome, replaced.remove_outcome  # ("created", "revoked"), ...

    # Read the authorized users of several companies in one SII session (nothing is saved):
    read = read_users(UsersReadRequest(["76.777.777-9", "76.086.428-5"]), bundle.material)
    [(c.company_rut, c.users, c.failure) for c in read.per_company], read.logins

Failures are ``EnrollmentFailure`` subclasses (``sii_bot.errors``) with a stable ``code``, a retry
policy and a Spanish ``user_message``.
"""

from .certificates import (
    CERTIFICATE_ERROR_CODES,
    CertificateBundle,
    CertificateError,
    CertificateMaterial,
    open_pkcs12,
)
from .engine import BrowserEngine, close_default_engine, default_engine, enroll, read_users, replace, revoke
from .errors import (
    FAILURE_CODES,
    EnrollmentFailure,
    PermissionsUnavailable,
    ReplacementIncomplete,
    failure_from_code,
)
from .models import (
    ALL_PERMISSIONS,
    MIPYME_PERMISSIONS,
    USER_ATTRIBUTES,
    CompanyUsersRead,
    EnrollmentRequest,
    EnrollmentResult,
    Permission,
    PermissionBox,
    ProgressEvent,
    ReplacementRequest,
    ReplacementResult,
    RevocationRequest,
    RevocationResult,
    SiiEditScreen,
    SiiRemovalRecord,
    SiiUser,
    SiiUserRecord,
    Step,
    UsersReadRequest,
    UsersReadResult,
)
from .rut import InvalidRut, is_person_rut, normalize_rut, split_rut
from .settings import SiiSettings

__all__ = [
    "ALL_PERMISSIONS",
    "CERTIFICATE_ERROR_CODES",
    "FAILURE_CODES",
    "MIPYME_PERMISSIONS",
    "USER_ATTRIBUTES",
    "BrowserEngine",
    "CertificateBundle",
    "CertificateError",
    "CertificateMaterial",
    "CompanyUsersRead",
    "EnrollmentFailure",
    "EnrollmentRequest",
    "EnrollmentResult",
    "InvalidRut",
    "Permission",
    "PermissionBox",
    "PermissionsUnavailable",
    "ProgressEvent",
    "ReplacementIncomplete",
    "ReplacementRequest",
    "ReplacementResult",
    "RevocationRequest",
    "RevocationResult",
    "SiiEditScreen",
    "SiiRemovalRecord",
    "SiiSettings",
    "SiiUser",
    "SiiUserRecord",
    "Step",
    "UsersReadRequest",
    "UsersReadResult",
    "close_default_engine",
    "default_engine",
    "enroll",
    "failure_from_code",
    "is_person_rut",
    "normalize_rut",
    "open_pkcs12",
    "read_users",
    "replace",
    "revoke",
    "split_rut",
]
