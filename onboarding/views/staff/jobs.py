"""One job's pages: its detail (timeline, evidence, attempts), the evidence itself, re-run, retry now,
and asking the client for a new certificate.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django_htmx.http import HttpResponseClientRefresh

from onboarding import access, selectors, services
from onboarding.domain import display
from onboarding.models import ArtifactKind, EnrollmentJob, JobStatus, Membership, Relationship
from onboarding.selectors import claims as claim_selectors
from onboarding.views.staff.common import POLL_EVERY, company_or_404, dashboard_url, staff_context, staff_view

# Spanish names of the statuses of the timeline's lines ("info" lines show none).
EVENT_STATUS_LABELS: dict[str, str] = {
    "info": "",
    "started": "En curso",
    "done": "Listo",
    "ok": "Listo",
    "succeeded": "Listo",
    "failed": "Con error",
    "skipped": "Omitido",
}


def _timeline_items(job: EnrollmentJob, events: list[Any]) -> list[dict[str, Any]]:
    """The job's timeline lines (`job_step_timings`) with Spanish labels, the failure's sentence said
    once (it is shown in the failure box above, so lines repeat only what is new: "Reintento 2 de 3,
    en unos 4 min."), and a last line for how the job ended."""
    lines = selectors.job_step_timings(events=events)
    shown: set[str] = {job.failure_message} if job.failure_message else set()
    items = []
    for index, line in enumerate(lines):
        message = "" if line.step == "finished" else display.message_once(line.message, shown)
        status = line.status
        if status == "started" and line.ended_at is None and (index < len(lines) - 1 or job.status != JobStatus.RUNNING):
            # The run stopped while this step was in flight (a failure, then a retry or the end): it did
            # not finish, as the client's page says too, however long the job keeps waiting.
            status = "done" if index == len(lines) - 1 and job.status == JobStatus.SUCCEEDED else "failed"
        items.append(
            {
                "line": line,
                "label": display.step_label(line.step),
                "status": status,
                "status_label": EVENT_STATUS_LABELS.get(status, status),
                "message": message,
            }
        )
    if job.is_finished and job.finished_at and not any(line.step == "finished" for line in lines):
        previous = lines[-1] if lines else None
        status = "failed" if job.status == JobStatus.FAILED else "done"
        end = selectors.JobStepTiming(
            step="finished", status=status, at=job.finished_at, ended_at=None, duration=None,
            since_previous=(job.finished_at - (previous.ended_at or previous.at)) if previous else None,
            message="", events=[],
        )
        items.append(
            {"line": end, "label": display.step_label("finished"), "status": status,
             "status_label": EVENT_STATUS_LABELS[status], "message": ""}
        )
    return items


@staff_view()
def job_detail(request: HttpRequest, membership: Membership, job_id: Any) -> HttpResponse:
    """One attempt: timeline with durations, evidence, the SII's result or the failure, all attempts.

    While the job is queued or running the live section polls this URL; an htmx request gets only
    that section (without the trigger once the job has finished).
    """
    job = access.staff_job_or_404(membership=membership, job_id=job_id)
    if request.htmx and job.is_finished:
        # The poll saw the end: reload the whole page so the evidence, the attempts and the
        # re-run button appear too (the reloaded page no longer polls).
        return HttpResponseClientRefresh()
    events = list(selectors.job_events(job=job))
    attempts = list(selectors.job_attempts(job=job).select_related("created_by", "claim"))
    numbers = display.kind_attempt_numbers(attempts)
    later_success = selectors.job_later_success(job=job, attempts=attempts)
    certificate_usable = bool(job.certificate and job.certificate.is_usable)
    has_rerun = selectors.job_has_rerun(job=job)
    # A failed attempt nobody can retry because its certificate is gone: the client must send another.
    certificate_needed = (
        job.status == JobStatus.FAILED and not certificate_usable and not has_rerun
        and job.company.relationship != Relationship.ENDED
        and attempts[0].pk == job.pk  # only the client's latest attempt: a later one supersedes it
    )
    context = staff_context(
        membership,
        "dashboard",
        job=job,
        job_label=display.attempt_label(kind=job.kind, number=numbers.get(job.pk, job.attempt)),
        rerun_of_label=(
            display.attempt_label(kind=job.rerun_of.kind, number=numbers.get(job.rerun_of_id, job.rerun_of.attempt))
            if job.rerun_of_id and job.rerun_of
            else ""
        ),
        next_label=display.attempt_label(kind=job.kind, number=sum(a.kind == job.kind for a in attempts) + 1),
        kind_noun=display.job_kind_noun(job.kind).lower(),
        timeline=_timeline_items(job, events),
        total_duration=(job.finished_at - job.started_at) if job.finished_at and job.started_at else None,
        artifacts=[
            {"artifact": artifact, "label": display.step_label(artifact.step)} for artifact in selectors.job_artifacts(job=job)
        ],
        # Everyone who registered the company themselves, and who was proven its owner (CompanyClaim).
        claims=claim_selectors.company_claim_list(tenant=membership.tenant, company_id=job.company_id),
        attempts=[
            {"job": attempt, "label": display.attempt_label(kind=attempt.kind, number=numbers[attempt.pk])}
            for attempt in attempts
        ],
        later_success=later_success,
        later_success_label=(
            display.attempt_label(kind=later_success.kind, number=numbers[later_success.pk]) if later_success else ""
        ),
        has_rerun=has_rerun,
        certificate_usable=certificate_usable,
        certificate_needed=certificate_needed,
        # When the client was asked for it, if recently enough that asking again would be refused.
        certificate_asked_at=selectors.certificate_requests_since(
            tenant=membership.tenant, company_ids=[job.company_id],
            since=timezone.now() - timedelta(hours=services.CERTIFICATE_REQUEST_EVERY_HOURS),
        ).get(job.company_id) if certificate_needed else None,
        # What the last access check found, on the page of the company's latest job only.
        company_access=(
            selectors.company_access_view(company=job.company)
            if all(attempt.attempt <= job.attempt for attempt in attempts)
            else None
        ),
        retry_now=selectors.job_retry_now_state(job=job),
        # When the automatic retry runs, while it is still ahead.
        retry_at=(
            job.run_after
            if job.status == JobStatus.QUEUED and job.run_after and job.run_after > timezone.now()
            else None
        ),
        result=job.result if isinstance(job.result, dict) else None,
        poll_every=POLL_EVERY,
    )
    if request.htmx:
        response = render(request, "staff/_job_live.html", context)
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "staff/job_detail.html", context)


@staff_view()
def job_artifact(request: HttpRequest, membership: Membership, job_id: Any, artifact_id: Any) -> HttpResponse:
    """Decrypt one piece of evidence for this tenant's member: a PNG inline, or the SII page's HTML
    as text/plain (`?descargar=1` as an attachment) — never rendered as live HTML on our origin."""
    job = access.staff_job_or_404(membership=membership, job_id=job_id)
    artifact = selectors.job_artifact_get(job=job, artifact_id=artifact_id)
    if artifact is None:
        raise Http404
    content = services.job_artifact_open(artifact=artifact)
    stamp = timezone.localtime(artifact.created_at).strftime("%Y%m%d-%H%M%S")
    base_name = f"intento{job.attempt}-{artifact.step}-{stamp}"
    if artifact.kind == ArtifactKind.SCREENSHOT:
        response = HttpResponse(content, content_type="image/png")
        response["Content-Disposition"] = f'inline; filename="{base_name}.png"'
    else:
        response = HttpResponse(content, content_type="text/plain; charset=utf-8")
        disposition = "attachment" if request.GET.get("descargar") else "inline"
        response["Content-Disposition"] = f'{disposition}; filename="{base_name}.html.txt"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser ignored the type, the page would run with no scripts, forms or origin.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    return response


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def job_rerun(request: HttpRequest, membership: Membership, job_id: Any) -> HttpResponse:
    """Re-run one failed job (owners and admins); go to the new attempt, or back with the reason."""
    job = access.staff_job_or_404(membership=membership, job_id=job_id)
    try:
        new_job = services.enrollment_job_rerun(job=job, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
        return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=job.pk)
    label = display.attempt_label(kind=new_job.kind, number=selectors.job_kind_number(job=new_job))
    messages.success(request, f"Reintento en cola: {label} de {display.sentence_end(job.company.legal_name)}")
    return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=new_job.pk)


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def job_retry_now(request: HttpRequest, membership: Membership, job_id: Any) -> HttpResponse:
    """Run a job's scheduled automatic retry now (owners and admins), or say why not (the SII's
    minimum wait after some failures, or the job no longer waiting)."""
    job = access.staff_job_or_404(membership=membership, job_id=job_id)
    try:
        services.enrollment_job_retry_now(job=job, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        noun = selectors.job_wording(job=job).noun
        messages.success(request, f"Reintentando ahora {noun} de {display.sentence_end(job.company.legal_name)}")
    return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=job.pk)


@staff_view(methods=("POST",), access_check=access.rerun_membership_or_404)
def company_certificate_request(request: HttpRequest, membership: Membership, company_id: int) -> HttpResponse:
    """E-mail a client a link to upload a new certificate (owners and admins; at most once every
    few hours per client), then go back to the page the button was on."""
    company = company_or_404(membership, company_id)
    try:
        services.company_certificate_request(company=company, actor=request.user)
    except services.ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"Le pedimos a {company.owner_email} un nuevo certificado para {display.sentence_end(company.legal_name)}"
        )
    job_id = selectors.parse_uuid(request.POST.get("trabajo", ""))
    if job_id is not None:  # the button on a job's page: back to it
        return redirect("staff:job_detail", tenant_slug=membership.tenant.slug, job_id=job_id)
    return redirect(dashboard_url(membership, request.POST.get("volver", "")))
