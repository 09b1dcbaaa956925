"""What a job's end means, for every kind: on success, what each kind writes (`JOB_KIND_OUTCOMES`,
data rather than branches); on failure, the `JobFailure` the lifecycle records and the wording of a
job that failed for good. The lifecycle (`jobs.lifecycle`) applies them; `jobs.bot` builds a
`JobFailure` from a bot failure.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onboarding.models import CompanyStage, EnrollmentJob, JobKind
from onboarding.services.jobs.emails import FinishedEmail, change_job_finished_emails, job_finished_emails
from sii_bot import SiiUserRecord

__all__ = [
    "JOB_KIND_OUTCOMES",
    "RETRIES_EXHAUSTED_MESSAGE",
    "WORKER_LOST_MESSAGE",
    "JobFailure",
    "JobKindOutcome",
]

WORKER_LOST_MESSAGE = (
    "El proceso que ejecutaba la autorización se interrumpió. Un administrador puede volver a intentarla."
)
# A transient failure's own message promises an automatic retry; none is left when this is shown.
RETRIES_EXHAUSTED_MESSAGE = (
    "No pudimos completar la autorización: el SII siguió sin responder como esperábamos después de "
    "los reintentos automáticos. Un administrador del estudio puede volver a intentarlo más tarde."
)


# --- What a success means, per kind of job ----------------------------------------------------------


@dataclass(frozen=True)
class JobKindOutcome:
    """What a succeeded job of one kind writes: the company's stage, whom the SII now holds for the firm
    there (None: nobody), whether the firm's relationship with the client ended, what the job row keeps
    of the bot's result, the audit summary and the emails."""

    stage: str
    ends_relationship: bool
    result_json: Callable[[Any], dict[str, Any]]
    sii_holder: Callable[[Any], SiiUserRecord | None]
    summary: Callable[[EnrollmentJob, Any], str]
    emails: Callable[..., list[FinishedEmail]]


JOB_KIND_OUTCOMES: dict[str, JobKindOutcome] = {
    JobKind.AUTHORIZE: JobKindOutcome(
        stage=CompanyStage.AUTHORIZED,
        ends_relationship=False,
        # The parsed record of what the SII holds (not the request).
        result_json=lambda result: {
            **result.record.to_dict(),
            "unavailable_permissions": sorted(p.value for p in result.unavailable_permissions),
        },
        sii_holder=lambda result: result.record,
        summary=lambda job, result: f"{job.user_name} autorizado en {job.company.legal_name}",
        emails=job_finished_emails,
    ),
    JobKind.REVOKE: JobKindOutcome(
        stage=CompanyStage.REVOKED,
        ends_relationship=True,
        result_json=lambda result: result.to_dict(),
        sii_holder=lambda result: None,
        summary=lambda job, result: (
            f"{job.user_name} eliminado como usuario de {job.company.legal_name} ({result.outcome})"
        ),
        emails=change_job_finished_emails,
    ),
    JobKind.REPLACE: JobKindOutcome(
        stage=CompanyStage.AUTHORIZED,
        ends_relationship=False,
        result_json=lambda result: result.to_dict(),
        sii_holder=lambda result: result.addition.record,
        summary=lambda job, result: (
            f"{job.user_name} autorizado y {job.old_user_name or job.old_user_rut} eliminado en "
            f"{job.company.legal_name}"
        ),
        emails=change_job_finished_emails,
    ),
}


@dataclass(frozen=True)
class JobFailure:
    """Why a job did not succeed, as the lifecycle records it (built from a bot failure by
    `jobs.bot.job_failure_from_bot`, or by the worker for its own errors).

    `message` is Spanish, for the client and the firm. `retryable`: an automatic retry may help (the
    retry policy of the failure). `auto_retry` False fails the job now even when retryable (it stays
    re-runnable by an admin). `final_message` replaces `message` when the job fails for good;
    `rerunnable` overrides what the final row says about re-running (default: `retryable`).
    `sii_holder`: whom the SII holds for the firm in the company, learned despite the failure.
    """

    code: str
    message: str
    retryable: bool
    detail: str = ""
    retry_after_seconds: int | None = None
    step: str = ""
    page_html: str = ""
    screenshot: bytes | None = None
    auto_retry: bool = True
    final_message: str = ""
    rerunnable: bool | None = None
    sii_holder: SiiUserRecord | None = None
