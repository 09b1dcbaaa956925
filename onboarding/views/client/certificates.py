"""Deleting a stored certificate: from the wizard, or ("delete my certificate now") from a job's page."""
from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from onboarding import access, services
from onboarding.domain.display import rut_display
from onboarding.selectors import client as client_selectors
from onboarding.selectors import status as status_selectors
from onboarding.services.errors import ServiceError
from onboarding.views.client.common import client_certificate_or_404, client_company_or_404, not_found_page


@require_POST
@not_found_page
def certificate_delete(request: HttpRequest, company_id: int, certificate_id: str) -> HttpResponse:
    """Erase a stored certificate that no authorization in progress needs."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    certificate = client_certificate_or_404(company=company, claim=claim, certificate_id=certificate_id)
    try:
        services.client_certificate_delete(certificate=certificate, actor=request.user)
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Eliminamos su certificado digital de nuestros sistemas.")
    return redirect("client:certificate_upload", company_id=company.pk)


@require_http_methods(["GET", "POST"])
@not_found_page
def job_certificate_delete(request: HttpRequest, job_id: str) -> HttpResponse:
    """"Delete my certificate now", from a job's page: GET asks for confirmation (saying what is
    kept, until when, and what deleting it means), POST erases it (audited) and goes back to the job."""
    job = access.client_job_or_404(user=request.user, job_id=job_id)
    retention = client_selectors.certificate_retention(certificate=job.certificate)
    if retention is None:
        raise Http404
    if request.method == "POST":
        try:
            erased = services.client_job_certificate_delete(job=job, actor=request.user)
        except ServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                "Eliminamos su certificado digital de nuestros sistemas."
                if erased
                else "Su certificado digital ya no estaba guardado en nuestros sistemas.",
            )
        return redirect("client:job", job_id=job.pk)
    return render(
        request,
        "client/job_certificate_delete.html",
        {
            "job": job,
            "retention": retention,
            "wording": status_selectors.job_wording(job=job),
            "company_rut": rut_display(job.company.rut),
        },
    )
