"""The emails about a finished job, one builder per kind of job: the first authorization
(`job_finished_emails`) and the changes (`change_job_finished_emails`: revocation, replacement).

Plain Spanish, no certificate data. `jobs.lifecycle` sends them after the outcome is committed. A job
the firm ran with its own key (`EnrollmentJob.firm_key`) e-mails the firm only.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from onboarding.domain import display
from onboarding.domain.display import rut_display
from onboarding.models import ClaimStatus, CompanyClaim, EnrollmentJob, JobKind, JobStatus
from onboarding.selectors.status import job_failure_advice, job_result_view
from onboarding.services.claims import claim_lost_message

__all__ = ["FinishedEmail", "change_job_finished_emails", "job_finished_emails"]


@dataclass(frozen=True)
class FinishedEmail:
    """One notification about a finished job: subject, plain-text body, recipients."""

    subject: str
    body: str
    recipients: list[str]


def _absolute(path: str) -> str:
    return settings.AUTORIZA_BASE_URL.rstrip("/") + path


def _staff_job_url(job: EnrollmentJob) -> str:
    try:
        return _absolute(reverse("staff:job_detail", kwargs={"tenant_slug": job.tenant.slug, "job_id": job.pk}))
    except NoReverseMatch:
        return _absolute("/")


def job_finished_emails(*, job: EnrollmentJob) -> list[FinishedEmail]:
    """The emails to send when `job` finished: one to the client (owner) with a link to the status
    page and what to do next, one to the firm's notification addresses with a link to the staff
    page. Either is left out when it has no recipient. Plain Spanish; no certificate data.

    Sent by `jobs.lifecycle` once the outcome is committed (mail failures are logged there).
    """
    company = job.company
    tenant = job.tenant
    # A claimant's job (see `CompanyClaim`) is news for that claimant only, in their own words.
    claim = CompanyClaim.objects.filter(pk=job.claim_id).first() if job.claim_id is not None else None
    client_name = claim.name if claim is not None else company.owner_name
    client_email = claim.email if claim is not None else company.owner_email
    legal_name = (claim.legal_name or company.legal_name) if claim is not None else company.legal_name
    who = f"{job.user_name} (RUT {rut_display(job.user_rut)})"
    where = f"{legal_name} (RUT {rut_display(company.rut)})"
    status_url = _absolute(reverse("client:job", kwargs={"job_id": job.pk}))
    signature = f"— Autoriza, para {tenant.name}"
    greeting = display.greeting(client_name)
    emails: list[FinishedEmail] = []
    if claim is not None and claim.status == ClaimStatus.LOST:
        # Another claimant was proven first: this job found (or would have found) the SII already done.
        lines = [
            greeting,
            "",
            f"La empresa {where} ya había sido autorizada en el SII por su dueño comprobado.",
            "",
            claim_lost_message(tenant=tenant),
            "",
            "Vea el detalle en:",
            status_url,
            "",
            signature,
        ]
        client_subject = f"Su registro de {legal_name} no continuará"
        firm_subject = f"Registro descartado: {company.legal_name}"
        firm_body = [
            (
                f"El intento de {claim.name or claim.email} ({claim.email}) para {company.legal_name} "
                f"(RUT {rut_display(company.rut)}) terminó después de que otra persona comprobó ser su dueño; "
                "su registro quedó descartado y su certificado fue eliminado."
            ),
        ]
    elif job.status == JobStatus.SUCCEEDED:
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
        client_subject = f"Autorización completada en el SII: {legal_name}"
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
        client_subject = f"No se pudo completar la autorización en el SII: {legal_name}"
        firm_subject = f"Falló la autorización en el SII: {company.legal_name}"
        firm_body = [
            f"No se pudo registrar a {who} como usuario autorizado de {where}.",
            f"Motivo: {display.failure_reason(job.failure_code, job.failure_message)}",
            "Un dueño o administrador del estudio puede volver a intentarlo desde el detalle del trabajo."
            if job.failure_retryable
            else "Revise el detalle del trabajo antes de volver a intentarlo.",
        ]
    # A change the firm made with its own key is the firm's business: the client is never e-mailed.
    if client_email and job.firm_key_id is None:
        emails.append(FinishedEmail(client_subject, _join(lines), [client_email]))
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


def _rut_or_blank(rut: str) -> str:
    return rut_display(rut) if rut else ""


def change_job_finished_emails(*, job: EnrollmentJob) -> list[FinishedEmail]:
    """The client's and the firm's emails about a finished REVOKE or REPLACE job (Spanish)."""
    company, tenant = job.company, job.tenant
    where = f"{company.legal_name} (RUT {_rut_or_blank(company.rut)})"
    new = f"{job.user_name} (RUT {_rut_or_blank(job.user_rut)})"
    old = f"{job.old_user_name or job.old_user_rut} (RUT {_rut_or_blank(job.old_user_rut)})"
    status_url = settings.AUTORIZA_BASE_URL.rstrip("/") + reverse("client:job", kwargs={"job_id": job.pk})
    greeting = display.greeting(company.owner_name)
    if job.status == JobStatus.SUCCEEDED:
        if job.kind == JobKind.REVOKE:
            what = f"{new}, representante de {tenant.name}, ya no es usuario autorizado de {where} en el SII."
            subject = f"Representante eliminado en el SII: {company.legal_name}"
        else:
            what = (
                f"El SII registró a {new}, nuevo representante de {tenant.name}, como usuario autorizado de "
                f"{where}, y eliminó a {old}."
            )
            subject = f"Representante reemplazado en el SII: {company.legal_name}"
        client_lines = [greeting, "", what, "", "Su certificado digital ya fue eliminado de nuestros sistemas.",
                        "", "Vea la confirmación del SII en:", status_url, "", f"— Autoriza, para {tenant.name}"]
        firm_lines = [what]
    else:
        subject = f"No se pudo completar el cambio en el SII: {company.legal_name}"
        what = f"Motivo: {job.failure_message}"
        client_lines = [greeting, "", f"No pudimos completar el cambio de usuarios autorizados de {where} en el SII.",
                        "", what, "", "Vea el detalle en:", status_url, "", f"— Autoriza, para {tenant.name}"]
        firm_lines = [f"No se pudo completar el cambio ({job.get_kind_display()}) en {where}.",
                      f"Motivo: {display.failure_reason(job.failure_code, job.failure_message)}",
                      "Un dueño o administrador del estudio puede volver a intentarlo desde el detalle del trabajo."]
    emails = []
    if company.owner_email and job.firm_key_id is None:  # the firm's own change: see job_finished_emails
        emails.append(FinishedEmail(subject, "\n".join(client_lines) + "\n", [company.owner_email]))
    if tenant.notification_email_list:
        body = "\n\n".join(firm_lines) + "\n\nDetalle del trabajo:\n" + _staff_job_url(job) + "\n\n— Autoriza\n"
        emails.append(FinishedEmail(subject, body, tenant.notification_email_list))
    return emails
