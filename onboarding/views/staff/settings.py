"""The firm's settings (owners): name, SII environment, permissions requested, notification e-mails,
representatives, and bringing the clients' SII permissions up to date.
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from onboarding import access, selectors, services
from onboarding.forms.staff import RepresentativeForm, TenantSettingsForm
from onboarding.models import Membership
from onboarding.views.staff.common import representative_or_404, staff_context, staff_view


def _settings_page(request: HttpRequest, membership: Membership, **forms: Any) -> HttpResponse:
    tenant = membership.tenant
    context = staff_context(
        membership,
        "settings",
        form=forms.get("form") or TenantSettingsForm.for_tenant(tenant),
        representative_form=forms.get("representative_form") or RepresentativeForm(),
        representatives=list(selectors.representative_list(tenant=tenant)),
    )
    return render(request, "staff/settings.html", context)


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def tenant_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The firm's name, SII environment, permissions requested, notification emails, representatives."""
    if request.method != "POST":
        return _settings_page(request, membership)
    form = TenantSettingsForm(request.POST)
    if form.is_valid():
        try:
            changes = services.tenant_settings_update(tenant=membership.tenant, actor=request.user, **form.cleaned_data)
        except services.ServiceError as error:
            field = {"invalid_email": "notification_emails", "name_missing": "name"}.get(error.code)
            form.add_error(field, error.message)
        else:
            messages.success(request, "Configuración guardada." if changes else "No había cambios que guardar.")
            # Saving changes the permissions the firm asks for, not what the SII holds: offer to bring the
            # clients' SII accounts up to date.
            membership.tenant.refresh_from_db()
            if selectors.companies_with_stale_permissions(tenant=membership.tenant).exists():
                return redirect("staff:permissions_sync", tenant_slug=membership.tenant.slug)
            return redirect("staff:settings", tenant_slug=membership.tenant.slug)
    return _settings_page(request, membership, form=form)


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def representative_add(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Add a representative to authorize in new jobs, or reactivate an inactive one with that RUT (the
    message says which, and the name it had if it changes); an active one's RUT is refused."""
    form = RepresentativeForm(request.POST)
    if form.is_valid():
        previous = selectors.representative_get_by_rut(tenant=membership.tenant, rut=form.cleaned_data["rut"])
        try:
            representative = services.representative_create(
                tenant=membership.tenant, rut=form.cleaned_data["rut"], name=form.cleaned_data["name"], actor=request.user
            )
        except services.ServiceError as error:
            rut_codes = ("invalid_rut", "not_a_person", "already_representative")
            form.add_error("rut" if error.code in rut_codes else None, error.message)
        else:
            if previous is None:
                messages.success(request, f"Representante {representative.name} agregado.")
            elif previous.name != representative.name:
                messages.success(
                    request, f"Representante {representative.name} reactivado (antes figuraba como {previous.name})."
                )
            else:
                messages.success(request, f"Representante {representative.name} reactivado.")
            return redirect("staff:settings", tenant_slug=membership.tenant.slug)
    return _settings_page(request, membership, representative_form=form)


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def representative_deactivate(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    """Stop authorizing a representative in new jobs (refused for the last active one)."""
    representative = representative_or_404(membership, representative_id)
    try:
        services.representative_deactivate(representative=representative, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{representative.name} ya no se autorizará en nuevas solicitudes.")
    return redirect("staff:settings", tenant_slug=membership.tenant.slug)


@staff_view(methods=("POST",), access_check=access.owner_membership_or_404)
def representative_reactivate(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    """Authorize a deactivated representative again in new jobs."""
    representative = representative_or_404(membership, representative_id)
    try:
        services.representative_reactivate(representative=representative, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{representative.name} vuelve a estar vigente.")
    return redirect("staff:settings", tenant_slug=membership.tenant.slug)


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def permissions_sync(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Clients whose SII permissions differ from the ones the firm requests now; POST ("Actualizar en
    el SII") creates their jobs and emails the clients without a stored certificate."""
    tenant = membership.tenant
    if request.method == "POST":
        report = services.permissions_sync(tenant=tenant, actor=request.user)
        messages.success(
            request,
            f"Actualización solicitada. Trabajos creados: {len(report.jobs)}; clientes a los que se pidió el "
            f"certificado: {len(report.emailed)}; sin cambios por ahora: {len(report.skipped)}.",
        )
        return redirect("staff:dashboard", tenant_slug=tenant.slug)
    affected = list(selectors.companies_with_stale_permissions(tenant=tenant))
    rows = [{"company": c, "certificate_usable": services.company_usable_certificate(company=c) is not None} for c in affected]
    return render(request, "staff/permissions_sync.html", staff_context(membership, "settings", rows=rows))
