"""Rules about the firm's presence in a client company's SII account shared by services and views."""
from __future__ import annotations

from onboarding.models import ClientCompany, EnrollmentJob, Representative, Tenant

__all__ = ["sii_user_name"]


def _representative_for_rut(*, tenant: Tenant, rut: str) -> Representative | None:
    return Representative.objects.filter(tenant=tenant, rut=rut).first() if rut else None


def sii_user_name(company: ClientCompany) -> str:
    """The name of whoever the SII holds for the firm in `company` (representative row or last job)."""
    representative = _representative_for_rut(tenant=company.tenant, rut=company.sii_user_rut)
    if representative is not None:
        return representative.name
    job = EnrollmentJob.objects.filter(company=company, user_rut=company.sii_user_rut).order_by("-created_at").first()
    return job.user_name if job is not None else company.sii_user_rut
