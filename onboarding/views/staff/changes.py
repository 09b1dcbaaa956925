"""Keeping SII authorizations true over time (the writes are in `services/changes.py`): ending the relationship with a client
(staff with the re-run role) and replacing a representative (owners). Permission changes are on the
settings pages (`settings.permissions_sync`).
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from onboarding import access, selectors, services
from onboarding.domain.display import sentence_end
from onboarding.domain.rules import sii_user_name
from onboarding.forms.staff import RepresentativeReplaceForm
from onboarding.models import JobKind, Membership
from onboarding.views.staff.common import company_or_404, representative_or_404, staff_context, staff_view


@staff_view(methods=("GET", "POST"), access_check=access.rerun_membership_or_404)
def company_end(request: HttpRequest, membership: Membership, company_id: int) -> HttpResponse:
    """End the relationship with a client: GET asks for confirmation (who will be removed from the
    SII), POST ends it (a REVOKE job now, or an email asking the client for the certificate)."""
    company = company_or_404(membership, company_id)
    if request.method == "POST":
        try:
            job = services.company_relationship_end(company=company, actor=request.user)
        except services.ServiceError as error:
            messages.error(request, error.message)
        else:
            if job is not None:
                messages.success(request, f"Relación terminada: quitando a {job.user_name} del SII de {sentence_end(company.legal_name)}")
                return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=job.pk)
            company.refresh_from_db()
            if company.relationship == "ended":
                messages.success(request, f"Relación con {company.legal_name} terminada: no había representante autorizado en el SII.")
            else:
                messages.success(
                    request,
                    f"Relación con {company.legal_name} en término: le pedimos al cliente que suba su certificado "
                    "para quitar al representante en el SII.",
                )
        return redirect("staff:dashboard", tenant_slug=membership.tenant.slug)
    holder = services.company_usable_certificate(company=company)
    return render(
        request,
        "staff/company_end.html",
        staff_context(
            membership,
            "dashboard",
            company=company,
            holder_name=sii_user_name(company) if company.sii_user_rut else "",
            certificate_usable=holder is not None,
            # Whether the removal will be made with the key of another representative who administers it.
            firm_key=services.change_firm_key(
                company=company,
                kind=JobKind.REVOKE,
                representative=selectors.representative_get_by_rut(tenant=membership.tenant, rut=company.sii_user_rut),
            )
            if company.sii_user_rut
            else None,
        ),
    )


@staff_view(methods=("GET", "POST"), access_check=access.owner_membership_or_404)
def representative_replace(request: HttpRequest, membership: Membership, representative_id: int) -> HttpResponse:
    """Replace a representative: choose the new one (an active one, or add one), then confirm on a
    page listing the affected clients; confirming creates the REPLACE jobs and emails the rest.

    The choice goes through `services.representative_replace_check` before the confirmation page is
    shown: the old one themself (or an active representative typed instead of chosen) is refused
    there, with the error on the RUT field."""
    tenant = membership.tenant
    old = representative_or_404(membership, representative_id)
    candidates = [rep for rep in selectors.representative_list(tenant=tenant) if rep.is_active and rep.pk != old.pk]
    form = RepresentativeReplaceForm(request.POST if request.method == "POST" else None, candidates=candidates)
    new_rut = str(form.data.get("nuevo_rut", "")).strip()
    new_name = str(form.data.get("nuevo_nombre", "")).strip()
    new = None
    returning = None  # an inactive representative typed as the new one: the replacement reactivates them
    confirming = False
    if form.is_valid():
        new = form.new
        if new is None:
            new_rut, new_name = form.cleaned_data["nuevo_rut"], form.cleaned_data["nuevo_nombre"]
        kwargs: dict[str, Any] = {"tenant": tenant, "old": old, "new": new}
        if new is None:
            kwargs.update(new_rut=new_rut, new_name=new_name)
        confirmed = request.POST.get("confirmar") == "1"
        try:
            if confirmed:
                report = services.representative_replace(**kwargs, actor=request.user)
            else:
                services.representative_replace_check(**kwargs)
        except services.ServiceError as error:
            rut_codes = ("invalid_rut", "same_representative", "already_representative")
            form.add_error("nuevo_rut" if new is None and error.code in rut_codes else None, error.message)
        else:
            if confirmed:
                messages.success(
                    request,
                    f"Representante reemplazado. Trabajos creados: {len(report.jobs)}; clientes a los que se pidió "
                    f"el certificado: {len(report.emailed)}; sin cambios por ahora: {len(report.skipped)}.",
                )
                return redirect("staff:dashboard", tenant_slug=tenant.slug)
            confirming = True
            if new is None:
                returning = selectors.representative_get_by_rut(tenant=tenant, rut=new_rut)
    affected = list(selectors.companies_affected_by_representative(tenant=tenant, representative=old))
    rows = [
        {
            "company": c,
            "certificate_usable": services.company_usable_certificate(company=c) is not None,
            # Only a representative already chosen can have a key; one typed in is added by the replacement.
            "firm_key": new is not None
            and services.change_firm_key(company=c, kind=JobKind.REPLACE, representative=new, old_user_rut=old.rut)
            is not None,
        }
        for c in affected
    ]
    return render(
        request,
        "staff/representative_replace.html",
        staff_context(
            membership,
            "settings",
            old=old,
            candidates=candidates,
            form=form,
            new=new,
            new_rut=new_rut,
            new_name=new_name.upper(),
            returning=returning,
            chosen=request.POST.get("nuevo", ""),
            confirming=confirming,
            rows=rows,
        ),
    )
