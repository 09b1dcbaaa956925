"""Invitations: the list (status, resend, revoke), inviting one client, and the CSV import."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from onboarding import selectors, services
from onboarding.domain.display import sentence_end
from onboarding.forms.staff import PAGE_SIZE, InvitationCsvForm, InvitationForm
from onboarding.models import Membership
from onboarding.views.staff.common import staff_context, staff_view


def _invitations_page(request: HttpRequest, membership: Membership, **forms: Any) -> HttpResponse:
    invitations = selectors.invitation_list(tenant=membership.tenant)
    page = Paginator(invitations, PAGE_SIZE).get_page(request.GET.get("pagina"))
    now = timezone.now()
    rows = [{"invitation": inv, "status": selectors.invitation_status(inv, now=now)} for inv in page.object_list]
    context = staff_context(
        membership,
        "invitations",
        page=page,
        rows=rows,
        form=forms.get("form") or InvitationForm(),
        csv_form=forms.get("csv_form") or InvitationCsvForm(),
        ttl_days=services.INVITATION_TTL_DAYS,
    )
    return render(request, "staff/invitations.html", context, status=forms.get("status", 200))


@staff_view(methods=("GET", "POST"))
def invitations(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The invitations sent (status, resend, revoke) and the forms to invite one client or a CSV."""
    if request.method != "POST":
        return _invitations_page(request, membership)
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.invitation_create(
                tenant=membership.tenant,
                rut=form.cleaned_data["rut"],
                legal_name=form.cleaned_data["razon_social"],
                contact_name=form.cleaned_data["nombre"],
                email=form.cleaned_data["email"],
                actor=request.user,
            )
        except services.ServiceError as error:
            form.add_error("rut" if error.code in ("company_exists", "invalid_rut") else None, error.message)
        else:
            if invitation.sent_at:
                messages.success(request, f"Invitación enviada a {invitation.email} para {sentence_end(invitation.company.legal_name)}")
            else:
                messages.warning(
                    request,
                    f"Registramos la invitación de {invitation.company.legal_name}, pero el correo no se pudo "
                    "enviar: use «Reenviar» en unos minutos.",
                )
            return redirect("staff:invitations", tenant_slug=membership.tenant.slug)
    return _invitations_page(request, membership, form=form, status=200)


@staff_view(methods=("GET", "POST"))
def invitations_import(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Invite from a CSV file and show, row by row, who was invited and why the others were not."""
    if request.method != "POST":
        return redirect("staff:invitations", tenant_slug=membership.tenant.slug)
    csv_form = InvitationCsvForm(request.POST, request.FILES)
    if not csv_form.is_valid():
        return _invitations_page(request, membership, csv_form=csv_form)
    report = services.invitations_import_csv(
        tenant=membership.tenant, content=csv_form.cleaned_data["archivo"], actor=request.user
    )
    if report.file_error:
        csv_form.add_error("archivo", report.file_error)
        return _invitations_page(request, membership, csv_form=csv_form)
    return render(request, "staff/invitations_import_report.html", staff_context(membership, "invitations", report=report))


@staff_view(methods=("POST",))
def invitation_resend(request: HttpRequest, membership: Membership, invitation_id: int) -> HttpResponse:
    """Send an open (or expired) invitation again, with a new expiry."""
    invitation = selectors.invitation_get(tenant=membership.tenant, invitation_id=invitation_id)
    if invitation is None:
        raise Http404
    try:
        services.invitation_resend(invitation=invitation, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitación reenviada a {invitation.email}.")
    return redirect("staff:invitations", tenant_slug=membership.tenant.slug)


@staff_view(methods=("POST",))
def invitation_revoke(request: HttpRequest, membership: Membership, invitation_id: int) -> HttpResponse:
    """Revoke an invitation: its link stops working at once."""
    invitation = selectors.invitation_get(tenant=membership.tenant, invitation_id=invitation_id)
    if invitation is None:
        raise Http404
    try:
        services.invitation_revoke(invitation=invitation, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitación a {invitation.email} revocada: el enlace ya no funciona.")
    return redirect("staff:invitations", tenant_slug=membership.tenant.slug)
