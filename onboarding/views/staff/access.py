"""Access checks on demand: an owner or admin asks to verify, with the firm key, the SII access of
every client (from the dashboard) or of one (from its pages). Both POST, then back where they were."""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from onboarding import access, services
from onboarding.models import AccessCheckItem, Membership
from onboarding.views.staff.common import company_or_404, dashboard_url, staff_view


def _back(request: HttpRequest, membership: Membership) -> str:
    """Where the button was: a path of this tenant's firm pages (`volver`), else the dashboard."""
    target = request.POST.get("volver", "")
    prefix = reverse("staff:dashboard", kwargs={"tenant_slug": membership.tenant.slug})
    if target.startswith(prefix) and "//" not in target and "\\" not in target:
        return target
    return dashboard_url(membership, "")


def _queued_message(runs: list) -> str:  # type: ignore[type-arg]
    count = AccessCheckItem.objects.filter(run__in=runs).count()
    clients = "1 cliente" if count == 1 else f"{count} clientes"
    return f"Verificación de acceso en cola para {clients}. El resultado aparecerá en la columna «Verificado»."


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def access_check_all(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Verify the SII access of every authorized client now (owners and admins)."""
    try:
        runs = services.access_check_request(tenant=membership.tenant, company=None, requested_by=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _queued_message(runs))
    return redirect(_back(request, membership))


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def access_check_company(request: HttpRequest, membership: Membership, company_id: int) -> HttpResponse:
    """Verify one client's SII access now (owners and admins); 404 for another tenant's client."""
    company = company_or_404(membership, company_id)
    try:
        runs = services.access_check_request(tenant=membership.tenant, company=company, requested_by=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _queued_message(runs))
    return redirect(_back(request, membership))
