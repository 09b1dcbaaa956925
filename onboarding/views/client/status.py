"""The live status page of a job and the partial it polls (ETag, 304, cached renderings)."""
from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_GET

from onboarding import access, session_auth
from onboarding.domain.display import rut_display
from onboarding.models import EnrollmentJob, JobStatus
from onboarding.selectors import client as client_selectors
from onboarding.selectors import core as core_selectors
from onboarding.selectors import status as status_selectors
from onboarding.services.claims import claim_lost_message
from onboarding.views.client.common import claim_lost, not_found_page

# How long a rendered status partial is kept (keyed by its ETag: never stale, only evicted).
JOB_STATUS_CACHE_SECONDS = 600


def _job_status_context(job: EnrollmentJob, etag: str) -> dict[str, Any]:
    """What the status partial shows; one query (the events) beyond the job itself."""
    events = list(core_selectors.job_events(job=job))
    timeline = status_selectors.job_timeline(job=job, events=events)
    return {
        "job": job,
        "etag": etag,
        "timeline": timeline,
        # Titles and badge in the job's own terms: an authorization, a removal or a replacement.
        "wording": status_selectors.job_wording(job=job),
        "result": status_selectors.job_result_view(job=job),
        "advice": status_selectors.job_failure_advice(job=job),
        "company_rut": rut_display(job.company.rut),
        "user_rut": rut_display(job.user_rut),
        "old_user_rut": rut_display(job.old_user_rut),
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
@not_found_page
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    """The live status page of one job (polls its partial while the job is not finished)."""
    job = access.client_job_or_404(user=request.user, job_id=job_id)
    etag = status_selectors.job_status_etag(job=job)
    context = _job_status_context(job, etag)
    context["certificate_upload_url"] = reverse("client:certificate_upload", kwargs={"company_id": job.company_id})
    claim = client_selectors.client_claim_get(company=job.company, user=request.user) if job.claim_id else None
    context["claim_lost"] = claim_lost_message(tenant=job.tenant) if claim_lost(claim) else ""
    # Attempts are counted per kind for people: a first removal is not "Intento 2".
    context["kind_number"] = core_selectors.job_kind_number(job=job)
    return render(request, "client/job.html", context)


@require_GET
@not_found_page
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
        poll = status_selectors.job_status_poll_get(job_id=job_id, owner_id=claim.user_id)
        if poll is not None and session_auth.session_claim_verified(
            claim, password=poll.owner_password, is_active=poll.owner_is_active
        ):
            return poll.etag
    return status_selectors.job_status_etag_for_owner(user=request.user, job_id=job_id)
