"""Rules that both the reads (selectors) and the writes (services) apply, written once: what change a
client's SII account needs now, which certificate may still be used, who the firm's representative is,
which permissions it requests, and what an invitation link carries.

They import only the models and `sii_bot` (plain Python) and never write; some read the database.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.db.models import QuerySet

from onboarding.models import (
    Certificate,
    ClientCompany,
    EnrollmentJob,
    JobKind,
    JobStatus,
    Permission,
    Relationship,
    Representative,
    Tenant,
)
from sii_bot.errors import FAILURE_CODES, CertificateRejected, CompanyNotAuthorized, ReplacementIncomplete

__all__ = [
    "CERTIFICATE_FAILURE_CODES",
    "CLAIM_LOST_CODE",
    "HOLDER_FAILURE_CODES",
    "INVITATION_SALT",
    "NEEDS_PERSON_CODES",
    "SII_REJECTED_CERTIFICATE_CODES",
    "PendingChange",
    "certificate_is_usable",
    "certificates_usable",
    "company_permissions",
    "company_permissions_stale",
    "company_requested_permissions",
    "invitation_id_from_token",
    "invitation_token",
    "job_needs_person",
    "pending_change",
    "permission_flags",
    "representative_active",
    "representative_for_rut",
    "requested_permissions",
    "sii_user_name",
]


# --- The firm's representative and permissions ------------------------------------------------------


def representative_active(tenant: Tenant) -> Representative | None:
    """The representative a new job authorizes: the firm's oldest active one, or None."""
    return tenant.representatives.filter(is_active=True).order_by("created_at").first()


def representative_for_rut(*, tenant: Tenant, rut: str) -> Representative | None:
    """The firm's representative (active or not) with this canonical RUT; None for an empty RUT or none."""
    return Representative.objects.filter(tenant=tenant, rut=rut).first() if rut else None


def requested_permissions(tenant: Tenant) -> tuple[str, ...]:
    """The `Permission` codes the firm requests of its clients by default, in the SII's order."""
    return tuple(str(code) for code in Permission if code in tenant.permissions)


def company_permissions(company: ClientCompany) -> frozenset[str]:
    """The `Permission` codes requested in `company`: the firm's choice for this client when it made
    one (`ClientCompany.requested_permissions`), else the firm's setting. Unknown codes are ignored."""
    override = company.requested_permissions
    if override is None:
        return company.tenant.permissions
    return frozenset(str(code) for code in Permission.values if code in override)


def company_requested_permissions(company: ClientCompany) -> tuple[str, ...]:
    """`company_permissions` in the SII's order (admin, sign, registry, folios, annul, send)."""
    wanted = company_permissions(company)
    return tuple(str(code) for code in Permission.values if code in wanted)


def company_permissions_stale(company: ClientCompany) -> bool:
    """Whether what the SII holds in `company` differs from what is requested there now. Requested
    attributes the company's SII page did not offer (`sii_unavailable`) cannot be held: ignored."""
    unavailable = set(company.sii_unavailable or ())
    return company.sii_permissions - unavailable != company_permissions(company) - unavailable


def permission_flags(*, prefix: str, codes: frozenset[str]) -> dict[str, bool]:
    """{"<prefix><code>": code in codes} for the six `Permission` codes: the boolean columns of a
    tenant, a job (prefix "grant_") or a company's SII state ("sii_")."""
    return {f"{prefix}{code}": code in codes for code in Permission.values}


def sii_user_name(company: ClientCompany) -> str:
    """The name of whoever the SII holds for the firm in `company`: the representative row with that
    RUT, else the name the last job for that RUT carried, else the RUT itself."""
    representative = representative_for_rut(tenant=company.tenant, rut=company.sii_user_rut)
    if representative is not None:
        return representative.name
    job = EnrollmentJob.objects.filter(company=company, user_rut=company.sii_user_rut).order_by("-created_at").first()
    return job.user_name if job is not None else company.sii_user_rut


# --- What a company's SII account needs now -----------------------------------------------------------


@dataclass(frozen=True)
class PendingChange:
    """The job a company needs now: its `kind` (a `JobKind`), the representative it adds (AUTHORIZE,
    REPLACE) or removes (REVOKE; None when the firm has nobody active and the SII's holder is unknown
    to it), and for REPLACE whom it removes (`old_user_rut`, `old_user_name`)."""

    kind: str
    representative: Representative | None
    old_user_rut: str = ""
    old_user_name: str = ""


def pending_change(company: ClientCompany) -> PendingChange:
    """What a job for `company` must do now.

    An ENDING relationship → REVOKE of whoever the SII holds; the SII holds someone other than the
    firm's active representative → REPLACE; a replacement that added the new representative but
    failed to remove the previous one → REPLACE again (finishing it); else AUTHORIZE (add, or update
    the permissions).
    """
    tenant = company.tenant
    current = representative_active(tenant)
    if company.relationship == Relationship.ENDING and company.sii_user_rut:
        holder = representative_for_rut(tenant=tenant, rut=company.sii_user_rut)
        return PendingChange(kind=JobKind.REVOKE, representative=holder or current)
    if company.sii_user_rut and current is not None and company.sii_user_rut != current.rut:
        return PendingChange(
            kind=JobKind.REPLACE,
            representative=current,
            old_user_rut=company.sii_user_rut,
            old_user_name=sii_user_name(company),
        )
    # The company row already holds the new representative; only the failed job remembers the old one.
    latest = EnrollmentJob.objects.filter(company=company).order_by("-attempt").first()
    if (
        latest is not None
        and latest.kind == JobKind.REPLACE
        and latest.status == JobStatus.FAILED
        and latest.failure_code == ReplacementIncomplete.code
        and current is not None
        and latest.user_rut == current.rut
    ):
        return PendingChange(
            kind=JobKind.REPLACE,
            representative=current,
            old_user_rut=latest.old_user_rut,
            old_user_name=latest.old_user_name,
        )
    return PendingChange(kind=JobKind.AUTHORIZE, representative=current)


# --- Certificates -------------------------------------------------------------------------------------


def certificate_is_usable(certificate: Certificate, *, now: datetime) -> bool:
    """True when a job may still use `certificate` at `now`: its sealed key material is stored (not
    destroyed) and it has not expired. (`Certificate.is_usable` answers only the first half.)"""
    return certificate.destroyed_at is None and certificate.sealed_material is not None and certificate.not_after > now


def certificates_usable(queryset: QuerySet[Certificate], *, now: datetime) -> QuerySet[Certificate]:
    """`queryset` narrowed to the certificates `certificate_is_usable` accepts at `now` (the same rule,
    as a filter)."""
    return queryset.filter(destroyed_at__isnull=True, sealed_material__isnull=False, not_after__gt=now)


# The failures where the SII refused the certificate itself (rejected, revoked …35, expired …36, issuer
# not accepted …37, refused twice …38): a job that fails so erases its certificate, since offering it
# again could only fail the same way.
SII_REJECTED_CERTIFICATE_CODES = frozenset(
    code for code, failure in FAILURE_CODES.items() if issubclass(failure, CertificateRejected)
)
# Failure codes that mean "this certificate will not do": the fix is another certificate.
CERTIFICATE_FAILURE_CODES = (
    frozenset({"certificate_missing", "certificate_unreadable", "expired", "not_yet_valid"})
    | SII_REJECTED_CERTIFICATE_CODES
)
# Failures that lie in the certificate's holder (not an administrator of the company).
HOLDER_FAILURE_CODES = frozenset({"holder_not_administrator", "option_not_allowed"})

# The failure code of a claimant's job stopped because another claimant of the company was proven first.
CLAIM_LOST_CODE = "claim_lost"

# Failures only a person can fix (the owner at the SII, a new certificate, the company's records):
# never retried automatically, and the job's pages say a person must act. The bot's own
# (`needs_person`: SII codes ...33, ...35, ...36, ...37, ...38, ...41, locks) and the web app's
# certificate and holder problems.
NEEDS_PERSON_CODES = frozenset(
    {code for code, failure in FAILURE_CODES.items() if failure.needs_person}
    | CERTIFICATE_FAILURE_CODES
    | HOLDER_FAILURE_CODES
    | {CompanyNotAuthorized.code}
)


def job_needs_person(job: EnrollmentJob) -> bool:
    """Whether `job` failed for good for a reason only a person can fix (`NEEDS_PERSON_CODES`)."""
    return job.status == JobStatus.FAILED and job.failure_code in NEEDS_PERSON_CODES


# --- Invitation links ---------------------------------------------------------------------------------

INVITATION_SALT = "autoriza.invitation"


def invitation_token(*, invitation_id: object) -> str:
    """A signed, timestamped token naming the invitation `invitation_id` (for its signup link)."""
    return signing.TimestampSigner(salt=INVITATION_SALT).sign(str(invitation_id))


def invitation_id_from_token(token: str) -> str | None:
    """The invitation id a token made by `invitation_token` names, or None when it is forged or
    tampered with. Expiry is the invitation row's (`Invitation.expires_at`), not the token's."""
    try:
        return signing.TimestampSigner(salt=INVITATION_SALT).unsign(token)
    except signing.BadSignature:
        return None
