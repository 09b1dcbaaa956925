"""Services for the client's self-onboarding: signup (plain or by invitation), certificate upload,
consent and deletion of an unused certificate.

The certificate password is an argument of `client_certificate_upload` only: it opens the file
there and then, and is never stored, logged, put in a session or passed to a task.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from onboarding.domain import display
from onboarding.models import (
    AuditAction,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobStatus,
    Tenant,
)
from onboarding.selectors.client import (
    certificate_in_active_job,
    consent_terms,
    job_failure_advice,
    job_result_view,
    rut_display,
)
from onboarding.services.core import (
    ServiceError,
    audit_record,
    certificate_destroy,
    certificate_store,
    client_company_create,
    enrollment_job_create,
)
from sii_bot.rut import normalize_rut

if TYPE_CHECKING:
    from sii_bot.certificates import CertificateBundle

__all__ = [
    "FinishedEmail",
    "job_finished_emails",
    "client_certificate_delete",
    "client_certificate_open",
    "client_certificate_upload",
    "client_consent_give",
    "client_signup",
]

logger = logging.getLogger(__name__)


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
) -> ClientCompany:
    """Register a client of `tenant` and return its company (owned by the new or given user).

    Creates the user (email = username) unless an authenticated `user` is given. Without an
    invitation a new company is created (WAITING_CERTIFICATE). With an open `invitation` the user
    becomes the owner of the invited company instead, the invitation is marked accepted and the
    company moves from INVITED to WAITING_CERTIFICATE. Audited (SIGNUP).

    Raises ServiceError (Spanish message) when the email already has an account, the company RUT is
    already a client of the firm, the RUT differs from the invitation's company, or the invitation was
    used meanwhile. Nothing is written when it raises.
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
            company = client_company_create(
                tenant=tenant,
                rut=canonical,
                legal_name=legal_name,
                owner=user,
                owner_name=owner_name,
                owner_email=owner_email,
                stage=CompanyStage.WAITING_CERTIFICATE,
            )
        audit_record(
            tenant=company.tenant,
            actor=user,
            action=AuditAction.SIGNUP,
            company=company,
            summary=f"{owner_name or user.get_username()} registró {company.legal_name} ({rut_display(company.rut)})"
            + (" por invitación" if invitation is not None else ""),
            details={"invitation": invitation.pk if invitation is not None else None, "email": owner_email},
        )
    return company


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


def client_certificate_open(*, upload: UploadedFile, password: str) -> CertificateBundle:
    """Open an uploaded .pfx/.p12 with its password and return what it holds.

    Checks the size before reading a byte (an empty file and one over
    AUTORIZA_MAX_CERTIFICATE_BYTES are refused unread), then parses it in memory. Raises
    `CertificateError` (with its Spanish `message`) for every refusal — including anything
    unexpected the parser raises, so a bad upload can never become a server error.
    """
    from sii_bot.certificates import CertificateError, open_pkcs12

    max_bytes = settings.AUTORIZA_MAX_CERTIFICATE_BYTES
    size = upload.size or 0
    if size > max_bytes or getattr(upload, "too_large", False):
        raise CertificateError("too_large", detail=f"{size} bytes > {max_bytes}")
    if size == 0:
        raise CertificateError("empty")
    upload.seek(0)
    data = upload.read(max_bytes + 1)
    try:
        return open_pkcs12(data, password, max_bytes=max_bytes)
    except CertificateError:
        raise
    except Exception as exc:  # noqa: BLE001 - the parser promises CertificateError; never trust a 500 to it
        logger.warning("certificate parser raised %s instead of CertificateError", type(exc).__name__)
        raise CertificateError("not_pkcs12", detail=f"parser raised {type(exc).__name__}") from None
    finally:
        del data


def client_certificate_upload(
    *, company: ClientCompany, upload: UploadedFile, password: str, uploaded_by: AbstractBaseUser
) -> Certificate:
    """Open the client's certificate file and store it sealed for `company`; returns the Certificate.

    The password opens the file here and goes nowhere else. Older certificates of the company that no
    queued or running job needs are erased (reason "replaced"): only the newest one is kept.
    Raises `CertificateError` for a file or password we refuse (nothing is stored then).
    """
    bundle = client_certificate_open(upload=upload, password=password)
    with transaction.atomic():
        certificate = certificate_store(company=company, bundle=bundle, uploaded_by=uploaded_by)
        older = Certificate.objects.filter(
            tenant_id=company.tenant_id, company=company, destroyed_at__isnull=True
        ).exclude(pk=certificate.pk)
        for previous in older.select_related("company__tenant"):
            if not certificate_in_active_job(certificate=previous):
                certificate_destroy(certificate=previous, reason="replaced")
    return certificate


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
            },
        )
    return job


# --- The emails about a finished job -----------------------------------------------------------


@dataclass(frozen=True)
class FinishedEmail:
    """One notification about a finished job: subject, plain-text body, recipients."""

    subject: str
    body: str
    recipients: list[str]


def _absolute(path: str) -> str:
    return settings.AUTORIZA_BASE_URL.rstrip("/") + path


def _staff_job_url(job: EnrollmentJob) -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return _absolute(reverse("staff:job_detail", kwargs={"tenant_slug": job.tenant.slug, "job_id": job.pk}))
    except NoReverseMatch:
        return _absolute("/")


def job_finished_emails(*, job: EnrollmentJob) -> list[FinishedEmail]:
    """The emails to send when `job` finished: one to the client (owner) with a link to the status
    page and what to do next, one to the firm's notification addresses with a link to the staff
    page. Either is left out when it has no recipient. Plain Spanish; no certificate data.

    Meant to be called by `services.core._notify_finished` (which sends them and logs failures).
    """
    from django.urls import reverse

    company = job.company
    tenant = job.tenant
    who = f"{job.user_name} (RUT {rut_display(job.user_rut)})"
    where = f"{company.legal_name} (RUT {rut_display(company.rut)})"
    status_url = _absolute(reverse("client:job", kwargs={"job_id": job.pk}))
    signature = f"— Autoriza, para {tenant.name}"
    greeting = display.greeting(company.owner_name)
    emails: list[FinishedEmail] = []
    if job.status == JobStatus.SUCCEEDED:
        result = job_result_view(job=job)
        permissions = (
            f"Usuario Administrador: {result.admin} · Firmar Documentos: {result.sign} · Registro: {result.registry}"
            if result is not None
            else ""
        )
        outcome = {
            "updated": f"{job.user_name} ya era usuario de la empresa; el SII actualizó sus permisos.",
            "already_authorized": f"{job.user_name} ya estaba autorizado con estos permisos; no fue necesario hacer cambios.",
        }.get(job.outcome, "")
        lines = [
            greeting,
            "",
            f"El SII registró a {who}, representante de {tenant.name}, como usuario autorizado de {where}.",
            "",
            f"Permisos: {permissions}" if permissions else "",
            outcome,
            "",
            "Su certificado digital ya fue eliminado de nuestros sistemas. No necesita hacer nada más.",
            "",
            "Vea la confirmación del SII en:",
            status_url,
            "",
            signature,
        ]
        client_subject = f"Autorización completada en el SII: {company.legal_name}"
        firm_subject = f"Autorizado en el SII: {company.legal_name}"
        firm_body = [
            f"{who} quedó registrado como usuario autorizado de {where}.",
            f"Permisos: {permissions}" if permissions else "",
            outcome,
        ]
    else:
        advice = job_failure_advice(job=job)
        lines = [
            greeting,
            "",
            f"No pudimos registrar a {who} como usuario autorizado de {where} en el SII.",
            "",
            f"Motivo: {job.failure_message or 'ocurrió un problema al hacer el trámite en el SII.'}",
            "",
            f"Qué hacer ahora: {advice.text}" if advice is not None else "",
            "",
            "Vea el detalle en:",
            status_url,
            "",
            signature,
        ]
        client_subject = f"No se pudo completar la autorización en el SII: {company.legal_name}"
        firm_subject = f"Falló la autorización en el SII: {company.legal_name}"
        firm_body = [
            f"No se pudo registrar a {who} como usuario autorizado de {where}.",
            f"Motivo: {display.failure_label(job.failure_code) or 'sin clasificar'}. {job.failure_message}",
            "Un dueño o administrador del estudio puede volver a intentarlo desde el detalle del trabajo."
            if job.failure_retryable
            else "Revise el detalle del trabajo antes de volver a intentarlo.",
        ]
    if company.owner_email:
        emails.append(FinishedEmail(client_subject, _join(lines), [company.owner_email]))
    firm_recipients = tenant.notification_email_list
    if firm_recipients:
        paragraphs = [line for line in firm_body if line]
        body = _join(["\n\n".join(paragraphs), "", "Detalle del trabajo:", _staff_job_url(job), "", "— Autoriza"])
        emails.append(FinishedEmail(firm_subject, body, firm_recipients))
    return emails


def _join(lines: list[str]) -> str:
    """Lines joined, without the empty lines a missing optional sentence would leave doubled."""
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


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
