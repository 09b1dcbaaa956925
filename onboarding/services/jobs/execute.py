"""Running one job in a worker: load and claim it, open the certificate (or the firm's own key,
`jobs.firm_key_run`) in memory, call the bot for the job's kind, and record the outcome through the
lifecycle."""
from __future__ import annotations

import logging
import socket

from celery.exceptions import SoftTimeLimitExceeded

from onboarding import crypto
from onboarding.models import EnrollmentJob
from onboarding.services.certificates import certificate_opened
from onboarding.services.errors import ServiceError
from onboarding.services.jobs.bot import job_bot_call, job_failure_from_bot, sii_settings_for
from onboarding.services.jobs.firm_key_run import (
    firm_key_falls_back,
    firm_key_job_fall_back,
    firm_key_job_run,
)
from onboarding.services.jobs.leases import sii_leases_acquire, sii_leases_kept
from onboarding.services.jobs.lifecycle import (
    enrollment_job_claim,
    enrollment_job_fail,
    enrollment_job_progress,
    enrollment_job_succeed,
    enrollment_job_wait,
)
from onboarding.services.jobs.outcomes import JobFailure
from onboarding.services.jobs.recovery import enrollment_job_take_over
from sii_bot.errors import EnrollmentFailure, ReplacementIncomplete
from sii_bot.models import ProgressEvent

logger = logging.getLogger(__name__)

__all__ = ["enrollment_job_execute"]

def enrollment_job_execute(*, job_id: str, worker: str | None = None) -> EnrollmentJob | None:
    """Run one job end to end in this worker: claim (or take over from a dead worker), take its SII
    session leases (`jobs.leases`), decrypt in memory, drive the SII, record.

    Returns the finished (or re-queued) job, or None when the job was not claimable (already taken,
    finished, or not yet due). A job whose SII session limits are full goes back to the queue
    (`enrollment_job_wait`) and is returned QUEUED. Never leaves the job RUNNING: every exception
    ends in a FAILED row.
    """
    worker = worker or socket.gethostname()
    job = enrollment_job_claim(job_id=job_id, worker=worker) or enrollment_job_take_over(job_id=job_id, worker=worker)
    if job is None:
        logger.info("job %s not claimable (already taken, finished or not due)", job_id)
        return None
    logger.info("job %s claimed (attempt %s, retry %s)", job.pk, job.attempt, job.retry_count)
    try:
        if job.certificate is None and job.firm_key is None:
            raise ServiceError(
                "El certificado ya no está guardado. Suba su certificado nuevamente para continuar.",
                code="certificate_missing",
            )
        bot_call, request = job_bot_call(job=job)
        # Before the bot logs in: a session the SII's limits have no room for is never opened.
        leases = sii_leases_acquire(job=job)
        if leases is None:
            enrollment_job_wait(job=job)
            job.refresh_from_db()
            return job
        # Released as soon as the bot is done (it has logged out), before the outcome is recorded.
        def on_progress(event: ProgressEvent) -> None:
            enrollment_job_progress(job=job, event=event)

        with sii_leases_kept(leases):
            if job.firm_key is not None:
                result = firm_key_job_run(job=job, settings=sii_settings_for(job.tenant), on_progress=on_progress)
            else:
                with certificate_opened(certificate=job.certificate) as material:
                    result = bot_call(
                        request, certificate=material, settings=sii_settings_for(job.tenant), on_progress=on_progress
                    )
    except EnrollmentFailure as failure:
        return _failed(job, job_failure_from_bot(job=job, failure=failure), _root_code(failure))
    except ServiceError as error:
        return _failed(
            job, JobFailure(code=error.code, message=error.message, retryable=False, detail=error.code), error.code
        )
    except crypto.DecryptionFailed:
        logger.error("job %s: certificate material does not decrypt", job.pk)
        failure = JobFailure(
            code="certificate_unreadable",
            message="No pudimos leer el certificado guardado. Suba su certificado nuevamente.",
            retryable=False,
            detail="sealed material failed to decrypt (wrong master key or tampered row)",
        )
        return _failed(job, failure, failure.code)
    except BaseException as exc:  # a job must never stay RUNNING
        timed_out = isinstance(exc, SoftTimeLimitExceeded)
        logger.exception("job %s crashed", job.pk) if not timed_out else logger.warning("job %s timed out", job.pk)
        enrollment_job_fail(
            job=job,
            failure=JobFailure(
                code="timeout" if timed_out else "internal_error",
                message=(
                    "La autorización tardó más de lo esperado y se detuvo. Un administrador puede volver a intentarla."
                    if timed_out
                    else "Ocurrió un error inesperado de nuestra parte. Nuestro equipo fue notificado; "
                    "un administrador puede volver a intentarlo."
                ),
                retryable=True,
                auto_retry=False,
                detail=type(exc).__name__,
            ),
        )
        if not isinstance(exc, Exception):
            raise
        return job
    return enrollment_job_succeed(job=job, result=result)


def _root_code(failure: EnrollmentFailure) -> str:
    """The code of what stopped the bot: a replacement's removal failure, else the failure's own."""
    if isinstance(failure, ReplacementIncomplete) and failure.cause is not None:
        return failure.cause.code
    return failure.code


def _failed(job: EnrollmentJob, failure: JobFailure, root_code: str) -> EnrollmentJob:
    """Record `failure`; a job of the firm's key the SII would not do with it goes back to the client."""
    if job.firm_key_id is not None and firm_key_falls_back(root_code):
        return firm_key_job_fall_back(job=job, failure=failure)
    return enrollment_job_fail(job=job, failure=failure)
