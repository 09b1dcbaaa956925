"""Asking a client by e-mail to upload their certificate again, for a change in their SII users the
firm needs: the path of every change when the firm cannot make it with its own key.

Used by `services.changes` (a change requested now) and by the worker when a change tried with the
firm's key was refused (`services.jobs.firm_key_run`).
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from onboarding.domain.display import greeting, permission_labels, rut_display
from onboarding.models import ClientCompany, EnrollmentJob, JobKind

logger = logging.getLogger(__name__)

__all__ = ["change_certificate_request", "job_change_description"]

# The SII's order of the attributes a firm requests (as the consent page lists them).
SII_PERMISSION_ORDER = ("admin", "sign", "registry")


def _upload_link(company: ClientCompany) -> str:
    path = reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    return f"{settings.AUTORIZA_BASE_URL.rstrip('/')}{path}"


def change_certificate_request(*, company: ClientCompany, what: str) -> bool:
    """E-mail the client (owner_email), after commit, asking them to upload their certificate again
    for `what` (one Spanish sentence). Returns False, sending nothing, when the client has no e-mail."""
    if not company.owner_email:
        return False
    body = "\n".join(
        [
            greeting(company.owner_name),
            "",
            (
                f"{company.tenant.name} necesita hacer un cambio en los usuarios autorizados de "
                f"{company.legal_name} (RUT {rut_display(company.rut)}) en el SII:"
            ),
            "",
            what,
            "",
            (
                "Para hacerlo necesitamos su certificado digital. Súbalo nuevamente en el siguiente enlace; "
                "antes de hacer cualquier cambio le mostraremos exactamente qué se hará y le pediremos su "
                "consentimiento:"
            ),
            _upload_link(company),
            "",
            f"— Autoriza, para {company.tenant.name}",
        ]
    )
    subject = f"Se necesita su certificado digital: {company.legal_name}"
    recipients = [company.owner_email]

    def send() -> None:
        try:
            send_mail(subject, body + "\n", None, recipients)
        except Exception:  # a mail outage must not undo the change's bookkeeping
            logger.exception("certificate request e-mail for company %s failed", company.pk)

    transaction.on_commit(send)
    return True


def job_change_description(job: EnrollmentJob) -> str:
    """The change `job` makes, as one Spanish sentence for the client."""
    tenant = job.tenant
    who = f"{job.user_name} (RUT {rut_display(job.user_rut)})"
    if job.kind == JobKind.REVOKE:
        return (
            f"Quitar a {who} como usuario autorizado de la empresa, porque la relación con {tenant.name} terminó."
        )
    if job.kind == JobKind.REPLACE:
        old = f"{job.old_user_name or job.old_user_rut} (RUT {rut_display(job.old_user_rut)})"
        return f"Autorizar a {who}, el nuevo representante de {tenant.name}, y quitar a {old}, el anterior."
    labels = ", ".join(permission_labels(code for code in SII_PERMISSION_ORDER if code in job.permissions))
    return f"Actualizar los permisos de {who} a: {labels}."
