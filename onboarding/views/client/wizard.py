"""The certificate wizard: upload (step 1) → review (step 2) → consent (step 3), which creates the job."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from onboarding import services
from onboarding.domain.display import rut_display
from onboarding.forms.client import CertificateUploadForm, ConsentForm, InMemoryCertificateUploadHandler
from onboarding.models import Certificate, ClientCompany, CompanyClaim
from onboarding.selectors import client as client_selectors
from onboarding.selectors import consent as consent_selectors
from onboarding.selectors import status as status_selectors
from onboarding.selectors.readiness import certificate_readiness_for
from onboarding.services.claims import claim_lost_message
from onboarding.services.errors import ServiceError
from onboarding.views.client.common import (
    claim_lost,
    claim_pending,
    client_certificate_or_404,
    client_company_or_404,
    not_found_page,
)
from sii_bot.certificates import CertificateError


def _active_job_redirect(request: HttpRequest, company: ClientCompany, claim: CompanyClaim | None) -> HttpResponse | None:
    """To the page of the user's queued or running job for the company (with a note), or None."""
    active = client_selectors.client_job_active(company=company, claim=claim)
    if active is None:
        return None
    wording = status_selectors.job_wording(job=active)
    messages.info(request, f"Ya hay {wording.indefinite} en curso para esta empresa: aquí puede ver su avance.")
    return redirect("client:job", job_id=active.pk)


def _settled_redirect(request: HttpRequest, company: ClientCompany, claim: CompanyClaim | None) -> HttpResponse | None:
    """To the company page (with a note) when the company needs no certificate any more — the SII
    already holds what the firm asks for, the relationship ended, or another claimant of it was
    proven first — else None."""
    if claim_lost(claim):
        messages.warning(request, claim_lost_message(tenant=company.tenant))
        return redirect("client:company", company_id=company.pk)
    settled = client_selectors.client_company_settled(company=company)
    if settled is None:
        return None
    if settled == client_selectors.SETTLED_ENDED:
        messages.info(
            request,
            f"La relación con {company.tenant.name} terminó y no queda nada pendiente en el SII. "
            "No necesita subir su certificado digital.",
        )
    else:
        messages.info(
            request,
            "La autorización de su empresa en el SII ya está lista. No necesita volver a subir su certificado digital.",
        )
    return redirect("client:company", company_id=company.pk)


def _wizard_kind(company: ClientCompany) -> str:
    """What the wizard ends in for `company`: "authorize", or "revoke"/"replace" (services.changes)."""
    terms = consent_selectors.change_consent_terms(company=company)
    return str(terms.kind) if terms is not None else "authorize"


@csrf_exempt
@sensitive_post_parameters("password")
def certificate_upload(request: HttpRequest, company_id: int) -> HttpResponse:
    """Step 1: upload the .pfx/.p12 and its password; opened at once and stored sealed.

    The upload handlers are swapped before anything reads the body (hence csrf_exempt here and
    csrf_protect on the real view, as Django documents) so the file stays in memory.
    """
    request.upload_handlers = [
        InMemoryCertificateUploadHandler(request, max_bytes=settings.AUTORIZA_MAX_CERTIFICATE_BYTES)
    ]
    return _certificate_upload(request, company_id)


# Which field a certificate refusal is shown next to.
_CERTIFICATE_ERROR_FIELD = {"wrong_password": "password", "legacy_disabled": None}


@csrf_protect
@require_http_methods(["GET", "POST"])
@not_found_page
@sensitive_variables("password")
def _certificate_upload(request: HttpRequest, company_id: int) -> HttpResponse:
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    elsewhere = _active_job_redirect(request, company, claim) or _settled_redirect(request, company, claim)
    if elsewhere is not None:
        return elsewhere
    if request.method == "POST":
        form = CertificateUploadForm(request.POST, request.FILES)
        if form.is_valid():
            password = form.cleaned_data["password"]
            try:
                certificate = services.client_certificate_upload(
                    company=company, upload=form.cleaned_data["certificate"], password=password,
                    uploaded_by=request.user, claim=claim_pending(claim),
                )
            except CertificateError as error:
                form.add_error(_CERTIFICATE_ERROR_FIELD.get(error.code, "certificate"), error.message)
            else:
                return redirect("client:certificate_review", company_id=company.pk, certificate_id=certificate.pk)
            finally:
                del password
    else:
        form = CertificateUploadForm()
    return render(
        request,
        "client/wizard_upload.html",
        {
            "company": company,
            "company_rut": rut_display(company.rut),
            "form": form,
            "current": client_selectors.client_certificate_current(company=company, claim=claim),
            # The stored certificate failed the latest attempt (certificate or holder): only "upload another".
            "current_failed": client_selectors.client_certificate_offerable(
                company=company, latest=client_selectors.client_job_latest(company=company, claim=claim), claim=claim
            )
            is None,
            "max_kb": settings.AUTORIZA_MAX_CERTIFICATE_BYTES // 1024,
            "step": 1,
            "wizard_kind": _wizard_kind(company),
        },
    )


def _usable_certificate_or_redirect(
    request: HttpRequest, company: ClientCompany, claim: CompanyClaim | None, certificate_id: object
) -> Certificate | HttpResponse:
    certificate = client_certificate_or_404(company=company, claim=claim, certificate_id=certificate_id)
    if claim_lost(claim):
        return _settled_redirect(request, company, claim)  # type: ignore[return-value] - never None when lost
    if not certificate.is_usable:
        # E.g. Back from the result page: the job erased it, and nothing may be left to do.
        done = _settled_redirect(request, company, claim)
        if done is not None:
            return done
        messages.warning(request, "Ese certificado ya fue eliminado de nuestros sistemas. Suba su certificado para continuar.")
        return redirect("client:certificate_upload", company_id=company.pk)
    return certificate


@require_GET
@not_found_page
def certificate_review(request: HttpRequest, company_id: int, certificate_id: str) -> HttpResponse:
    """Step 2: what the certificate says (holder, RUT, issuer, validity, fingerprint) and whether the
    SII will take it (`certificate_readiness_for`). A certificate with an error finding is erased
    (at upload, or here if it became one since, e.g. it expired) and the client cannot continue."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    certificate = client_certificate_or_404(company=company, claim=claim, certificate_id=certificate_id)
    if certificate.destroy_reason != services.CERTIFICATE_NOT_READY or claim_lost(claim):
        certificate = _usable_certificate_or_redirect(request, company, claim, certificate_id)
        if isinstance(certificate, HttpResponse):
            return certificate
    readiness = certificate_readiness_for(
        facts=certificate, environment=company.tenant.sii_environment, now=timezone.now()
    )
    in_active_job = client_selectors.certificate_in_active_job(certificate=certificate)
    if readiness.blocked and certificate.is_usable:
        services.client_certificate_unready_erase(certificate=certificate, actor=request.user)
    return render(
        request,
        "client/wizard_review.html",
        {
            "company": company,
            "company_rut": rut_display(company.rut),
            "certificate": certificate,
            "holder_rut": rut_display(certificate.holder_rut),
            "readiness": readiness,
            "erased": not certificate.is_usable,
            "in_active_job": in_active_job,
            "step": 2,
            "wizard_kind": _wizard_kind(company),
        },
    )


@require_http_methods(["GET", "POST"])
@not_found_page
def consent(request: HttpRequest, company_id: int, certificate_id: str) -> HttpResponse:
    """Step 3: who will be authorized, with which permissions, in which company; the consent
    checkbox; on POST the job is created and the client goes to its status page."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    certificate = _usable_certificate_or_redirect(request, company, claim, certificate_id)
    if isinstance(certificate, HttpResponse):
        return certificate
    service_error: ServiceError | None = None
    terms = consent_selectors.consent_terms(company=company, retention_days=settings.AUTORIZA_CERT_RETENTION_DAYS)
    # A revocation or a change of representative waits for this client: what they consent to then
    # removes someone from the SII, so the terms must say so.
    change_terms = consent_selectors.change_consent_terms(company=company)
    if change_terms is not None:
        terms = change_terms  # type: ignore[assignment]
    if request.method == "POST":
        form = ConsentForm(request.POST)
        if form.is_valid():
            try:
                job = services.change_consent_give(
                    company=company,
                    certificate=certificate,
                    user=request.user,
                    terms_version=form.cleaned_data["terms_version"],
                )
            except ServiceError as error:
                service_error = error
                # The consent must be given again, on the terms as they are now.
                terms = consent_selectors.consent_terms(company=company, retention_days=settings.AUTORIZA_CERT_RETENTION_DAYS)
                change_terms = consent_selectors.change_consent_terms(company=company)
                if change_terms is not None:
                    terms = change_terms  # type: ignore[assignment]
                form = ConsentForm(initial={"terms_version": terms.version})
            else:
                return redirect("client:job", job_id=job.pk)
    else:
        elsewhere = _active_job_redirect(request, company, claim) or _settled_redirect(request, company, claim)
        if elsewhere is not None:
            return elsewhere
        form = ConsentForm(initial={"terms_version": terms.version})
    active_job = (
        client_selectors.client_job_active(company=company, claim=claim)
        if service_error is not None and service_error.code == "job_already_active"
        else None
    )
    return render(
        request,
        "client/wizard_consent_change.html" if change_terms is not None else "client/wizard_consent.html",
        {
            "company": company,
            "certificate": certificate,
            "holder_rut": rut_display(certificate.holder_rut),
            "terms": terms,
            "form": form,
            "service_error": service_error,
            "active_job": active_job,
            "step": 3,
            "wizard_kind": change_terms.kind if change_terms is not None else "authorize",
        },
    )
