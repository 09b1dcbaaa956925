"""Writes about the firm and its clients as rows: creating a firm, its representatives and members,
creating and removing client companies, and moving a company's stage.

HackSoft style: keyword-only arguments, `<entity>_<action>` names, a `ServiceError` with a Spanish
message for every refusal.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    AuditAction,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    Membership,
    Representative,
    Role,
    SiiEnvironment,
    Tenant,
)
from onboarding.services.audit import audit_record
from onboarding.services.certificates import company_certificates_destroy
from onboarding.services.errors import ServiceError
from sii_bot.rut import normalize_rut

__all__ = [
    "client_company_create",
    "client_company_remove",
    "company_stage_set",
    "membership_add",
    "representative_add",
    "tenant_create",
]


def tenant_create(
    *,
    name: str,
    slug: str,
    sii_environment: str = SiiEnvironment.PRODUCTION,
    grant_admin: bool = True,
    grant_sign: bool = True,
    grant_registry: bool = True,
    notification_emails: str = "",
) -> Tenant:
    """Create an accounting firm; returns the saved Tenant."""
    tenant = Tenant(
        name=name,
        slug=slug,
        sii_environment=sii_environment,
        grant_admin=grant_admin,
        grant_sign=grant_sign,
        grant_registry=grant_registry,
        notification_emails=notification_emails,
    )
    tenant.full_clean()
    tenant.save()
    return tenant


def representative_add(*, tenant: Tenant, rut: str, name: str) -> Representative:
    """Add (or reactivate) a representative of the firm; the RUT is stored canonically."""
    canonical = normalize_rut(rut)
    representative, _ = Representative.objects.update_or_create(
        tenant=tenant, rut=canonical, defaults={"name": name.strip().upper(), "is_active": True}
    )
    return representative


def membership_add(*, tenant: Tenant, user: AbstractBaseUser, role: str = Role.STAFF) -> Membership:
    """Give a user a role in a tenant (updating the role if already a member)."""
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    return membership


def client_company_create(
    *,
    tenant: Tenant,
    rut: str,
    legal_name: str,
    owner: AbstractBaseUser | None = None,
    owner_name: str = "",
    owner_email: str = "",
    stage: str = CompanyStage.WAITING_CERTIFICATE,
) -> ClientCompany:
    """Create a client company of the tenant. Raises ServiceError if its RUT is already a client."""
    canonical = normalize_rut(rut)
    try:
        with transaction.atomic():
            return ClientCompany.objects.create(
                tenant=tenant,
                rut=canonical,
                legal_name=legal_name.strip(),
                owner=owner,
                owner_name=owner_name.strip(),
                owner_email=owner_email.strip(),
                stage=stage,
            )
    except IntegrityError:
        raise ServiceError(
            "Esta empresa ya está registrada con este estudio contable. Inicie sesión con la cuenta "
            "que la registró, o pida ayuda a su contador.",
            code="company_exists",
        ) from None


def company_stage_set(*, company: ClientCompany, stage: str) -> None:
    """Move `company` to `stage` (a `CompanyStage`), stamping when; the instance is updated too."""
    ClientCompany.objects.filter(pk=company.pk).update(stage=stage, stage_changed_at=timezone.now())
    company.stage = stage


def client_company_remove(*, company: ClientCompany, actor: AbstractBaseUser | None) -> None:
    """Remove a client company of the firm, erasing its stored certificates first (audited).

    Nothing can be re-run for a company that is gone, so its keys are erased at once (reason
    "company_removed") before its rows go; the audit entries stay with the tenant. Raises
    ServiceError while a job of the company is queued or running (its outcome would have nowhere to go).
    """
    with transaction.atomic():
        company = ClientCompany.objects.select_for_update().select_related("tenant").get(pk=company.pk)
        if EnrollmentJob.objects.filter(company=company, status__in=ACTIVE_JOB_STATUSES).exists():
            raise ServiceError(
                "Hay un trabajo en curso para esta empresa. Espere a que termine antes de eliminarla.",
                code="job_already_active",
            )
        erased = company_certificates_destroy(company=company, reason="company_removed", actor=actor)
        audit_record(
            tenant=company.tenant,
            actor=actor,
            action=AuditAction.DELETION,
            company=company,
            summary=f"Empresa {company.legal_name} ({company.rut}) eliminada",
            details={"company": company.pk, "rut": company.rut, "certificates_erased": erased},
        )
        company.delete()
