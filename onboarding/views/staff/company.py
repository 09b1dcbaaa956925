"""One client company's page: the company, whether the firm's representative is authorized there,
its jobs, and (owners and admins) the SII permissions requested in it.
"""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from onboarding import access, selectors, services
from onboarding.domain.rules import company_permissions_stale
from onboarding.forms.staff import CompanyPermissionsForm
from onboarding.models import ClientCompany, Membership, Relationship
from onboarding.views.staff.common import company_or_404, staff_context, staff_view


def _company_page(
    request: HttpRequest, membership: Membership, company_id: int, form: CompanyPermissionsForm | None = None
) -> HttpResponse:
    company = company_or_404(membership, company_id)
    page = selectors.company_page(tenant=membership.tenant, company=company)
    context = staff_context(
        membership,
        "dashboard",
        page=page,
        company=company,
        company_access=selectors.company_access_view(company=company),
        form=form or CompanyPermissionsForm.for_company(company),
    )
    return render(request, "staff/company.html", context, status=400 if form is not None else 200)


@staff_view()
def company_detail(request: HttpRequest, membership: Membership, company_id: int) -> HttpResponse:
    """The client's page (every member)."""
    return _company_page(request, membership, company_id)


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def company_permissions(request: HttpRequest, membership: Membership, company_id: int) -> HttpResponse:
    """Owners and admins: request the firm's permissions in this client, or a choice of its own (audited)."""
    company = company_or_404(membership, company_id)
    form = CompanyPermissionsForm(request.POST)
    if not form.is_valid():
        return _company_page(request, membership, company_id, form=form)
    try:
        changed = services.company_permissions_set(company=company, permissions=form.override, actor=request.user)
    except services.ServiceError as error:
        form.add_error(None, error.message)
        return _company_page(request, membership, company_id, form=form)
    if not changed:
        messages.success(request, "No había cambios que guardar.")
    elif _held_differs(company):
        messages.success(
            request,
            "Permisos guardados. El SII aún tiene otros permisos en este cliente: use «Actualizar en el SII "
            "ahora» para aplicarlos.",
        )
    else:
        messages.success(request, "Permisos guardados.")
    return redirect("staff:company_detail", tenant_slug=membership.tenant.slug, company_id=company.pk)


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def company_permissions_sync(request: HttpRequest, membership: Membership, company_id: int) -> HttpResponse:
    """Owners and admins: bring this client's SII permissions to the ones requested in it now (with the
    firm's key, else the client's stored certificate, else an e-mail asking for it; audited)."""
    company = company_or_404(membership, company_id)
    if company.relationship != Relationship.ACTIVE:
        messages.warning(request, "La relación con este cliente ya no está vigente: no hay permisos que actualizar en el SII.")
    else:
        report = services.permissions_sync(tenant=membership.tenant, actor=request.user, company=company)
        messages.add_message(request, *_sync_message(report))
    return redirect("staff:company_detail", tenant_slug=membership.tenant.slug, company_id=company.pk)


def _sync_message(report: services.ChangeReport) -> tuple[int, str]:
    """The message level and the Spanish sentence that say what a one-client permission sync did."""
    if report.jobs:
        how = "con la llave del estudio" if report.jobs[0].firm_key_id else "con el certificado guardado del cliente"
        return messages.SUCCESS, f"Actualizando los permisos en el SII {how}. Siga el avance en «Trámites en el SII»."
    if report.emailed:
        return messages.SUCCESS, "Le pedimos al cliente su certificado digital por correo para actualizar los permisos."
    if report.skipped:
        reason = report.skipped[0][1]
        if reason == "job_already_active":
            return messages.WARNING, "Ya hay un trámite en curso para este cliente: espere a que termine."
        return messages.WARNING, (
            "El cliente no tiene un correo registrado: no pudimos pedirle su certificado digital."
        )
    return messages.INFO, "Los permisos del SII ya coinciden con los solicitados: no hay nada que actualizar."


def _held_differs(company: ClientCompany) -> bool:
    """Whether the SII holds the firm's representative in `company` with other permissions than the
    ones requested there now (read again: the caller's copy predates the change)."""
    company.refresh_from_db()
    return bool(company.sii_user_rut) and company_permissions_stale(company)
