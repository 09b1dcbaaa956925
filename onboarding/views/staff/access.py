"""Access checks on demand: an owner or admin asks to verify, with the firm key, the SII access of
every client (from the dashboard) or of one (from its pages); both POST, then back where they were.
And the schedule (owners): every how many days the checks run by themselves."""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from onboarding import access, services
from onboarding.forms.access import AccessCheckIntervalForm
from onboarding.models import AccessCheckItem, Membership
from onboarding.views.staff.common import company_or_404, dashboard_url, staff_context, staff_view


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


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def access_check_schedule(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Every how many days the firm's access to every client is verified (0: only on demand)."""
    tenant = membership.tenant
    if request.method == "POST":
        form = AccessCheckIntervalForm(request.POST)
        if form.is_valid():
            try:
                changed = services.tenant_access_check_interval_set(
                    tenant=tenant, days=form.cleaned_data["dias"], actor=request.user
                )
            except services.ServiceError as error:
                form.add_error("dias", error.message)
            else:
                messages.success(request, "Configuración guardada." if changed else "No había cambios que guardar.")
                return redirect("staff:access_check_schedule", tenant_slug=tenant.slug)
    else:
        form = AccessCheckIntervalForm(initial={"dias": tenant.access_check_interval_days})
    context = staff_context(membership, "settings", form=form, interval=tenant.access_check_interval_days,
                            last_scheduled=tenant.access_check_scheduled_at)
    return render(request, "staff/access_check_schedule.html", context)
