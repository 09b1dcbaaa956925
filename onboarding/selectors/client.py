"""Reads for the client side: the firm a signup page belongs to, the client's own companies,
certificates and jobs, and whether a company needs anything more from its owner. (What a consent
covers: `selectors.consent`; one job's timeline, poll and result: `selectors.status`.)

Every read that returns a company, certificate or job is scoped to the client who owns the company
(`company.owner == user`) or, for a company several people registered, to the claimant whose
certificates and jobs they are (see `CompanyClaim`); another client's id and a non-existent id look
the same (None).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q
from django.utils import timezone

from onboarding.domain.rules import (
    CERTIFICATE_FAILURE_CODES,
    HOLDER_FAILURE_CODES,
    certificates_usable,
    company_permissions_stale,
    invitation_id_from_token,
    pending_change,
    representative_active,
)
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    Certificate,
    ClaimStatus,
    ClientCompany,
    CompanyClaim,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobKind,
    JobStatus,
    Permission,
    Relationship,
    Tenant,
)
from onboarding.selectors.core import parse_uuid

__all__ = [
    "SETTLED_AUTHORIZED",
    "SETTLED_ENDED",
    "CertificateRetention",
    "certificate_in_active_job",
    "certificate_retention",
    "claim_has_rivals",
    "client_certificate_current",
    "client_certificate_get",
    "client_certificate_offerable",
    "client_claim_get",
    "client_companies",
    "client_company_get",
    "client_company_settled",
    "client_job_active",
    "client_job_claimant_view",
    "client_job_latest",
    "invitation_company_used_by",
    "representative_active",
    "tenant_get_by_slug",
]


# --- Tenants ----------------------------------------------------------------------------------------


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    """The firm whose public signup page is /registro/<slug>/, or None."""
    return Tenant.objects.filter(slug=slug).first()


# --- The client's companies and certificates -------------------------------------------------------


def client_company_get(*, user: AbstractBaseUser, company_id: object) -> ClientCompany | None:
    """The company `company_id` if `user` owns it or claims it (tenant loaded), else None (also for
    anonymous users).

    For a claimant whose claim is not proven (see `CompanyClaim`) the instance is a display copy: it
    shows the company as that claimant typed it (legal name, their own name and e-mail) and their own
    progress (`stage`), and none of what the SII holds for the firm there: never save it.
    """
    if not user.is_authenticated:
        return None
    try:
        pk = int(str(company_id))
    except ValueError:
        return None
    company = (
        ClientCompany.objects.select_related("tenant")
        .filter(pk=pk)
        .filter(Q(owner=user) | Q(pk__in=CompanyClaim.objects.filter(user=user).values("company_id")))
        .first()
    )
    if company is not None:
        claim = client_claim_get(company=company, user=user)
        if claim is not None and claim.status != ClaimStatus.WON:
            _claimant_view(company, claim)
    return company


def client_companies(*, user: AbstractBaseUser) -> list[ClientCompany]:
    """The companies `user` registered — owns or claims (see `CompanyClaim`) — newest first, with
    their tenant; an unproven claimant's as their display copy (see `client_company_get`)."""
    claims = {claim.company_id: claim for claim in CompanyClaim.objects.filter(user=user).exclude(status=ClaimStatus.WON)}
    companies = list(
        ClientCompany.objects.select_related("tenant")
        .filter(Q(owner=user) | Q(pk__in=CompanyClaim.objects.filter(user=user).values("company_id")))
        .order_by("-created_at")
    )
    for company in companies:
        if company.pk in claims:
            _claimant_view(company, claims[company.pk])
    return companies


def client_claim_get(*, company: ClientCompany, user: AbstractBaseUser | AnonymousUser) -> CompanyClaim | None:
    """`user`'s claim on `company` (any status), or None (the owner of an invited company, or anyone
    else). A claim that is not WON limits what `user` sees of the company to their own rows."""
    if not user.is_authenticated:
        return None
    return CompanyClaim.objects.filter(tenant_id=company.tenant_id, company=company, user=user).first()


def _claimant_view(company: ClientCompany, claim: CompanyClaim) -> None:
    """Turn `company` (in memory) into what an unproven claimant may see of it (see `client_company_get`)."""
    latest = EnrollmentJob.objects.filter(claim=claim).order_by("-attempt").values_list("status", flat=True).first()
    company.legal_name = claim.legal_name or company.legal_name
    company.owner_name, company.owner_email = claim.name, claim.email
    company.stage = _CLAIM_STAGES.get(latest or "", CompanyStage.WAITING_CERTIFICATE)
    company.relationship = Relationship.ACTIVE
    company.sii_user_rut, company.sii_synced_at = "", None
    for code in Permission.values:
        setattr(company, f"sii_{code}", False)


_CLAIM_STAGES = {
    JobStatus.QUEUED: CompanyStage.QUEUED,
    JobStatus.RUNNING: CompanyStage.RUNNING,
    JobStatus.SUCCEEDED: CompanyStage.AUTHORIZED,
    JobStatus.FAILED: CompanyStage.FAILED,
}


def _mine(claim: CompanyClaim | None) -> Q:
    """The certificates/jobs of a company that the viewer holding `claim` sees: an unproven
    claimant only their claim's; the owner the company's own (and their won claim's)."""
    if claim is None:
        return Q(claim__isnull=True)
    if claim.status == ClaimStatus.WON:
        return Q(claim__isnull=True) | Q(claim=claim)
    return Q(claim=claim)


def client_certificate_get(
    *, company: ClientCompany, certificate_id: object, claim: CompanyClaim | None = None
) -> Certificate | None:
    """One certificate uploaded for `company` that the viewer holding `claim` (None: the company's
    owner without a claim) may see (destroyed ones included), or None."""
    pk = parse_uuid(certificate_id)
    if pk is None:
        return None
    return Certificate.objects.filter(_mine(claim), tenant_id=company.tenant_id, company=company, pk=pk).first()


def client_certificate_current(*, company: ClientCompany, claim: CompanyClaim | None = None) -> Certificate | None:
    """The newest certificate of `company` the viewer holding `claim` sees that a job may still use
    (`domain.rules.certificate_is_usable`: stored and unexpired), or None."""
    mine = Certificate.objects.filter(_mine(claim), tenant_id=company.tenant_id, company=company)
    return certificates_usable(mine, now=timezone.now()).order_by("-created_at").first()


def client_certificate_offerable(
    *, company: ClientCompany, latest: EnrollmentJob | None, claim: CompanyClaim | None = None
) -> Certificate | None:
    """The stored certificate the viewer holding `claim` may go on with: `client_certificate_current`,
    unless their latest attempt (`latest`) failed with that very certificate for a reason that lies in
    the certificate or its holder (offering it again could only fail the same way); else None."""
    certificate = client_certificate_current(company=company, claim=claim)
    if (
        certificate is not None
        and latest is not None
        and latest.status == JobStatus.FAILED
        and latest.certificate_id == certificate.pk
        and latest.failure_code in CERTIFICATE_FAILURE_CODES | HOLDER_FAILURE_CODES
    ):
        return None
    return certificate


def certificate_in_active_job(*, certificate: Certificate) -> bool:
    """True while a queued or running job is going to use this certificate."""
    return EnrollmentJob.objects.filter(certificate=certificate, status__in=ACTIVE_JOB_STATUSES).exists()


# Why a certificate's key is no longer stored, in the client's words.
DESTROY_REASON_LABELS: dict[str, str] = {
    "job_succeeded": "porque el trámite en el SII terminó bien",
    "sii_rejected": "porque el SII no aceptó ese certificado",
    "client_deleted": "a su pedido",
    "replaced": "porque subió otro certificado",
    "retention": "porque se cumplió el plazo de conservación",
    "relationship_ended": "porque terminó la relación con su estudio contable",
    "company_removed": "porque la empresa fue eliminada de Autoriza",
}


@dataclass(frozen=True)
class CertificateRetention:
    """What Autoriza keeps of a client's certificate after a job, and until when (for the client's pages).

    `stored`: the private key is still stored (sealed). Then `erase_by` is when the periodic purge erases
    it at the latest (`retention_days` after the upload, within the hour after), and `in_use` says a
    queued or running job still needs it (it cannot be deleted now). Otherwise `destroyed_at` and
    `destroyed_because` say when and why it was erased.
    """

    certificate_id: Any
    holder_name: str
    stored: bool
    retention_days: int
    erase_by: datetime
    in_use: bool
    destroyed_at: datetime | None
    destroyed_because: str


def certificate_retention(*, certificate: Certificate | None) -> CertificateRetention | None:
    """How long `certificate` stays stored and how it can go sooner; None when there is no certificate."""
    if certificate is None:
        return None
    days = settings.AUTORIZA_CERT_RETENTION_DAYS
    # The periodic purge (CELERY_BEAT_SCHEDULE) erases it within one of its periods after the retention.
    purge_every = float(settings.CELERY_BEAT_SCHEDULE["purge-expired-certificates"]["schedule"])
    stored = certificate.is_usable
    return CertificateRetention(
        certificate_id=certificate.pk,
        holder_name=certificate.holder_name,
        stored=stored,
        retention_days=days,
        erase_by=certificate.created_at + timedelta(days=days, seconds=purge_every),
        in_use=stored and certificate_in_active_job(certificate=certificate),
        destroyed_at=certificate.destroyed_at,
        destroyed_because=DESTROY_REASON_LABELS.get(certificate.destroy_reason, ""),
    )


def client_job_active(*, company: ClientCompany, claim: CompanyClaim | None = None) -> EnrollmentJob | None:
    """The queued or running job of `company` the viewer holding `claim` sees, or None (at most one)."""
    return (
        EnrollmentJob.objects.filter(
            _mine(claim), tenant_id=company.tenant_id, company=company, status__in=ACTIVE_JOB_STATUSES
        )
        .order_by("-attempt")
        .first()
    )


def client_job_latest(*, company: ClientCompany, claim: CompanyClaim | None = None) -> EnrollmentJob | None:
    """The most recent attempt of `company` the viewer holding `claim` sees, or None."""
    return (
        EnrollmentJob.objects.filter(_mine(claim), tenant_id=company.tenant_id, company=company)
        .order_by("-attempt")
        .first()
    )


def claim_has_rivals(*, claim: CompanyClaim) -> bool:
    """True when someone else also claims `claim`'s company (their claim pending too)."""
    return (
        CompanyClaim.objects.filter(company_id=claim.company_id, status=ClaimStatus.PENDING).exclude(pk=claim.pk).exists()
    )


def invitation_company_used_by(
    *, token: str, tenant: Tenant, user: AbstractBaseUser | AnonymousUser
) -> ClientCompany | None:
    """The company of the invitation named by `token` (a validly signed link of `tenant`) if that
    invitation was accepted and `user` owns its company — i.e. `user` is who used the link — else
    None (a forged token, another firm's, an unused or revoked one, or anyone else)."""
    if not user.is_authenticated:
        return None
    pk = invitation_id_from_token(token)
    if pk is None:
        return None
    invitation = Invitation.objects.filter(pk=pk, tenant=tenant, accepted_at__isnull=False).first()
    if invitation is None:
        return None
    return ClientCompany.objects.filter(pk=invitation.company_id, tenant=tenant, owner=user).first()


def client_job_claimant_view(*, job: EnrollmentJob) -> CompanyClaim | None:
    """The claim of a claimant's `job` (see `CompanyClaim`), with `job.company` turned into that
    claimant's display copy while the claim is not proven; None for the company's own jobs."""
    if job.claim_id is None:
        return None
    claim = CompanyClaim.objects.get(pk=job.claim_id)
    if claim.status != ClaimStatus.WON:
        _claimant_view(job.company, claim)
    return claim


# Why a company needs nothing more from its owner (`client_company_settled`).
SETTLED_AUTHORIZED = "authorized"
SETTLED_ENDED = "ended"


def client_company_settled(*, company: ClientCompany) -> str | None:
    """Why `company` needs no certificate from its owner now, or None when it does.

    SETTLED_ENDED: the relationship with the firm ended and the SII holds nobody of the firm there.
    SETTLED_AUTHORIZED: the relationship is active, the SII holds the firm's active representative with
    exactly the permissions the firm requests, and no replacement is left half done.
    None: anything else (nothing authorized yet, a representative to remove or replace, permissions to
    update). A job in flight is not looked at: callers send the owner to it first.
    """
    if company.relationship == Relationship.ENDED:
        return SETTLED_ENDED if not company.sii_user_rut else None
    if company.relationship != Relationship.ACTIVE or not company.sii_user_rut:
        return None
    tenant = company.tenant
    representative = representative_active(tenant)
    if representative is None or representative.rut != company.sii_user_rut:
        return None
    if company_permissions_stale(company):
        return None
    # A replacement that added the representative but did not remove the previous one is pending.
    if pending_change(company).kind != JobKind.AUTHORIZE:
        return None
    return SETTLED_AUTHORIZED
