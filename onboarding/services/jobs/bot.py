"""What the SII bot is asked per kind of job, and what its failures mean for the job.

`BOT_CALLS` is the one table: the `sii_bot` entry point (looked up on the module at call time, so a
test may stand in for it) and the request built from the job's row. `job_failure_from_bot` turns a
typed bot failure into the `JobFailure` the lifecycle records (`jobs.outcomes`); the only kind-specific case is a replacement that
added the new representative but could not remove the old one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sii_bot
from onboarding.domain.display import rut_display
from onboarding.models import EnrollmentJob, JobKind, SiiEnvironment, Tenant
from onboarding.services.jobs.outcomes import JobFailure
from sii_bot.errors import EnrollmentFailure, ReplacementIncomplete
from sii_bot.settings import SiiSettings

__all__ = ["BOT_CALLS", "BotCall", "job_bot_call", "job_failure_from_bot", "sii_settings_for"]


def _permissions(job: EnrollmentJob) -> frozenset[sii_bot.Permission]:
    return frozenset(sii_bot.Permission(code) for code in job.permissions)


@dataclass(frozen=True)
class BotCall:
    """One kind of job on the SII: the name of its `sii_bot` entry point and its request."""

    entry_point: str
    request: Callable[[EnrollmentJob], Any]


BOT_CALLS: dict[str, BotCall] = {
    JobKind.AUTHORIZE: BotCall(
        "enroll",
        lambda job: sii_bot.EnrollmentRequest(
            company_rut=job.company.rut, user_rut=job.user_rut, permissions=_permissions(job)
        ),
    ),
    JobKind.REVOKE: BotCall(
        "revoke", lambda job: sii_bot.RevocationRequest(company_rut=job.company.rut, user_rut=job.user_rut)
    ),
    JobKind.REPLACE: BotCall(
        "replace",
        lambda job: sii_bot.ReplacementRequest(
            company_rut=job.company.rut,
            new_user_rut=job.user_rut,
            old_user_rut=job.old_user_rut,
            permissions=_permissions(job),
        ),
    ),
}


def job_bot_call(*, job: EnrollmentJob) -> tuple[Callable[..., Any], Any]:
    """(the `sii_bot` entry point, its request) for the job's kind."""
    call = BOT_CALLS[job.kind]
    return getattr(sii_bot, call.entry_point), call.request(job)


def sii_settings_for(tenant: Tenant) -> SiiSettings:
    """The SII endpoints for the tenant's environment (sandbox reads SII_* from the environment)."""
    if tenant.sii_environment == SiiEnvironment.SANDBOX:
        return SiiSettings.from_env()
    return SiiSettings.for_environment(tenant.sii_environment)


def job_failure_from_bot(*, job: EnrollmentJob, failure: EnrollmentFailure) -> JobFailure:
    """The lifecycle's view of a typed bot failure: its code, Spanish message, retry policy and evidence.

    A REPLACE that authorized the new representative but did not remove the old one
    (`ReplacementIncomplete`) also tells whom the SII holds now (the new one), and when it fails for
    good says plainly that the new representative IS authorized and the old one still is; it stays
    re-runnable (running it again only removes the old one).
    """
    common: dict[str, Any] = {
        "code": failure.code,
        "message": failure.user_message,
        "retryable": failure.retryable,
        "detail": failure.detail,
        "retry_after_seconds": failure.retry_after_seconds,
        "step": failure.step or "",
        "page_html": failure.page_html or "",
        "screenshot": failure.screenshot,
        # Only a person can fix it (the owner at the SII, a new certificate): never retried by itself.
        "auto_retry": not failure.needs_person,
    }
    if job.kind != JobKind.REPLACE or not isinstance(failure, ReplacementIncomplete):
        return JobFailure(**common)
    cause = failure.cause
    message = (
        f"{job.user_name} (RUT {rut_display(job.user_rut)}), el nuevo representante, YA QUEDÓ AUTORIZADO en el SII, "
        f"pero no pudimos quitar a {job.old_user_name or job.old_user_rut} (RUT {rut_display(job.old_user_rut)}), "
        "que sigue autorizado. Un administrador del estudio puede volver a intentarlo: solo falta eliminar al anterior."
        + (f" Detalle: {cause.user_message}" if cause is not None else "")
    )
    return JobFailure(
        **common,
        final_message=message,
        rerunnable=True,
        sii_holder=failure.addition.record if failure.addition is not None else None,
    )
