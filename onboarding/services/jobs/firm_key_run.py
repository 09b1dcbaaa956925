"""Running a change job with the firm's own key (`EnrollmentJob.firm_key`) instead of a client's
certificate, and falling back to asking the client when the SII does not accept that key there.

A REPLACE runs as two SII sessions: the job's key (whoever administers the company now) adds the new
representative, then the NEW representative's own key removes the old one. Whether the SII lets a
user delete itself is unknown, so no key ever removes its own holder. A removal that fails after the
addition is a `ReplacementIncomplete`, like the one-session replacement's.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

import sii_bot
from onboarding import crypto
from onboarding.domain import display
from onboarding.models import AuditAction, EnrollmentJob, FirmKey, JobEvent, JobKind, JobStatus
from onboarding.services.audit import audit_record
from onboarding.services.certificate_requests import change_certificate_request, job_change_description
from onboarding.services.errors import ServiceError
from onboarding.services.firm_keys import firm_key_opened, representative_firm_key
from onboarding.services.jobs.bot import job_bot_call
from onboarding.services.jobs.lifecycle import JobFailure, enrollment_job_fail
from sii_bot.errors import CertificateRejected, EnrollmentFailure, ReplacementIncomplete
from sii_bot.settings import SiiSettings

logger = logging.getLogger(__name__)

__all__ = [
    "FIRM_KEY_FALLBACK_CODES", "FirmKeyUnavailable", "FirmKeyUnreadable", "firm_key_falls_back",
    "firm_key_job_fall_back", "firm_key_job_run",
]

# The SII refused the key itself (at login): it is marked rejected, and no further change uses it.
FIRM_KEY_REJECTED_CODES = frozenset(
    {CertificateRejected.code, "certificate_not_read", "certificate_revoked", "certificate_expired",
     "certificate_issuer_not_accepted", "certificate_invalid", "certificate_login_disabled"}
)
# Failures after which the change goes back to the client (their certificate): the key was refused,
# its holder does not administer the company (any more), or the key is no longer stored or readable.
FIRM_KEY_FALLBACK_CODES = FIRM_KEY_REJECTED_CODES | frozenset(
    {"holder_not_administrator", "option_not_allowed", "legal_representative_mismatch", "firm_key_missing",
     "certificate_unreadable"}
)


class FirmKeyUnavailable(EnrollmentFailure):
    """The new representative's key could not be opened for the removal step of a replacement (erased
    meanwhile, or its sealed material does not decrypt): nothing was done on the SII with it."""

    code = "firm_key_missing"
    user_message = "La llave del estudio del nuevo representante ya no se puede usar. Cárguela de nuevo."


class FirmKeyUnreadable(FirmKeyUnavailable):
    """The key is stored but its sealed material does not decrypt (wrong master key or a tampered row)."""

    code = "certificate_unreadable"


def firm_key_falls_back(code: str) -> bool:
    """True when a firm-key job that failed with `code` should go back to asking the client."""
    return code in FIRM_KEY_FALLBACK_CODES


def _note_rejected(firm_key: FirmKey, failure: EnrollmentFailure) -> None:
    """Mark `firm_key` as refused by the SII (once; audited) when `failure` says the SII refused it."""
    if failure.code not in FIRM_KEY_REJECTED_CODES:
        return
    marked = FirmKey.objects.filter(pk=firm_key.pk, rejected_code="").update(
        rejected_code=failure.code, rejected_at=timezone.now()
    )
    if marked:
        audit_record(
            tenant=firm_key.tenant,
            actor=None,
            action=AuditAction.FIRM_KEY,
            summary=f"El SII rechazó la llave del estudio de {firm_key.holder_name}",
            details={"firm_key": str(firm_key.pk), "failure_code": failure.code},
        )


def _with_key(firm_key: FirmKey, purpose: str, call: Callable[[Any], Any]) -> Any:
    """`call(material)` with the key opened in memory; a refusal of the key by the SII is noted.

    A key an admin replaced while the job waited is replaced here too: the representative's current
    key logs in (the same holder, as the upload checks)."""
    if not firm_key.is_usable:
        firm_key = representative_firm_key(representative=firm_key.representative) or firm_key
    try:
        with firm_key_opened(firm_key=firm_key, purpose=purpose) as material:
            return call(material)
    except EnrollmentFailure as failure:
        _note_rejected(firm_key, failure)
        raise


def firm_key_job_run(
    *, job: EnrollmentJob, settings: SiiSettings, on_progress: Callable[[Any], None]
) -> Any:
    """Run `job` on the SII with the firm's key(s); returns the bot's result for the job's kind (a
    `ReplacementResult` for a REPLACE). Raises the bot's `EnrollmentFailure`, and ServiceError
    (`firm_key_missing`) when a key it needs is no longer stored."""
    purpose = f"{job.get_kind_display()} en {job.company.legal_name}"
    if job.kind != JobKind.REPLACE:
        bot_call, request = job_bot_call(job=job)
        return _with_key(
            job.firm_key,  # type: ignore[arg-type]
            purpose,
            lambda material: bot_call(request, certificate=material, settings=settings, on_progress=on_progress),
        )
    new_key = representative_firm_key(representative=job.representative)
    if new_key is None or not new_key.is_usable:
        raise ServiceError(
            f"La llave del estudio de {job.user_name} ya no está guardada: no puede quitar al representante anterior.",
            code="firm_key_missing",
        )
    started = time.monotonic()
    permissions = frozenset(sii_bot.Permission(code) for code in job.permissions)
    addition = _with_key(
        job.firm_key,  # type: ignore[arg-type]
        purpose,
        lambda material: sii_bot.enroll(
            sii_bot.EnrollmentRequest(company_rut=job.company.rut, user_rut=job.user_rut, permissions=permissions),
            certificate=material, settings=settings, on_progress=on_progress,
        ),
    )
    try:
        removal = _with_key(
            new_key,
            purpose,
            lambda material: sii_bot.revoke(
                sii_bot.RevocationRequest(company_rut=job.company.rut, user_rut=job.old_user_rut),
                certificate=material, settings=settings, on_progress=on_progress,
            ),
        )
    except EnrollmentFailure as failure:
        raise ReplacementIncomplete(failure.detail, cause=failure, addition=addition) from failure
    # The addition is done in the SII: a key that cannot be opened for the removal must not lose it.
    except ServiceError as error:
        cause = FirmKeyUnavailable(f"new representative's key unavailable for the removal ({error.code})")
        raise ReplacementIncomplete(cause.detail, cause=cause, addition=addition) from None
    except crypto.DecryptionFailed:
        cause = FirmKeyUnreadable("new representative's key does not decrypt (master key or tampered row)")
        raise ReplacementIncomplete(cause.detail, cause=cause, addition=addition) from None
    final_entries = dict(removal.final_entries)
    final_entries[job.user_rut] = addition.final_entry or addition.previous
    return sii_bot.ReplacementResult(
        outcome="replaced",
        addition=dataclasses.replace(addition, screenshots=[]),
        removal=dataclasses.replace(removal, screenshots=[]),
        final_entries=final_entries,
        screenshots=list(addition.screenshots) + list(removal.screenshots),
        duration_seconds=time.monotonic() - started,
    )


def firm_key_job_fall_back(*, job: EnrollmentJob, failure: JobFailure) -> EnrollmentJob:
    """Fail a firm-key job the SII would not do with the firm's key (for good: retrying the same key
    cannot help, and the client's consent makes the next job) and ask the client for their
    certificate, as a change without the firm's key does. Both are recorded in the job's events.

    Returns the job as stored. When the failure could not be recorded (the claim moved on), nothing
    is asked.
    """
    label = display.failure_label(failure.code) or failure.code
    message = (
        f"No se pudo hacer con la llave del estudio ({label}). Le pedimos al cliente su certificado digital "
        "para hacer el cambio."
    )
    job = enrollment_job_fail(
        job=job,
        failure=dataclasses.replace(failure, auto_retry=False, rerunnable=False, final_message=message),
    )
    if job.status != JobStatus.FAILED or job.failure_code != failure.code:
        return job
    company = job.company
    with transaction.atomic():
        asked = change_certificate_request(company=company, what=job_change_description(job))
        JobEvent.objects.create(
            tenant_id=job.tenant_id,
            job=job,
            step="firm_key_fallback",
            status="info",
            message=(
                f"Le enviamos un correo a {company.owner_email} pidiéndole su certificado digital."
                if asked
                else "El cliente no tiene correo registrado: pídale su certificado digital directamente."
            ),
        )
        audit_record(
            tenant=job.tenant,
            actor=None,
            action=AuditAction.FIRM_KEY,
            company=company,
            summary=f"Llave del estudio no aceptada en {company.legal_name}: se pidió el certificado al cliente",
            details={"job": str(job.pk), "failure_code": failure.code, "client_emailed": asked},
        )
    logger.info("job %s: firm key not accepted (%s); client asked for the certificate", job.pk, failure.code)
    return job
