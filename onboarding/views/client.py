"""Views of the client side: signup, the company page, the certificate wizard (upload → review →
consent), the live status page of a job, and password reset.

Thin views: reads come from `onboarding.selectors.client`, writes from `onboarding.services`. A
company or job that is not the user's own — another client's, another firm's, or one that does not
exist — is a 404, also for anonymous visitors (who are offered the login page on it).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from onboarding import access, services, session_auth, throttle
from onboarding.forms.client import (
    CertificateUploadForm,
    ClientSetPasswordForm,
    ConsentForm,
    InMemoryCertificateUploadHandler,
    SignupForm,
)
from onboarding.forms.common import ResetRequestForm
from onboarding.models import Certificate, ClaimStatus, ClientCompany, CompanyClaim, EnrollmentJob, JobStatus
from onboarding.selectors import changes as change_selectors  # services.changes
from onboarding.selectors import client as client_selectors
from onboarding.selectors import core as core_selectors
from onboarding.selectors.readiness import certificate_readiness_for
from onboarding.services.claims import claim_lost_message
from onboarding.services.core import ServiceError
from sii_bot.certificates import CertificateError

__all__ = [
    "PasswordResetCompleteView",
    "PasswordResetConfirmView",
    "PasswordResetDoneView",
    "PasswordResetView",
    "certificate_delete",
    "certificate_review",
    "certificate_upload",
    "client_company_or_404",
    "company_detail",
    "consent",
    "job_certificate_delete",
    "job_detail",
    "job_status",
    "signup",
]

# Told to a client who registers a company someone else already registered with the firm (CompanyClaim).
COMPETING_NOTE = (
    "Otra persona ya había registrado esta empresa con {tenant}. Quedará como dueña de la empresa en "
    "Autoriza la primera persona que complete la autorización en el SII con el certificado digital de "
    "un representante legal o administrador de la empresa."
)
# How long a rendered status partial is kept (keyed by its ETag: never stale, only evicted).
JOB_STATUS_CACHE_SECONDS = 600


# --- Access ---------------------------------------------------------------------------------------


def client_company_or_404(
    *, user: AbstractBaseUser | AnonymousUser, company_id: object
) -> tuple[ClientCompany, CompanyClaim | None]:
    """The company if `user` owns or claims it, with `user`'s claim on it (None for an owner without
    one), else Http404 — the same rule as `access.client_job_or_404`: another client's or another
    firm's company is indistinguishable from one that does not exist. For an unproven claimant the
    company is their display copy (`client_selectors.client_company_get`)."""
    company = client_selectors.client_company_get(user=user, company_id=company_id)
    if company is None:
        raise Http404
    return company, client_selectors.client_claim_get(company=company, user=user)


def _client_certificate_or_404(*, company: ClientCompany, claim: CompanyClaim | None, certificate_id: object) -> Certificate:
    certificate = client_selectors.client_certificate_get(company=company, certificate_id=certificate_id, claim=claim)
    if certificate is None:
        raise Http404
    return certificate


def _claim_lost(claim: CompanyClaim | None) -> bool:
    return claim is not None and claim.status == ClaimStatus.LOST


def _claim_pending(claim: CompanyClaim | None) -> CompanyClaim | None:
    """The claim new certificates and jobs belong to: a pending one; None once the user owns the company."""
    return claim if claim is not None and claim.status == ClaimStatus.PENDING else None


def _not_found_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Render our own 404 page (with a way to log in for anonymous visitors) for client URLs."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return render(request, "client/not_found.html", {"next": request.get_full_path()}, status=404)

    return wrapper


# --- Signup ---------------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@sensitive_post_parameters("password")
def signup(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The firm's public signup page; with `?invitacion=<token>` it completes an invitation."""
    tenant = client_selectors.tenant_get_by_slug(slug=tenant_slug)
    if tenant is None:
        raise Http404
    token = request.GET.get("invitacion", "").strip()
    invitation = services.invitation_from_token(token=token, tenant=tenant) if token else None
    if invitation is None and token:
        # Back after signing up by invitation: the link is spent, but it was this user who spent it.
        used = client_selectors.invitation_company_used_by(token=token, tenant=tenant, user=request.user)
        if used is not None:
            return redirect("client:company", company_id=used.pk)
    with_account = not request.user.is_authenticated
    if request.method == "POST":
        form = SignupForm(request.POST, with_account=with_account)
        if form.is_valid():
            data = form.cleaned_data
            try:
                signup = services.client_signup(
                    tenant=tenant,
                    rut=data["company_rut"],
                    legal_name=data["legal_name"],
                    owner_name=data["owner_name"],
                    email=data.get("email", ""),
                    password=data.get("password", ""),
                    user=request.user if not with_account else None,
                    invitation=invitation,
                )
            except ServiceError as error:
                field = {
                    "email_taken": "email" if with_account else None,
                    "company_exists": "company_rut",
                    "invitation_rut_mismatch": "company_rut",
                }.get(error.code)
                form.add_error(field, error.message)
            else:
                if with_account:
                    login(request, signup.user)
                messages.success(request, f"Listo: registramos {data['legal_name']}. Ahora suba su certificado digital.")
                if signup.competing:
                    messages.info(request, COMPETING_NOTE.format(tenant=tenant.name))
                return redirect("client:certificate_upload", company_id=signup.company.pk)
    else:
        initial: dict[str, str] = {}
        if invitation is not None:
            initial = {
                "company_rut": invitation.company.rut,
                "legal_name": invitation.company.legal_name,
                "owner_name": invitation.name or invitation.company.owner_name,
                "email": invitation.email,
            }
        form = SignupForm(initial=initial, with_account=with_account)
    representative = client_selectors.representative_active(tenant=tenant)
    return render(
        request,
        "client/signup.html",
        {
            "tenant": tenant,
            "form": form,
            "invitation": invitation,
            "invitation_invalid": bool(token) and invitation is None,
            "representative": representative,
            "representative_rut": client_selectors.rut_display(representative.rut) if representative else "",
            "with_account": with_account,
        },
    )


# --- The company page -----------------------------------------------------------------------------


@require_GET
@_not_found_page
def company_detail(request: HttpRequest, company_id: int) -> HttpResponse:
    """Where the company stands: its latest job (with a link to the status page) or the wizard."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    latest = client_selectors.client_job_latest(company=company, claim=claim)
    # Not the certificate the latest attempt just failed with because of the certificate or its holder.
    certificate = client_selectors.client_certificate_offerable(company=company, latest=latest, claim=claim)
    representative = client_selectors.representative_active(tenant=company.tenant)
    # Nothing left to do (already authorized as the firm asks, or the relationship ended)?
    settled = client_selectors.client_company_settled(company=company)
    lost = _claim_lost(claim)
    return render(
        request,
        "client/company.html",
        {
            "company": company,
            "company_rut": client_selectors.rut_display(company.rut),
            "latest": latest,
            "latest_old_user_rut": client_selectors.rut_display(latest.old_user_rut) if latest is not None else "",
            "certificate": certificate,
            "representative": representative,
            "representative_rut": client_selectors.rut_display(representative.rut) if representative else "",
            "settled": settled,
            # Another claimant was proven first (CompanyClaim): the page says so and offers nothing.
            "claim_lost": claim_lost_message(tenant=company.tenant) if lost else "",
            "claim_competing": _claim_pending(claim) is not None and client_selectors.claim_has_rivals(claim=claim),
            # A new attempt makes sense before the first one and after a failure, never during one,
            # and never when the SII already holds what the firm asks for or the relationship ended.
            "can_start": (latest is None or latest.status == JobStatus.FAILED) and settled is None and not lost,
            # A revocation or change of representative waiting for the client (services.changes).
            "pending_change": (
                change_selectors.change_consent_terms(company=company)
                if (latest is None or latest.is_finished) and not lost
                else None
            ),
        },
    )


# --- The certificate wizard -----------------------------------------------------------------------


def _active_job_redirect(request: HttpRequest, company: ClientCompany, claim: CompanyClaim | None) -> HttpResponse | None:
    """To the page of the user's queued or running job for the company (with a note), or None."""
    active = client_selectors.client_job_active(company=company, claim=claim)
    if active is None:
        return None
    wording = client_selectors.job_wording(job=active)
    messages.info(request, f"Ya hay {wording.indefinite} en curso para esta empresa: aquí puede ver su avance.")
    return redirect("client:job", job_id=active.pk)


def _settled_redirect(request: HttpRequest, company: ClientCompany, claim: CompanyClaim | None) -> HttpResponse | None:
    """To the company page (with a note) when the company needs no certificate any more — the SII
    already holds what the firm asks for, the relationship ended, or another claimant of it was
    proven first — else None."""
    if _claim_lost(claim):
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
    terms = change_selectors.change_consent_terms(company=company)
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
@_not_found_page
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
                    uploaded_by=request.user, claim=_claim_pending(claim),
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
            "company_rut": client_selectors.rut_display(company.rut),
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
    certificate = _client_certificate_or_404(company=company, claim=claim, certificate_id=certificate_id)
    if _claim_lost(claim):
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
@_not_found_page
def certificate_review(request: HttpRequest, company_id: int, certificate_id: str) -> HttpResponse:
    """Step 2: what the certificate says (holder, RUT, issuer, validity, fingerprint) and whether the
    SII will take it (`certificate_readiness_for`). A certificate with an error finding is erased
    (at upload, or here if it became one since, e.g. it expired) and the client cannot continue."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    certificate = _client_certificate_or_404(company=company, claim=claim, certificate_id=certificate_id)
    if certificate.destroy_reason != services.CERTIFICATE_NOT_READY or _claim_lost(claim):
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
            "company_rut": client_selectors.rut_display(company.rut),
            "certificate": certificate,
            "holder_rut": client_selectors.rut_display(certificate.holder_rut),
            "readiness": readiness,
            "erased": not certificate.is_usable,
            "in_active_job": in_active_job,
            "step": 2,
            "wizard_kind": _wizard_kind(company),
        },
    )


@require_http_methods(["GET", "POST"])
@_not_found_page
def consent(request: HttpRequest, company_id: int, certificate_id: str) -> HttpResponse:
    """Step 3: who will be authorized, with which permissions, in which company; the consent
    checkbox; on POST the job is created and the client goes to its status page."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    certificate = _usable_certificate_or_redirect(request, company, claim, certificate_id)
    if isinstance(certificate, HttpResponse):
        return certificate
    service_error: ServiceError | None = None
    terms = client_selectors.consent_terms(company=company, retention_days=settings.AUTORIZA_CERT_RETENTION_DAYS)
    # Revocation / change of representative (services.changes): the consent then removes someone.
    change_terms = change_selectors.change_consent_terms(company=company)
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
                terms = client_selectors.consent_terms(company=company, retention_days=settings.AUTORIZA_CERT_RETENTION_DAYS)
                change_terms = change_selectors.change_consent_terms(company=company)
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
            "holder_rut": client_selectors.rut_display(certificate.holder_rut),
            "terms": terms,
            "form": form,
            "service_error": service_error,
            "active_job": active_job,
            "step": 3,
            "wizard_kind": change_terms.kind if change_terms is not None else "authorize",
        },
    )


@require_POST
@_not_found_page
def certificate_delete(request: HttpRequest, company_id: int, certificate_id: str) -> HttpResponse:
    """Erase a stored certificate that no authorization in progress needs."""
    company, claim = client_company_or_404(user=request.user, company_id=company_id)
    certificate = _client_certificate_or_404(company=company, claim=claim, certificate_id=certificate_id)
    try:
        services.client_certificate_delete(certificate=certificate, actor=request.user)
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Eliminamos su certificado digital de nuestros sistemas.")
    return redirect("client:certificate_upload", company_id=company.pk)


@require_http_methods(["GET", "POST"])
@_not_found_page
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
            "wording": client_selectors.job_wording(job=job),
            "company_rut": client_selectors.rut_display(job.company.rut),
        },
    )


# --- The status page ------------------------------------------------------------------------------


def _job_status_context(job: EnrollmentJob, etag: str) -> dict[str, Any]:
    """What the status partial shows; one query (the events) beyond the job itself."""
    events = list(core_selectors.job_events(job=job))
    timeline = client_selectors.job_timeline(job=job, events=events)
    return {
        "job": job,
        "etag": etag,
        "timeline": timeline,
        # Titles and badge in the job's own terms: an authorization, a removal or a replacement.
        "wording": client_selectors.job_wording(job=job),
        "result": client_selectors.job_result_view(job=job),
        "advice": client_selectors.job_failure_advice(job=job),
        "company_rut": client_selectors.rut_display(job.company.rut),
        "user_rut": client_selectors.rut_display(job.user_rut),
        "old_user_rut": client_selectors.rut_display(job.old_user_rut),
        "step_total": len(timeline.steps),
        # What is kept of the certificate after a failure, until when, and how to delete it now.
        "retention": (
            client_selectors.certificate_retention(certificate=job.certificate)
            if job.status == JobStatus.FAILED
            else None
        ),
    }


def _no_store_revalidate(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    # The browser may keep the partial but must ask every time (and only for this user).
    patch_cache_control(response, private=True, no_cache=True)
    return response


@require_GET
@_not_found_page
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    """The live status page of one job (polls its partial while the job is not finished)."""
    job = access.client_job_or_404(user=request.user, job_id=job_id)
    etag = client_selectors.job_status_etag(job=job)
    context = _job_status_context(job, etag)
    context["certificate_upload_url"] = reverse("client:certificate_upload", kwargs={"company_id": job.company_id})
    claim = client_selectors.client_claim_get(company=job.company, user=request.user) if job.claim_id else None
    context["claim_lost"] = claim_lost_message(tenant=job.tenant) if _claim_lost(claim) else ""
    # Attempts are counted per kind for people: a first removal is not "Intento 2".
    context["kind_number"] = core_selectors.job_kind_number(job=job)
    return render(request, "client/job.html", context)


@require_GET
@_not_found_page
def job_status(request: HttpRequest, job_id: str) -> HttpResponse:
    """The status partial htmx polls: 304 Not Modified while nothing changed, else the timeline/result
    (rendered once per ETag and cached). A poll by the job's owner costs at most two statements — the
    session (none when sessions are cached) and the job's ETag with the owner's credentials — and
    never loads the user (see `_job_status_etag`)."""
    etag = _job_status_etag(request, job_id)
    if etag is None:
        raise Http404
    not_modified = get_conditional_response(request, etag=etag)
    if not_modified is not None:
        return _no_store_revalidate(not_modified, etag)
    # The ETag names the partial's content exactly, so one rendering serves every poll of this job
    # until something changes (the key is only reached after the ownership check above). A job that
    # moves on between the two reads is only ever newer than its key, and keys never come back.
    body = cache.get(f"job-status:{etag}")
    if body is None:
        job = access.client_job_or_404(user=request.user, job_id=job_id)
        context = _job_status_context(job, etag)
        context["certificate_upload_url"] = reverse("client:certificate_upload", kwargs={"company_id": job.company_id})
        body = render_to_string("client/_job_status.html", context, request)
        cache.set(f"job-status:{etag}", body, JOB_STATUS_CACHE_SECONDS)
    return _no_store_revalidate(HttpResponse(body), etag)


def _job_status_etag(request: HttpRequest, job_id: str) -> str | None:
    """The job's status ETag if the request's user owns it, else None (→ 404).

    The owner's poll is answered from one statement that also returns the owner's password hash and
    active flag, checked against the session with Django's own rules (`session_auth`): the same
    verdict `request.user` would give, without its user query. Whatever that check cannot confirm —
    anonymous, another user's job, a stale session hash that Django must flush or rotate — goes
    through `request.user`, exactly as any other view."""
    claim = session_auth.session_claim(request)
    if claim is not None:
        poll = client_selectors.job_status_poll_get(job_id=job_id, owner_id=claim.user_id)
        if poll is not None and session_auth.session_claim_verified(
            claim, password=poll.owner_password, is_active=poll.owner_is_active
        ):
            return poll.etag
    return client_selectors.job_status_etag_for_owner(user=request.user, job_id=job_id)


# --- Password reset (Django's views, our templates and URL names) ---------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, throttled per client address and briefly per e-mail so nobody can flood an
    inbox with it; a refused request gets the form back (429) saying why and for how long, never the
    "we sent you an e-mail" page."""

    template_name = "registration/password_reset_form.html"
    form_class = ResetRequestForm
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("client:password_reset_done")

    def form_valid(self, form: Any) -> HttpResponse:
        email = form.cleaned_data["email"]
        refusal = throttle.reset_request_admit(request=self.request, email=email)
        if refusal is not None:
            return self.render_to_response(self.get_context_data(form=form, extra_error=refusal.message), status=429)
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    form_class = ClientSetPasswordForm
    success_url = reverse_lazy("client:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "registration/password_reset_complete.html"


# --- Ending the relationship (services.changes) ------------------------------------------------------


@require_http_methods(["GET", "POST"])
@_not_found_page
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
            "company_rut": client_selectors.rut_display(company.rut),
            "holder_name": services.changes._sii_user_name(company) if company.sii_user_rut else "",
            "holder_rut": client_selectors.rut_display(company.sii_user_rut),
        },
    )
