"""Services for the client's self-onboarding: signup (plain or by invitation), certificate upload,
consent and deletion of an unused certificate.

The certificate password is an argument of `client_certificate_upload` only: it opens the file
there and then, and is never stored, logged, put in a session or passed to a task.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from onboarding.domain.display import rut_display
from onboarding.models import (
    AuditAction,
    Certificate,
    ClientCompany,
    CompanyClaim,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobEvent,
    Tenant,
)
from onboarding.selectors.client import certificate_in_active_job
from onboarding.selectors.consent import consent_terms
from onboarding.selectors.readiness import certificate_readiness_for
from onboarding.services.audit import audit_record
from onboarding.services.certificates import certificate_destroy, certificate_store
from onboarding.services.claims import company_claim_start
from onboarding.services.errors import ServiceError
from onboarding.services.jobs.lifecycle import enrollment_job_create
from sii_bot import certificates
from sii_bot.certificates import CertificateBundle, CertificateError
from sii_bot.rut import normalize_rut

__all__ = [
    "CERTIFICATE_NOT_READY",
    "ClientSignup",
    "certificate_upload_link",
    "client_certificate_delete",
    "client_certificate_open",
    "client_certificate_unready_erase",
    "client_certificate_upload",
    "client_consent_give",
    "client_job_certificate_delete",
    "client_signup",
]

logger = logging.getLogger(__name__)

# Destroy reason of a certificate erased because the SII would refuse it (readiness errors): its
# public facts stay, so the review step can still say why.
CERTIFICATE_NOT_READY = "not_ready"


# --- Signup -----------------------------------------------------------------------------------


def _user_create(*, email: str, password: str, name: str) -> AbstractBaseUser:
    User = get_user_model()
    email = User.objects.normalize_email(email).strip().lower()
    if User.objects.filter(username__iexact=email).exists() or User.objects.filter(email__iexact=email).exists():
        raise ServiceError(
            "Ya existe una cuenta con este correo. Ingrese con ella (o recupere su contraseña) y vuelva a "
            "abrir este enlace.",
            code="email_taken",
        )
    first_name, _, last_name = name.strip().partition(" ")
    try:
        with transaction.atomic():
            return User.objects.create_user(
                username=email, email=email, password=password, first_name=first_name[:150], last_name=last_name[:150]
            )
    except IntegrityError:  # a concurrent signup with the same email won the race
        raise ServiceError("Ya existe una cuenta con este correo.", code="email_taken") from None


@dataclass(frozen=True)
class ClientSignup:
    """What a signup registered: the company, the account (new or given), and whether the company
    was already registered by someone else, so `user` is one of several claimants (see
    `CompanyClaim`) rather than its owner."""

    company: ClientCompany
    user: AbstractBaseUser
    competing: bool


def client_signup(
    *,
    tenant: Tenant,
    rut: str,
    legal_name: str,
    owner_name: str,
    email: str = "",
    password: str = "",
    user: AbstractBaseUser | None = None,
    invitation: Invitation | None = None,
) -> ClientSignup:
    """Register a client of `tenant`: returns the company, the user and whether others claim it too.

    Creates the user (email = username) unless an authenticated `user` is given. Without an
    invitation this is a self-signup claim (`services.claims.company_claim_start`): the first one
    creates the company (WAITING_CERTIFICATE) owned by the user; later ones of the same RUT, while no
    claimant is proven in the SII, add the user as a competing claimant. With an open `invitation`
    the user becomes the owner of the invited company instead, the invitation is marked accepted and
    the company moves from INVITED to WAITING_CERTIFICATE. Audited (SIGNUP).

    Raises ServiceError (Spanish message) when the email already has an account, the company RUT is
    a client the firm registered or whose owner is already proven, the RUT differs from the
    invitation's company, or the invitation was used meanwhile. Nothing is written when it raises.
    """
    canonical = normalize_rut(rut)
    legal_name = legal_name.strip()
    owner_name = owner_name.strip()
    with transaction.atomic():
        if user is None:
            user = _user_create(email=email, password=password, name=owner_name)
        owner_email = getattr(user, "email", "") or email
        if invitation is not None:
            company = _invitation_accept(
                invitation=invitation, rut=canonical, legal_name=legal_name, owner=user,
                owner_name=owner_name, owner_email=owner_email,
            )
        else:
            company = company_claim_start(
                tenant=tenant, rut=canonical, legal_name=legal_name, user=user, name=owner_name, email=owner_email
            )
        competing = company.owner_id != user.pk
        audit_record(
            tenant=company.tenant,
            actor=user,
            action=AuditAction.SIGNUP,
            company=company,
            summary=f"{owner_name or user.get_username()} registró {legal_name or company.legal_name} "
            f"({rut_display(company.rut)})"
            + (" por invitación" if invitation is not None else "")
            + (" (otra persona ya la había registrado)" if competing else ""),
            details={
                "invitation": invitation.pk if invitation is not None else None,
                "email": owner_email,
                "competing": competing,
            },
        )
    return ClientSignup(company=company, user=user, competing=competing)


def _invitation_accept(
    *, invitation: Invitation, rut: str, legal_name: str, owner: AbstractBaseUser, owner_name: str, owner_email: str
) -> ClientCompany:
    company = ClientCompany.objects.select_for_update().select_related("tenant").get(pk=invitation.company_id)
    if company.rut != rut:
        raise ServiceError(
            f"El RUT ingresado no corresponde a la empresa de su invitación ({rut_display(company.rut)}, "
            f"{company.legal_name}). Revise el RUT, o pida a su contador una invitación para la empresa correcta.",
            code="invitation_rut_mismatch",
        )
    if company.owner_id is not None and company.owner_id != owner.pk:
        raise ServiceError(
            "Esta empresa ya tiene una cuenta registrada. Ingrese con esa cuenta o pida ayuda a su contador.",
            code="company_has_owner",
        )
    now = timezone.now()
    # Compare-and-set: two people opening the same link cannot both accept it.
    accepted = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).update(accepted_at=now)
    if not accepted:
        raise ServiceError(
            "Esta invitación ya fue usada, fue anulada o venció. Pida a su contador un enlace nuevo.",
            code="invitation_closed",
        )
    invitation.accepted_at = now
    company.owner = owner  # type: ignore[assignment]
    company.owner_name = owner_name or company.owner_name
    company.owner_email = owner_email or company.owner_email
    company.legal_name = legal_name or company.legal_name
    fields = ["owner", "owner_name", "owner_email", "legal_name"]
    if company.stage == CompanyStage.INVITED:
        company.stage = CompanyStage.WAITING_CERTIFICATE
        company.stage_changed_at = now
        fields += ["stage", "stage_changed_at"]
    company.save(update_fields=fields)
    return company


# --- Certificates ----------------------------------------------------------------------------


def certificate_upload_link(*, company: ClientCompany) -> str:
    """The absolute link where the client uploads a certificate for `company` (for e-mails)."""
    path = reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    return f"{settings.AUTORIZA_BASE_URL.rstrip('/')}{path}"


def client_certificate_open(*, upload: UploadedFile, password: str) -> CertificateBundle:
    """Open an uploaded .pfx/.p12 with its password and return what it holds.

    Checks the size before reading a byte (an empty file and one over
    AUTORIZA_MAX_CERTIFICATE_BYTES are refused unread), then parses it in memory. Raises
    `CertificateError` (with its Spanish `message`) for every refusal — including anything
    unexpected the parser raises, so a bad upload can never become a server error.
    """
    max_bytes = settings.AUTORIZA_MAX_CERTIFICATE_BYTES
    size = upload.size or 0
    if size > max_bytes or getattr(upload, "too_large", False):
        raise CertificateError("too_large", detail=f"{size} bytes > {max_bytes}")
    if size == 0:
        raise CertificateError("empty")
    upload.seek(0)
    data = upload.read(max_bytes + 1)
    try:
        # Looked up on the module at call time, so a test can stand in for the parser.
        return certificates.open_pkcs12(data, password, max_bytes=max_bytes)
    except CertificateError:
        raise
    except Exception as exc:  # noqa: BLE001 - the parser promises CertificateError; never trust a 500 to it
        logger.warning("certificate parser raised %s instead of CertificateError", type(exc).__name__)
        raise CertificateError("not_pkcs12", detail=f"parser raised {type(exc).__name__}") from None
    finally:
        del data


def client_certificate_upload(
    *,
    company: ClientCompany,
    upload: UploadedFile,
    password: str,
    uploaded_by: AbstractBaseUser,
    claim: CompanyClaim | None = None,
) -> Certificate:
    """Open the client's certificate file and store it sealed for `company`; returns the Certificate.

    `claim`: the uploader's pending claim on the company (see `CompanyClaim`), None for its owner's
    own certificates; the certificate then belongs to that claim only. The password opens the file
    here and goes nowhere else. Older certificates of the same claim (or of the company's own, for
    None) that no queued or running job needs are erased (reason "replaced"): only the newest one is
    kept. Raises `CertificateError` for a file or password we refuse (nothing is stored then).

    A certificate the SII would refuse (`certificate_readiness_for` finds an error, e.g. an issuer the
    SII does not accept) is erased before this returns (reason `CERTIFICATE_NOT_READY`): only its
    public facts stay, for the review step to explain, and older certificates are left as they were.
    """
    bundle = client_certificate_open(upload=upload, password=password)
    readiness = certificate_readiness_for(
        facts=bundle, environment=company.tenant.sii_environment, now=timezone.now()
    )
    with transaction.atomic():
        certificate = certificate_store(company=company, bundle=bundle, uploaded_by=uploaded_by)
        if claim is not None:
            certificate.claim = claim
            certificate.save(update_fields=["claim"])
        if readiness.blocked:
            client_certificate_unready_erase(certificate=certificate, actor=uploaded_by)
            return certificate
        older = Certificate.objects.filter(
            tenant_id=company.tenant_id, company=company, claim=claim, destroyed_at__isnull=True
        ).exclude(pk=certificate.pk)
        for previous in older.select_related("company__tenant"):
            if not certificate_in_active_job(certificate=previous):
                certificate_destroy(certificate=previous, reason="replaced")
    return certificate


def client_certificate_unready_erase(*, certificate: Certificate, actor: AbstractBaseUser | None) -> bool:
    """Erase a certificate the SII would refuse (reason `CERTIFICATE_NOT_READY`, audited).

    Returns True if key material was erased now; False if it was already gone or a queued or running
    job still holds it (that job meets the SII's own refusal).
    """
    if certificate_in_active_job(certificate=certificate):
        return False
    return certificate_destroy(certificate=certificate, reason=CERTIFICATE_NOT_READY, actor=actor)


def client_certificate_delete(*, certificate: Certificate, actor: AbstractBaseUser) -> bool:
    """Erase a certificate the client uploaded, at the client's request (audited as a deletion).

    Returns True if key material was erased now, False if it was already gone. Raises ServiceError
    while a queued or running job still needs it.
    """
    if certificate_in_active_job(certificate=certificate):
        raise ServiceError(
            "Este certificado se está usando en una autorización en curso; podrá eliminarlo cuando termine.",
            code="certificate_in_use",
        )
    return certificate_destroy(certificate=certificate, reason="client_deleted", actor=actor)


def client_job_certificate_delete(*, job: EnrollmentJob, actor: AbstractBaseUser) -> bool:
    """Erase, at the owner's request from a finished job's page, the certificate that job used (audited
    as a deletion, like `client_certificate_delete`; the job's page notes it). Returns True if key
    material was erased now, False if it was already gone. Raises ServiceError while a queued or
    running job still needs it."""
    if job.certificate is None:
        return False
    with transaction.atomic():
        erased = client_certificate_delete(certificate=job.certificate, actor=actor)
        if erased:
            JobEvent.objects.create(
                tenant_id=job.tenant_id, job=job, step="certificate_deleted", status="info",
                message=(
                    f"Eliminó su certificado digital ({job.certificate.holder_name}) de Autoriza. Para volver a "
                    "intentarlo tendrá que subirlo otra vez."
                ),
            )
    return erased


# --- Consent ---------------------------------------------------------------------------------


def client_consent_give(
    *, company: ClientCompany, certificate: Certificate, user: AbstractBaseUser, terms_version: str
) -> EnrollmentJob:
    """Record the client's consent and create the QUEUED job it allows; returns the job.

    `terms_version` is the `ConsentTerms.version` the client saw: if the firm changed its
    representative or permissions since, the consent does not cover the new terms and is refused.
    Raises ServiceError for that, for a certificate no longer stored, and for everything
    `enrollment_job_create` refuses (a job already active, no representative).
    """
    terms = consent_terms(company=company, retention_days=settings.AUTORIZA_CERT_RETENTION_DAYS)
    if terms.representative is None:
        raise ServiceError(
            "El estudio contable aún no ha configurado a su representante. Avísele a su contador.",
            code="no_representative",
        )
    consent_preconditions_check(
        company=company, certificate=certificate, terms_version=terms_version, current_version=terms.version
    )
    with transaction.atomic():
        job = enrollment_job_create(
            company=company, certificate=certificate, created_by=user, representative=terms.representative
        )
        ClientCompany.objects.filter(pk=company.pk).update(consent_edition=terms.edition)
        audit_record(
            tenant=company.tenant,
            actor=user,
            action=AuditAction.CONSENT,
            company=company,
            summary=(
                f"Consentimiento para autorizar a {terms.representative_name} ({terms.representative_rut}) "
                f"en {company.legal_name} ({terms.company_rut})"
            ),
            details={
                "job": str(job.pk),
                "certificate": str(certificate.pk),
                "representative_rut": terms.representative.rut,
                "permissions": list(terms.permissions),
                "terms_version": terms.version,
                "terms_edition": terms.edition,
            },
        )
    return job


def consent_preconditions_check(
    *, company: ClientCompany, certificate: Certificate, terms_version: str, current_version: str
) -> None:
    """Refuse a consent given to terms that changed meanwhile, or with a certificate no longer stored.

    Raises ServiceError (`terms_changed`, `certificate_missing`); returns nothing when both hold.
    """
    if terms_version != current_version:
        raise ServiceError(
            "Los datos de la autorización cambiaron mientras revisaba esta página. Revíselos nuevamente "
            "antes de confirmar.",
            code="terms_changed",
        )
    if certificate.company_id != company.pk or not certificate.is_usable:
        raise ServiceError(
            "El certificado ya no está guardado. Suba su certificado nuevamente para continuar.",
            code="certificate_missing",
        )
