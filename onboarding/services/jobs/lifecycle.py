"""The life of an enrollment job, written once for every kind (AUTHORIZE, REVOKE, REPLACE):
create → claim → progress → succeed | fail (an automatic retry, or for good).

Every transition is one compare-and-set on the job row, guarded by the claim the caller holds (status
RUNNING, this worker, this start): the job's fields, the company's stage and SII state, the certificate
erasure and the audit entry are written in one transaction, or none of them is. What differs per kind
on success is data (`JOB_KIND_OUTCOMES`, `jobs.outcomes`), not branches.

An outcome reported for a job its worker no longer holds (the reaper failed it as lost, another process
took it over, or it was put back in the queue) is a *late* outcome:

- A late success is still the SII's truth. The job becomes SUCCEEDED (a "late_result" event marks it,
  and its audit entry says `"late": true` with the state it replaced); the company is written as for
  any success; and a re-run of this job still waiting in the queue is closed without running, as
  SUCCEEDED with the same confirmation and a "superseded" event: it never reaches the SII, so nothing
  is saved twice. A re-run already running is left to finish (the bot reads the user list first and
  answers "already_authorized"); it keeps the certificate it holds and sets the company's stage when it
  ends.
- A late failure changes nothing newer: it is recorded as a "late_result" event and an audit entry.
"""
from __future__ import annotations

import dataclasses
import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from onboarding.domain.display import attempt_label
from onboarding.domain.rules import (
    CLAIM_LOST_CODE,
    SII_REJECTED_CERTIFICATE_CODES,
    company_permissions,
    permission_flags,
    representative_active,
)
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    ArtifactKind,
    AuditAction,
    Certificate,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    FirmKey,
    JobEvent,
    JobKind,
    JobLane,
    JobStatus,
    Relationship,
    Representative,
)
from onboarding.selectors.core import job_kind_number
from onboarding.services.audit import audit_record
from onboarding.services.certificates import (
    certificate_destroy,
    company_certificates_destroy,
    job_artifact_store,
)
from onboarding.services.claims import claim_is_lost, company_claim_job_check, company_claim_settle
from onboarding.services.errors import ServiceError
from onboarding.services.jobs.dispatch import enrollment_jobs_feed
from onboarding.services.jobs.lanes import enrollment_job_send, job_lane_for
from onboarding.services.jobs.outcomes import (
    JOB_KIND_OUTCOMES,
    RETRIES_EXHAUSTED_MESSAGE,
    WORKER_LOST_MESSAGE,
    JobFailure,
    JobKindOutcome,
)
from onboarding.services.tenants import company_stage_set
from sii_bot import ProgressEvent, SiiUserRecord

logger = logging.getLogger(__name__)

__all__ = [
    "enrollment_job_claim",
    "enrollment_job_create",
    "enrollment_job_enqueue",
    "enrollment_job_fail",
    "enrollment_job_fail_lost",
    "enrollment_job_progress",
    "enrollment_job_rerun",
    "enrollment_job_succeed",
    "enrollment_job_wait",
]

# --- Create, re-run, enqueue, claim -----------------------------------------------------------------


def enrollment_job_enqueue(*, job: EnrollmentJob) -> None:
    """Once the current transaction commits: send a live job to the browser queue (stamping
    `enqueued_at` if it is still QUEUED then); for a background job, run the fair feeder, which sends
    it when its tenant's turn comes (`dispatch.enrollment_jobs_feed`)."""
    job_id = str(job.pk)

    def send() -> None:
        EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(enqueued_at=timezone.now())
        enrollment_job_send(job_id=job_id)

    transaction.on_commit(enrollment_jobs_feed if job.lane == JobLane.BACKGROUND else send)


def enrollment_job_create(
    *,
    company: ClientCompany,
    certificate: Certificate | None,
    created_by: AbstractBaseUser | None,
    representative: Representative | None = None,
    rerun_of: EnrollmentJob | None = None,
    kind: str | None = None,
    old_user_rut: str = "",
    old_user_name: str = "",
    lane: str | None = None,
    firm_key: FirmKey | None = None,
) -> EnrollmentJob:
    """Create a QUEUED job authorizing the tenant's representative in `company`, enqueued on commit.

    Copies what is requested (representative, permissions) onto the job. Raises ServiceError when an
    attempt for this client is already queued or running, or the tenant has no representative.

    `kind` (a `JobKind`, AUTHORIZE by default): REVOKE removes `representative` (its RUT is the
    job's `user_rut`); REPLACE adds `representative` and removes `old_user_rut`. A re-run copies the
    kind and the people of the job it re-runs.

    `lane` (a `JobLane`): whether someone watches the job (LIVE) or not (BACKGROUND); by default the
    kind's (`jobs.lanes.JOB_KIND_LANES`), and BACKGROUND for a re-run. `firm_key`: the firm's own key,
    used instead of a client's certificate (then None; `services.firm_changes`).
    """
    tenant = company.tenant
    if rerun_of is not None:
        lane = lane or JobLane.BACKGROUND
        kind = kind or rerun_of.kind
        representative = representative or rerun_of.representative
        old_user_rut = old_user_rut or rerun_of.old_user_rut
        old_user_name = old_user_name or rerun_of.old_user_name
    kind = kind or JobKind.AUTHORIZE
    lane = job_lane_for(kind=kind, lane=lane)
    if kind == JobKind.REPLACE and not old_user_rut:
        raise ServiceError("Falta el representante a reemplazar.", code="replace_without_old")
    representative = representative or representative_active(tenant)
    if representative is None:
        raise ServiceError(
            "El estudio contable aún no ha configurado a su representante. Avísele a su contador.",
            code="no_representative",
        )
    # A claimant's certificate makes the job theirs (`services/claims.py`), so that the first claimant
    # proven in the SII wins; one job in flight per claim.
    claim = certificate.claim if certificate is not None and certificate.claim_id is not None else None
    with transaction.atomic():
        # Lock the company row so two concurrent requests compute distinct attempt numbers.
        ClientCompany.objects.select_for_update().filter(pk=company.pk).first()
        if claim is not None:
            company_claim_job_check(claim=claim)
        if EnrollmentJob.objects.filter(company=company, claim=claim, status__in=ACTIVE_JOB_STATUSES).exists():
            raise ServiceError(
                "Ya hay una autorización en curso para esta empresa. Espere a que termine.",
                code="job_already_active",
            )
        last = EnrollmentJob.objects.filter(company=company).order_by("-attempt").values_list("attempt", flat=True).first()
        try:
            with transaction.atomic():
                job = EnrollmentJob.objects.create(
                    tenant=tenant,
                    company=company,
                    claim=claim,
                    certificate=certificate,
                    firm_key=firm_key,
                    representative=representative,
                    user_rut=representative.rut,
                    user_name=representative.name,
                    kind=kind,
                    lane=lane,
                    old_user_rut=old_user_rut,
                    old_user_name=old_user_name,
                    **permission_flags(prefix="grant_", codes=company_permissions(company)),
                    attempt=(last or 0) + 1,
                    rerun_of=rerun_of,
                    created_by=created_by,
                )
        except IntegrityError:
            raise ServiceError(
                "Ya hay una autorización en curso para esta empresa. Espere a que termine.",
                code="job_already_active",
            ) from None
        JobEvent.objects.create(
            tenant=tenant, job=job, step="queued", status="info", message="Solicitud recibida; en cola para el SII."
        )
        company_stage_set(company=company, stage=CompanyStage.QUEUED)
        enrollment_job_enqueue(job=job)
    return job


def _attempt_label(job: EnrollmentJob) -> str:
    """"Retiro, intento 1": the job's number among its company's jobs of its kind (one query)."""
    return attempt_label(kind=job.kind, number=job_kind_number(job=job))


def enrollment_job_rerun(*, job: EnrollmentJob, actor: AbstractBaseUser) -> EnrollmentJob:
    """Re-run a FAILED job as a new attempt linked to it (never a reset), audited.

    Raises ServiceError if the job did not fail, was already re-run, the certificate is gone, or an
    attempt for the client is already queued or running.
    """
    if job.status != JobStatus.FAILED:
        raise ServiceError("Solo se pueden reintentar trabajos con error.", code="not_failed")
    if EnrollmentJob.objects.filter(rerun_of=job).exists():
        raise ServiceError("Este intento ya fue reintentado; revise el intento más reciente.", code="already_rerun")
    certificate = job.certificate
    # A job of the firm's own key re-runs with that representative's current key (`jobs.firm_key_run`).
    firm_key = job.firm_key
    if firm_key is None and (certificate is None or not certificate.is_usable):
        raise ServiceError(
            "El certificado de este cliente ya no está guardado: pídale que lo suba nuevamente.",
            code="certificate_missing",
        )
    certificate = None if firm_key else certificate
    new_job = enrollment_job_create(
        company=job.company, certificate=certificate, created_by=actor, rerun_of=job, firm_key=firm_key
    )
    audit_record(
        tenant=job.tenant,
        actor=actor,
        action=AuditAction.RERUN,
        company=job.company,
        summary=f"Reintento de {_attempt_label(job)} de {job.company.legal_name}",
        details={"job": str(job.pk), "new_job": str(new_job.pk), "failure_code": job.failure_code},
    )
    return new_job


def enrollment_job_claim(*, job_id: str, worker: str) -> EnrollmentJob | None:
    """Move a QUEUED, due job to RUNNING for `worker` (compare-and-set). Returns it, or None if it is
    not QUEUED and due (someone else has it, it finished, or its retry is not due yet).

    A redelivered broker message therefore never runs a job twice. (A job whose claiming process died
    is resumed by `jobs.recovery.enrollment_job_take_over`, which the executor tries next.)
    """
    now = timezone.now()
    claimed = (
        EnrollmentJob.objects.filter(pk=job_id, status=JobStatus.QUEUED)
        .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
        .update(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200])
    )
    if not claimed:
        return None
    job = EnrollmentJob.objects.select_related("tenant", "company", "certificate", "representative").get(pk=job_id)
    company_stage_set(company=job.company, stage=CompanyStage.RUNNING)
    return job


def _held(job: EnrollmentJob) -> QuerySet[EnrollmentJob]:
    """The job's row while the claim `job` was loaded with still holds it: RUNNING, by the same
    worker, since the same start. A take-over or a reap changes one of them."""
    return EnrollmentJob.objects.filter(
        pk=job.pk, status=JobStatus.RUNNING, worker=job.worker, started_at=job.started_at
    )


SII_BUSY_MESSAGE = (
    "Esperando turno: el SII admite pocas sesiones a la vez con un mismo certificado. "
    "Seguirá automáticamente en unos segundos."
)


def enrollment_job_wait(*, job: EnrollmentJob) -> bool:
    """Put back in the queue a job this worker claimed but may not run yet (its SII session limits
    are full: `jobs.leases`): RUNNING → QUEUED (compare-and-set on the claim), due again in about
    AUTORIZA_SII_LEASE_WAIT_SECONDS, with no retry spent and its lane kept. The dispatcher sends it
    again (`dispatch.enrollment_jobs_dispatch`). Returns False if the claim was gone."""
    delay = settings.AUTORIZA_SII_LEASE_WAIT_SECONDS * random.uniform(0.5, 1.0)  # jitter, not crypto
    with transaction.atomic():
        moved = _held(job).update(
            status=JobStatus.QUEUED,
            run_after=timezone.now() + timedelta(seconds=delay),
            enqueued_at=None,
            started_at=None,
            heartbeat_at=None,
        )
        if not moved:
            return False
        # Told once per job: a job may wait several turns.
        if not JobEvent.objects.filter(job=job, step="waiting").exists():
            JobEvent.objects.create(tenant_id=job.tenant_id, job=job, step="waiting", status="info", message=SII_BUSY_MESSAGE)
        company_stage_set(company=job.company, stage=CompanyStage.QUEUED)
    logger.info("job %s waits %.1fs for its SII session limits", job.pk, delay)
    return True


def enrollment_job_progress(*, job: EnrollmentJob, event: ProgressEvent) -> None:
    """Record one step the bot reported (and its screenshot, sealed); refresh the heartbeat while the
    claim holds."""
    JobEvent.objects.create(
        tenant_id=job.tenant_id,
        job=job,
        step=event.step.value,
        status=event.status,
        message=event.message,
        created_at=event.at,
    )
    _held(job).update(heartbeat_at=timezone.now())
    if event.screenshot:
        job_artifact_store(job=job, kind=ArtifactKind.SCREENSHOT, step=event.step.value, content=event.screenshot)


# --- Success ----------------------------------------------------------------------------------------


def _success_fields(outcome: JobKindOutcome, result: Any, now: datetime) -> dict[str, Any]:
    return {
        "status": JobStatus.SUCCEEDED,
        "finished_at": now,
        "heartbeat_at": now,
        "run_after": None,
        "outcome": result.outcome,
        "result": outcome.result_json(result),
        "failure_code": "",
        "failure_message": "",
        "failure_retryable": False,
        "failure_detail": "",
    }


def _company_holder_write(company_id: int, holder: SiiUserRecord | None, now: datetime, **extra: Any) -> None:
    """Write on the company whom the SII holds for the firm there now (nobody when `holder` is None)."""
    held = frozenset(p.value for p in holder.granted()) if holder is not None else frozenset()
    ClientCompany.objects.filter(pk=company_id).update(
        sii_user_rut=holder.user_rut if holder is not None else "",
        **permission_flags(prefix="sii_", codes=held),
        sii_synced_at=now,
        **extra,
    )


def _success_apply(job: EnrollmentJob, outcome: JobKindOutcome, result: Any, now: datetime) -> None:
    """A success's effects on the company and the certificates (inside the transition's transaction).

    The company's stage is set unless another attempt of the company is in flight (only after a late
    result: that attempt sets it when it ends). The job's certificate is erased (consent covered one
    change) unless that attempt holds it; when the relationship ended, every stored certificate of the
    company is erased too: nothing can be re-run for it any more.
    """
    extra: dict[str, Any] = {"relationship": Relationship.ENDED} if outcome.ends_relationship else {}
    added = getattr(result, "addition", result)  # a replacement's addition, or the enrolment itself
    if hasattr(added, "unavailable_permissions"):
        extra["sii_unavailable"] = sorted(p.value for p in added.unavailable_permissions)
    _company_holder_write(job.company_id, outcome.sii_holder(result), now, **extra)
    other_active = EnrollmentJob.objects.filter(company_id=job.company_id, status__in=ACTIVE_JOB_STATUSES).exclude(
        pk=job.pk
    )
    if not other_active.exists():
        company_stage_set(company=job.company, stage=outcome.stage)
    if job.certificate is not None and not other_active.filter(certificate_id=job.certificate_id).exists():
        certificate_destroy(certificate=job.certificate, reason="job_succeeded")
    if outcome.ends_relationship:
        company_certificates_destroy(company=job.company, reason="relationship_ended")
    # Self-signup claims: the first claimant proven in the SII owns the company.
    company_claim_settle(job=job)


def _with_earlier_save(job: EnrollmentJob, result: Any) -> Any:
    """`result`, or a copy saying "created"/"updated" when it says "already_authorized" only because an
    earlier attempt of this job submitted the save and ended before reading its answer: the SII holds
    the user as requested because of this job, and the client must not read "no se hizo ningún cambio".

    The earlier attempt's own events tell which save it was: a new user's goes through the
    confirmation page; an existing user's modification skips it.
    """
    if job.kind != JobKind.AUTHORIZE or getattr(result, "outcome", None) != "already_authorized":
        return result
    earlier = job.events.filter(created_at__lt=job.started_at) if job.started_at else job.events.none()
    save = earlier.filter(step="save", status="started").order_by("-created_at", "-id").first()
    if save is None:
        return result
    confirm = earlier.filter(step="confirm", created_at__lte=save.created_at).order_by("-created_at", "-id").first()
    saved_as = "updated" if confirm is None or confirm.status == "skipped" else "created"
    return dataclasses.replace(result, outcome=saved_as)


def enrollment_job_succeed(*, job: EnrollmentJob, result: Any) -> EnrollmentJob:
    """Record the SII's confirmation for a job this worker ran; returns the job as stored.

    One compare-and-set RUNNING → SUCCEEDED on the claim, with the company's stage and SII state, the
    certificate erasure and the audit entry in the same transaction; the client and the firm are emailed
    after commit. When the claim no longer holds, the result is recorded as a late result (see the
    module docstring).
    """
    outcome = JOB_KIND_OUTCOMES[job.kind]
    result = _with_earlier_save(job, result)
    now = timezone.now()
    notify = True
    with transaction.atomic():
        if _held(job).update(**_success_fields(outcome, result, now)):
            _success_apply(job, outcome, result, now)
            audit_record(
                tenant=job.tenant,
                actor=None,
                action=AuditAction.JOB_FINISHED,
                company=job.company,
                summary=outcome.summary(job, result),
                details={"job": str(job.pk), "kind": job.kind, "outcome": result.outcome},
            )
        else:
            recorded = _late_success(job, outcome, result, now)
            if recorded is None:
                return job
            notify = recorded
        job.refresh_from_db()
        if notify:
            transaction.on_commit(lambda: _notify_finished(job))
    logger.info("job %s (%s) succeeded (%s)", job.pk, job.kind, result.outcome)
    return job


def _late_success(job: EnrollmentJob, outcome: JobKindOutcome, result: Any, now: datetime) -> bool | None:
    """Record a success the claim no longer covers; True if the job changed to SUCCEEDED, False if it
    had already succeeded (only noted), None if the job no longer exists (its company was removed)."""
    current = EnrollmentJob.objects.select_for_update().filter(pk=job.pk).first()
    if current is None:
        logger.warning("job %s: a late %s result arrived for a job that no longer exists", job.pk, result.outcome)
        return None
    previous = {"status": current.status, "failure_code": current.failure_code, "worker": current.worker}
    if current.status == JobStatus.SUCCEEDED:
        _late_note(job, f"El SII confirmó nuevamente el resultado ({result.outcome}); ya estaba registrado.", "info")
        audit_record(
            tenant=job.tenant, actor=None, action=AuditAction.JOB_FINISHED, company=job.company,
            summary=f"Resultado tardío ya registrado: {outcome.summary(job, result)}",
            details={"job": str(job.pk), "kind": job.kind, "outcome": result.outcome, "late": True, "previous": previous},
        )
        return False
    EnrollmentJob.objects.filter(pk=job.pk).update(**_success_fields(outcome, result, now))
    superseded = _reruns_supersede(job, outcome, result, now)
    _success_apply(job, outcome, result, now)
    _late_note(
        job,
        "El SII completó el trámite aunque este intento se había dado por "
        f"{'interrumpido' if previous['status'] == JobStatus.FAILED else 'retomado por otro proceso'}: "
        "registramos su resultado.",
        "info",
    )
    audit_record(
        tenant=job.tenant, actor=None, action=AuditAction.JOB_FINISHED, company=job.company,
        summary=f"Resultado tardío: {outcome.summary(job, result)}",
        details={
            "job": str(job.pk), "kind": job.kind, "outcome": result.outcome, "late": True, "previous": previous,
            "superseded_reruns": [str(pk) for pk in superseded],
        },
    )
    logger.warning("job %s: late success recorded (was %s %s)", job.pk, previous["status"], previous["failure_code"])
    return True


def _reruns_supersede(job: EnrollmentJob, outcome: JobKindOutcome, result: Any, now: datetime) -> list[Any]:
    """Close the re-runs of `job` still waiting in the queue (following the re-run chain): the SII
    already did what they would do. Returns their ids."""
    closed = []
    follower = EnrollmentJob.objects.filter(rerun_of=job).first()
    while follower is not None:
        if follower.status == JobStatus.QUEUED and EnrollmentJob.objects.filter(
            pk=follower.pk, status=JobStatus.QUEUED
        ).update(**_success_fields(outcome, result, now)):
            JobEvent.objects.create(
                tenant_id=follower.tenant_id, job=follower, step="superseded", status="info",
                message=(
                    f"No fue necesario ejecutar este intento: el intento {job.attempt} ya había completado el "
                    "trámite en el SII (su resultado llegó después). No se hizo ningún cambio adicional."
                ),
            )
            closed.append(follower.pk)
        follower = EnrollmentJob.objects.filter(rerun_of=follower).first()
    return closed


def _late_note(job: EnrollmentJob, message: str, status: str) -> None:
    JobEvent.objects.create(tenant_id=job.tenant_id, job=job, step="late_result", status=status, message=message)


# --- Failure ----------------------------------------------------------------------------------------


def _retry_delay_seconds(job: EnrollmentJob, minimum: int | None) -> float:
    """Exponential backoff with jitter (30 s, 60 s, 120 s…), never below the failure's own minimum,
    which doubles too: 1×, 2×, 4× of it (an SII outage: 5, 10, 20 min; its session limit: 1, 2, 4 h).

    Multiplied by AUTORIZA_JOB_RETRY_DELAY_SCALE (1.0 in production) so the reliability suite can run
    the same policy with every delay shrunk proportionally.
    """
    factor = 2**job.retry_count
    base = 30 * factor
    delay = int(base / 2 + random.uniform(0, base / 2))  # jitter, not crypto
    return max(delay, (minimum or 0) * factor) * settings.AUTORIZA_JOB_RETRY_DELAY_SCALE


def _evidence_store(job: EnrollmentJob, failure: JobFailure) -> None:
    """Keep the page and the screenshot of where the job failed (sealed). The screenshot is usually the
    one its step's "failed" event already delivered: stored once."""
    step = failure.step or "failure"
    if failure.page_html:
        job_artifact_store(job=job, kind=ArtifactKind.PAGE_HTML, step=step, content=failure.page_html.encode("utf-8"))
    if failure.screenshot:
        job_artifact_store(job=job, kind=ArtifactKind.SCREENSHOT, step=step, content=failure.screenshot, unless_stored=True)


def enrollment_job_fail(*, job: EnrollmentJob, failure: JobFailure) -> EnrollmentJob:
    """Record why a job this worker ran did not succeed; returns the job as stored.

    Evidence is stored first. A retryable failure with automatic retries left puts the job back in the
    queue (RUNNING → QUEUED, `run_after` with backoff); otherwise RUNNING → FAILED, audited, the client
    and the firm emailed after commit. When the SII refused the certificate itself
    (`SII_REJECTED_CERTIFICATE_CODES`) it is erased too (reason "sii_rejected"): it could only fail the
    same way again. Each is one compare-and-set on the claim; when the claim no longer holds, the
    failure is only noted (event and audit entry): it never overwrites a newer state.
    """
    _evidence_store(job, failure)
    if failure.retryable and failure.auto_retry and job.retry_count < settings.AUTORIZA_JOB_MAX_RETRIES:
        if _retry_schedule(job, failure):
            job.refresh_from_db()
            return job
    elif _final_failure_record(job, failure, _held(job)):
        return job
    return _late_failure(job, failure)


def enrollment_job_fail_lost(
    *, job: EnrollmentJob, detail: str, stale_before: datetime | None = None
) -> EnrollmentJob | None:
    """Fail a RUNNING job whose worker is gone (`worker_lost`, re-runnable), as loaded by the caller:
    the reaper (`stale_before`: only if its heartbeat is still older than that) or the recovery of a
    dead worker's job. Returns the failed job, or None when the job moved on meanwhile (a heartbeat,
    a take-over, its outcome): then nothing is written."""
    held = _held(job)
    if stale_before is not None:
        held = held.filter(heartbeat_at__lt=stale_before)
    failure = JobFailure(code="worker_lost", message=WORKER_LOST_MESSAGE, retryable=True, detail=detail, auto_retry=False)
    return job if _final_failure_record(job, failure, held) else None


def _retry_schedule(job: EnrollmentJob, failure: JobFailure) -> bool:
    """RUNNING → QUEUED with the next retry's time (compare-and-set); False if the claim is gone.
    The retry runs in the background lane: nobody is waiting on it minute by minute."""
    delay = _retry_delay_seconds(job, failure.retry_after_seconds)
    with transaction.atomic():
        moved = _held(job).update(
            status=JobStatus.QUEUED,
            lane=JobLane.BACKGROUND,
            retry_count=job.retry_count + 1,
            run_after=timezone.now() + timedelta(seconds=delay),
            enqueued_at=None,
            failure_code=failure.code,
            failure_message=failure.message,
            failure_retryable=True,
            failure_detail=failure.detail[:2000],
        )
        if not moved:
            return False
        if failure.sii_holder is not None:
            _company_holder_write(job.company_id, failure.sii_holder, timezone.now())
        JobEvent.objects.create(
            tenant_id=job.tenant_id,
            job=job,
            step="retry",
            status="info",
            # The failure's message already says that we will retry; add only which retry and when.
            message=(
                f"{failure.message} (Reintento {job.retry_count + 1} de "
                f"{settings.AUTORIZA_JOB_MAX_RETRIES}, en unos {max(1, round(delay / 60))} min.)"
            ),
        )
        company_stage_set(company=job.company, stage=CompanyStage.QUEUED)
    logger.info("job %s: %s, retry %s in %ss", job.pk, failure.code, job.retry_count + 1, delay)
    return True


def _final_failure_record(job: EnrollmentJob, failure: JobFailure, held: QuerySet[EnrollmentJob]) -> bool:
    """`held` (the job's row while it is still the caller's) → FAILED, with its effects; the job is
    refreshed. False, and nothing written, when `held` matched no row."""
    message = failure.final_message or (RETRIES_EXHAUSTED_MESSAGE if failure.retryable and failure.auto_retry else failure.message)
    rerunnable = failure.retryable if failure.rerunnable is None else failure.rerunnable
    now = timezone.now()
    with transaction.atomic():
        finished = held.update(
            status=JobStatus.FAILED,
            finished_at=now,
            heartbeat_at=now,
            failure_code=failure.code,
            failure_message=message,
            failure_retryable=rerunnable,
            failure_detail=(failure.detail or "")[:2000],
        )
        if not finished:
            return False
        if failure.sii_holder is not None:
            _company_holder_write(job.company_id, failure.sii_holder, now)
        JobEvent.objects.create(tenant_id=job.tenant_id, job=job, step="finished", status="failed", message=message)
        certificate_destroyed = False
        if claim_is_lost(job=job):
            # Another claimant owns the company now: its stage is theirs, and this claimant can re-run nothing.
            if job.certificate is not None:
                certificate_destroyed = certificate_destroy(certificate=job.certificate, reason=CLAIM_LOST_CODE)
        else:
            company_stage_set(company=job.company, stage=CompanyStage.FAILED)
        if failure.code in SII_REJECTED_CERTIFICATE_CODES and job.certificate is not None:
            certificate_destroyed = certificate_destroy(certificate=job.certificate, reason="sii_rejected") or certificate_destroyed
        audit_record(
            tenant=job.tenant,
            actor=None,
            action=AuditAction.JOB_FINISHED,
            company=job.company,
            summary=f"Falló la autorización en {job.company.legal_name}: {failure.code}",
            details={"job": str(job.pk), "failure_code": failure.code, "certificate_destroyed": certificate_destroyed},
        )
        job.refresh_from_db()
        transaction.on_commit(lambda: _notify_finished(job))
    logger.info("job %s failed: %s", job.pk, failure.code)
    return True


def _late_failure(job: EnrollmentJob, failure: JobFailure) -> EnrollmentJob:
    """Note a failure the claim no longer covers, without touching the job's newer state."""
    with transaction.atomic():
        current = EnrollmentJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is None:
            logger.warning("job %s: a late failure (%s) arrived for a job that no longer exists", job.pk, failure.code)
            return job
        _late_note(job, f"Llegó tarde un error de este intento, que no cambia su estado: {failure.message}", "failed")
        audit_record(
            tenant=job.tenant, actor=None, action=AuditAction.JOB_FINISHED, company=job.company,
            summary=f"Error tardío en {job.company.legal_name}, sin efecto: {failure.code}",
            details={
                "job": str(job.pk), "failure_code": failure.code, "late": True,
                "previous": {"status": current.status, "failure_code": current.failure_code, "worker": current.worker},
            },
        )
    logger.warning("job %s: late failure %s ignored (job is %s)", job.pk, failure.code, current.status)
    job.refresh_from_db()
    return job


def _notify_finished(job: EnrollmentJob) -> None:
    """Email the client and the firm about a finished job (the kind's texts; console backend by
    default). A mail outage never changes the job's outcome."""
    for email in JOB_KIND_OUTCOMES[job.kind].emails(job=job):
        try:
            send_mail(email.subject, email.body, None, email.recipients)
        except Exception:  # a mail outage must not change the job's outcome
            logger.exception("job %s: notification email failed", job.pk)
