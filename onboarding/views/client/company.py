"""The company page, and the client ending the relationship with the firm (services.changes)."""
from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from onboarding import services
from onboarding.domain.display import rut_display
from onboarding.domain.rules import sii_user_name
from onboarding.models import ClaimStatus, JobStatus
from onboarding.selectors import client as client_selectors
from onboarding.selectors import consent as consent_selectors
from onboarding.services.claims import claim_lost_message
from onboarding.services.errors import ServiceError
from onboarding.views.client.common import claim_lost, claim_pending, client_company_or_404, not_found_page


@require_GET
@not_found_page
def company_detail(request: HttpRequest, company_id: int) -> HttpResponse:
    """Where the company stands: its latest job (with a link to the status page) or the wizard."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    latest = client_selectors.client_job_latest(company=company, claim=claim)
    # Not the certificate the latest attempt just failed with because of the certificate or its holder.
    certificate = client_selectors.client_certificate_offerable(company=company, latest=latest, claim=claim)
    representative = client_selectors.representative_active(tenant=company.tenant)
    # Nothing left to do (already authorized as the firm asks, or the relationship ended)?
    settled = client_selectors.client_company_settled(company=company)
    lost = claim_lost(claim)
    return render(
        request,
        "client/company.html",
        {
            "company": company,
            "company_rut": rut_display(company.rut),
            "latest": latest,
            "latest_old_user_rut": rut_display(latest.old_user_rut) if latest is not None else "",
            "certificate": certificate,
            "representative": representative,
            "representative_rut": rut_display(representative.rut) if representative else "",
            "settled": settled,
            # Another claimant was proven first (CompanyClaim): the page says so and offers nothing.
            "claim_lost": claim_lost_message(tenant=company.tenant) if lost else "",
            "claim_competing": claim_pending(claim) is not None and client_selectors.claim_has_rivals(claim=claim),
            # A new attempt makes sense before the first one and after a failure, never during one,
            # and never when the SII already holds what the firm asks for or the relationship ended.
            "can_start": (latest is None or latest.status == JobStatus.FAILED) and settled is None and not lost,
            # A revocation or change of representative needs this client's consent before it can run.
            "pending_change": (
                consent_selectors.change_consent_terms(company=company)
                if (latest is None or latest.is_finished) and not lost
                else None
            ),
        },
    )


@require_http_methods(["GET", "POST"])
@not_found_page
def company_end(request: HttpRequest, company_id: int) -> HttpResponse:
    """The client ends the relationship with the firm: GET says exactly who will be removed from the
    company's SII account; POST ends it (a job now if the certificate is still stored, else the
    client is sent to upload it and consents on the next screen)."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    if claim is not None and claim.status != ClaimStatus.WON:
        raise Http404  # an unproven claimant has no relationship with the firm to end
    if request.method == "POST":
        try:
            job = services.company_relationship_end(company=company, actor=request.user)
        except ServiceError as error:
            if error.code != "relationship_ending":
                messages.error(request, error.message)
                return redirect("client:company", company_id=company.pk)
            job = None  # already ending and waiting for this client's certificate: go and upload it
        if job is not None:
            return redirect("client:job", job_id=job.pk)
        company.refresh_from_db()
        if company.relationship == "ending":
            messages.info(request, "Para quitar al representante en el SII necesitamos su certificado digital. Súbalo aquí.")
            return redirect("client:certificate_upload", company_id=company.pk)
        messages.success(request, "La relación terminó. No había representante del estudio autorizado en el SII.")
        return redirect("client:company", company_id=company.pk)
    return render(
        request,
        "client/company_end.html",
        {
            "company": company,
            "company_rut": rut_display(company.rut),
            "holder_name": sii_user_name(company) if company.sii_user_rut else "",
            "holder_rut": rut_display(company.sii_user_rut),
        },
    )
