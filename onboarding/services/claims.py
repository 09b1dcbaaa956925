"""Self-signup claims on a company RUT: several people may register the same company with a firm,
and the first one proven in the SII becomes its owner (see `onboarding.models.CompanyClaim` for the
whole rule).

Two writes: `company_claim_start` (a self-signup) and `company_claim_settle` (the job success path,
inside its transaction). Nothing here reads or stores certificate material.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from onboarding.domain.display import rut_display, sentence_end
from onboarding.domain.rules import CLAIM_LOST_CODE
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    AuditAction,
    Certificate,
    ClaimStatus,
    ClientCompany,
    CompanyClaim,
    CompanyStage,
    EnrollmentJob,
    JobEvent,
    JobStatus,
    Tenant,
)
from onboarding.services.audit import audit_record
from onboarding.services.certificates import certificate_destroy
from onboarding.services.errors import ServiceError
from onboarding.services.tenants import client_company_create

__all__ = [
    "claim_is_lost",
    "claim_lost_message",
    "company_claim_job_check",
    "company_claim_settle",
    "company_claim_start",
]

logger = logging.getLogger(__name__)

_COMPANY_EXISTS = (
    "Esta empresa ya está registrada con este estudio contable. Inicie sesión con la cuenta "
    "que la registró, o pida ayuda a su contador."
)


def claim_lost_message(*, tenant: Tenant) -> str:
    """What a claimant who lost is told (page, job, e-mail): in Spanish, without naming the winner."""
    return (
        "Otra persona ya comprobó en el SII, con el certificado digital de un administrador de la empresa, "
        f"que la administra, y quedó registrada como su dueña ante {sentence_end(tenant.name)} Su registro no continuará "
        "y eliminamos de nuestros sistemas el certificado que haya subido. Si usted administra esta empresa "
        f"y cree que es un error, comuníquese con {sentence_end(tenant.name)}"
    )


def company_claim_start(
    *, tenant: Tenant, rut: str, legal_name: str, user: AbstractBaseUser, name: str, email: str
) -> ClientCompany:
    """Register `user`'s self-signup of company `rut` with `tenant`; returns the company.

    The first signup of a RUT creates the company (WAITING_CERTIFICATE) with `user` as its provisional
    owner, plus their claim. A later signup while no claim is proven adds a PENDING claim of `user`
    (the company's columns are left as they are). Signing up again a company one already claims
    returns it unchanged. Raises ServiceError("company_exists") when the company was registered by the
    firm (invitations, no claims) or its owner is already proven. Call inside a transaction.
    """
    company = ClientCompany.objects.select_for_update().filter(tenant=tenant, rut=rut).first()
    if company is None:
        try:
            company = client_company_create(
                tenant=tenant, rut=rut, legal_name=legal_name, owner=user, owner_name=name, owner_email=email,
                stage=CompanyStage.WAITING_CERTIFICATE,
            )
        except ServiceError:
            # A concurrent first signup of the same RUT committed first: join it as a claimant.
            company = ClientCompany.objects.select_for_update().get(tenant=tenant, rut=rut)
        else:
            _claim_create(company=company, user=user, name=name, email=email, legal_name=legal_name)
            return company
    claims = CompanyClaim.objects.filter(company=company)
    if claims.filter(user=user).exists():
        return company
    if not claims.exists() or claims.filter(status=ClaimStatus.WON).exists():
        raise ServiceError(_COMPANY_EXISTS, code="company_exists")
    _claim_create(company=company, user=user, name=name, email=email, legal_name=legal_name)
    return company


def _claim_create(*, company: ClientCompany, user: AbstractBaseUser, name: str, email: str, legal_name: str) -> CompanyClaim:
    return CompanyClaim.objects.create(
        tenant_id=company.tenant_id, company=company, user=user, name=name.strip()[:200], email=email.strip(),
        legal_name=legal_name.strip()[:200],
    )


def company_claim_settle(*, job: EnrollmentJob) -> CompanyClaim | None:
    """Settle who owns `job`'s company now that `job` succeeded in the SII; returns the job's claim.

    Must run inside the job's success transaction. A job without a claim (the company's own jobs,
    invited companies) changes nothing and returns None. If no claim of the company is proven yet,
    the job's claim WINS: its claimant becomes the company's owner (name, e-mail and legal name as
    they typed them), every other pending claim is LOST, their queued jobs are stopped (FAILED,
    `CLAIM_LOST_CODE`), their stored certificates not used by a running job are erased, they are
    e-mailed after commit, and it is audited. If another claim already won, the job's claim is LOST
    (the success path erases its certificate; its finished-job e-mail tells the claimant).
    """
    if job.claim_id is None:
        return None
    now = timezone.now()
    company = ClientCompany.objects.select_for_update().select_related("tenant").get(pk=job.company_id)
    claim = CompanyClaim.objects.select_for_update().get(pk=job.claim_id)
    winner = CompanyClaim.objects.filter(company=company, status=ClaimStatus.WON).first()
    if winner is not None:
        if claim.pk != winner.pk and claim.status != ClaimStatus.LOST:
            CompanyClaim.objects.filter(pk=claim.pk).update(
                status=ClaimStatus.LOST, settled_at=now, settled_by_id=winner.settled_by_id
            )
            claim.refresh_from_db()
        return claim
    CompanyClaim.objects.filter(pk=claim.pk).update(status=ClaimStatus.WON, settled_at=now, settled_by=job)
    claim.refresh_from_db()
    company.owner_id = claim.user_id
    company.owner_name = claim.name or company.owner_name
    company.owner_email = claim.email or company.owner_email
    company.legal_name = claim.legal_name or company.legal_name
    company.save(update_fields=["owner", "owner_name", "owner_email", "legal_name"])
    losers = list(CompanyClaim.objects.filter(company=company, status=ClaimStatus.PENDING).exclude(pk=claim.pk))
    if losers:
        CompanyClaim.objects.filter(pk__in=[loser.pk for loser in losers]).update(
            status=ClaimStatus.LOST, settled_at=now, settled_by=job
        )
        _losers_stop(company=company, losers=losers, now=now)
    audit_record(
        tenant=company.tenant,
        actor=None,
        action=AuditAction.SIGNUP,
        company=company,
        summary=(
            f"{claim.name or claim.email} comprobó en el SII que administra {company.legal_name}: queda como dueño"
            + (f"; {len(losers)} registro(s) de otras personas descartado(s)" if losers else "")
        ),
        details={"job": str(job.pk), "claim": claim.pk, "lost_claims": [loser.pk for loser in losers]},
    )
    message = claim_lost_message(tenant=company.tenant)
    recipients = [loser.email for loser in losers if loser.email]
    if recipients:
        transaction.on_commit(lambda: _lost_email_send(company=company, recipients=recipients, message=message))
    return claim


def _losers_stop(*, company: ClientCompany, losers: list[CompanyClaim], now: object) -> None:
    """Stop the losing claims' queued jobs and erase their certificates no running job needs."""
    message = claim_lost_message(tenant=company.tenant)
    queued = EnrollmentJob.objects.filter(claim__in=losers, status=JobStatus.QUEUED)
    for job_id in list(queued.values_list("pk", flat=True)):
        # Compare-and-set: a worker that claims the job first runs it (and finds the SII already done).
        if EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED, finished_at=now, failure_code=CLAIM_LOST_CODE, failure_message=message,
            failure_retryable=False, failure_detail="another claimant was proven first",
        ):
            JobEvent.objects.create(tenant_id=company.tenant_id, job_id=job_id, step="finished", status="failed", message=message)
    stored = Certificate.objects.filter(claim__in=losers, destroyed_at__isnull=True).exclude(
        Q(jobs__status__in=ACTIVE_JOB_STATUSES)
    )
    for certificate in stored.select_related("company__tenant"):
        certificate_destroy(certificate=certificate, reason=CLAIM_LOST_CODE)


def _lost_email_send(*, company: ClientCompany, recipients: list[str], message: str) -> None:
    link = settings.AUTORIZA_BASE_URL.rstrip("/") + reverse("client:company", kwargs={"company_id": company.pk})
    body = "\n".join(
        [
            "Hola:",
            "",
            f"Usted registró la empresa RUT {rut_display(company.rut)} con {company.tenant.name} en Autoriza.",
            "",
            message,
            "",
            "Vea el estado de su registro en:",
            link,
            "",
            f"— Autoriza, para {company.tenant.name}",
        ]
    )
    subject = f"Su registro de la empresa RUT {rut_display(company.rut)} no continuará"
    for recipient in recipients:  # one each: claimants never see each other's addresses
        try:
            send_mail(subject, body + "\n", None, [recipient])
        except Exception:  # a mail outage must not undo the settlement
            logger.exception("claim settlement e-mail failed for company %s", company.pk)


def claim_is_lost(*, job: EnrollmentJob) -> bool:
    """True when `job` belongs to a claimant who lost the company to another, proven claimant."""
    return job.claim_id is not None and CompanyClaim.objects.filter(pk=job.claim_id, status=ClaimStatus.LOST).exists()


def company_claim_job_check(*, claim: CompanyClaim) -> None:
    """Refuse a new job for a claim that lost (another claimant was proven first); returns nothing
    when the claim may still act. Raises ServiceError(CLAIM_LOST_CODE) with the Spanish explanation."""
    status = CompanyClaim.objects.filter(pk=claim.pk).values_list("status", flat=True).first()
    if status == ClaimStatus.LOST:
        raise ServiceError(claim_lost_message(tenant=claim.company.tenant), code=CLAIM_LOST_CODE)
