"""Running one access check run in a worker: claim it, take a place among the SII sessions of the
firm key's RUT, open the firm key in memory, read every company's users in one SII session
(`sii_bot.read_users`), and record an item per company; the run always finishes.

Politeness towards the SII, across every worker and machine:
- at most AUTORIZA_SII_MAX_SESSIONS_PER_RUT sessions per certificate RUT, through the same leases as
  enrollment jobs (`jobs.leases`: Redis across machines, the database on one; a lease frees itself a
  TTL after its worker died). A check takes no place of the per-host cap, so it never makes a
  client's live authorization wait;
- a pause between companies (AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS, `SiiSettings.company_pause_seconds`);
- after a session-limit answer (…27, or throttled logins) the run waits at least the hour the SII
  asks (`retry_after_seconds`, scaled only in tests), and every other run of that RUT waits with it.
"""
from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import sii_bot
from onboarding import crypto
from onboarding.domain.display import failure_label
from onboarding.domain.rules import company_requested_permissions
from onboarding.models import (
    AccessCheckItem,
    AccessCheckItemStatus,
    AccessCheckRun,
    AccessCheckStatus,
    AccessProblem,
    ClientCompany,
    FirmKey,
)
from onboarding.selectors.access import (
    access_problem_of,
    access_state_from_user,
)
from onboarding.services.access_checks import (
    access_check_run_send,
    access_check_runs_pending_exist,
    access_check_wait_seconds,
    access_problems_notify,
)
from onboarding.services.errors import ServiceError
from onboarding.services.firm_keys import firm_key_opened
from onboarding.services.jobs.bot import sii_settings_for
from onboarding.services.jobs.leases import Leases, sii_leases_acquire_keys, sii_leases_kept
from sii_bot.errors import CertificateLoginDisabled, CertificateRejected, failure_from_code
from sii_bot.models import CompanyUsersRead, UsersReadRequest
from sii_bot.rut import normalize_rut

logger = logging.getLogger(__name__)

__all__ = ["SESSION_LIMIT_CODES", "access_check_execute", "access_check_lease_keys"]

# The SII's answers that lock the holder out for a while: never log in again before it says.
SESSION_LIMIT_CODES = frozenset({"too_many_sessions", "login_throttled"})
# A run put back for a session limit this many times is finished with that failure for what is left.
SESSION_LIMIT_WAITS = 3
HEARTBEAT_EVERY_SECONDS = 5.0


def access_check_lease_keys(*, firm_key: FirmKey) -> list[tuple[str, int]]:
    """The SII session limit a check counts against: its certificate holder's RUT (the same key an
    enrollment job with a certificate of that holder takes)."""
    return [(f"rut:{firm_key.holder_rut}", settings.AUTORIZA_SII_MAX_SESSIONS_PER_RUT)]


def _firm_key_refused(code: str) -> bool:
    """Whether the SII's answer at login refused the certificate itself (revoked, expired at the SII,
    not accepted, certificate login disabled...), as opposed to a session or company matter."""
    failure = failure_from_code(code)
    return issubclass(failure, CertificateRejected | CertificateLoginDisabled)


def _session_retryable(failure: dict[str, Any]) -> bool:
    """A failure of the session (not the company's) that a new session may get past."""
    code = failure.get("code", "")
    return bool(failure.get("retryable")) and code not in SESSION_LIMIT_CODES and not failure.get("needs_person")


@dataclass
class _Outcome:
    status: str
    found: dict[str, Any] | None = None
    problem: str = ""
    failure_code: str = ""
    failure_message: str = ""


def _held(run: AccessCheckRun) -> Any:
    return AccessCheckRun.objects.filter(pk=run.pk, status=AccessCheckStatus.RUNNING, worker=run.worker)


def _claim(*, run_id: str, worker: str) -> AccessCheckRun | None:
    """QUEUED → RUNNING by compare-and-set (a redelivered message runs the run once)."""
    now = timezone.now()
    claimed = AccessCheckRun.objects.filter(pk=run_id, status=AccessCheckStatus.QUEUED).exclude(
        run_after__gt=now
    ).update(status=AccessCheckStatus.RUNNING, worker=worker[:200], started_at=now, heartbeat_at=now)
    if not claimed:
        return None
    return AccessCheckRun.objects.select_related("tenant", "representative", "firm_key").get(pk=run_id)


def _item_record(*, item: AccessCheckItem, outcome: _Outcome, now: datetime) -> bool:
    """Record one company's result (compare-and-set on PENDING) and, for what was found in the SII or
    about the firm key, the company's access fields. Returns False if the item was already recorded."""
    with transaction.atomic():
        recorded = AccessCheckItem.objects.filter(pk=item.pk, status=AccessCheckItemStatus.PENDING).update(
            status=outcome.status,
            found=outcome.found,
            problem=outcome.problem,
            failure_code=outcome.failure_code[:40],
            failure_message=outcome.failure_message,
            checked_at=now,
        )
        if not recorded or outcome.status == AccessCheckItemStatus.FAILED:
            return bool(recorded)
        company = ClientCompany.objects.select_for_update().get(pk=item.company_id)
        if company.access_verified_at is not None and company.access_verified_at > now:
            return True  # a newer check already wrote the company's state
        read_sii = outcome.problem not in (AccessProblem.FIRM_KEY_EXPIRED, AccessProblem.FIRM_KEY_REJECTED)
        changes: dict[str, Any] = {"access_problem": outcome.problem}
        if read_sii:
            changes.update(access_verified_at=now, access_state=outcome.found)
        if not outcome.problem:
            changes.update(access_problem_since=None, access_problem_notified="")
        elif outcome.problem != company.access_problem:
            changes["access_problem_since"] = now
        ClientCompany.objects.filter(pk=company.pk).update(**changes)
    return True


def _outcome_of(read: CompanyUsersRead, *, representative_rut: str, requested: tuple[str, ...]) -> _Outcome:
    """What one company's read means: VERIFIED, PROBLEM (with its AccessProblem) or FAILED (typed)."""
    if read.failure is None:
        user = next((u for u in read.users if normalize_rut(u.rut) == representative_rut), None)
        state = access_state_from_user(user)
        problem = access_problem_of(state=state, requested=requested)
        status = AccessCheckItemStatus.PROBLEM if problem else AccessCheckItemStatus.VERIFIED
        return _Outcome(status=status, found=state, problem=problem)
    code = str(read.failure.get("code", "enrollment_failure"))
    if code == "holder_not_administrator":
        # Only a Usuario Administrador can open the user list: the representative no longer is one
        # there (or was removed altogether).
        return _Outcome(status=AccessCheckItemStatus.PROBLEM, problem=AccessProblem.NOT_ADMINISTRATOR,
                        failure_code=code, failure_message=str(read.failure.get("user_message", "")))
    return _failed(code, str(read.failure.get("user_message", "")))


def _failed(code: str, message: str) -> _Outcome:
    label = failure_label(code)
    text = message or label or "No se pudo leer la empresa en el SII."
    return _Outcome(status=AccessCheckItemStatus.FAILED, failure_code=code, failure_message=text)


def _run_finish(*, run: AccessCheckRun, status: str = AccessCheckStatus.DONE, code: str = "", message: str = "") -> bool:
    """RUNNING → DONE/FAILED (compare-and-set on this worker's claim), then the digest of new problems
    once the tenant has no other run waiting to be done now."""
    finished = _held(run).update(status=status, finished_at=timezone.now(), failure_code=code[:40], failure_message=message)
    if finished and not access_check_runs_pending_exist(tenant=run.tenant, exclude=run):
        try:
            access_problems_notify(tenant=run.tenant)
        except Exception:  # the problems stay marked new; the periodic tick e-mails them
            logger.exception("access problem digest of %s failed", run.tenant.slug)
    return bool(finished)


def _run_wait(*, run: AccessCheckRun, until: datetime | None, code: str = "") -> None:
    """RUNNING → QUEUED (its companies stay PENDING). Due at once (`until` None) it is sent again now;
    due later, the periodic dispatcher sends it when its time comes (no broker countdown: a message
    held by a worker for an hour is one a restart loses)."""
    changes: dict[str, Any] = {"status": AccessCheckStatus.QUEUED, "run_after": until, "worker": "",
                               "started_at": None, "heartbeat_at": None, "enqueued_at": None}
    if code:
        changes["failure_code"] = code
    if _held(run).update(**changes) and until is None:
        access_check_run_send(run_id=str(run.pk))


def _session_limit_until(*, run: AccessCheckRun, firm_key: FirmKey, now: datetime) -> datetime | None:
    """When the SII lets this RUT log in again, if another run of it met a session limit: its run_after."""
    waiting = (
        AccessCheckRun.objects.filter(
            firm_key__holder_rut=firm_key.holder_rut, status=AccessCheckStatus.QUEUED,
            failure_code__in=SESSION_LIMIT_CODES, run_after__gt=now,
        )
        .exclude(pk=run.pk)
        .order_by("-run_after")
        .values_list("run_after", flat=True)
        .first()
    )
    return waiting


def _all_items(run: AccessCheckRun, outcome: Callable[[], _Outcome]) -> None:
    now = timezone.now()
    for item in AccessCheckItem.objects.filter(run=run, status=AccessCheckItemStatus.PENDING):
        _item_record(item=item, outcome=outcome(), now=now)


def access_check_execute(*, run_id: str, worker: str | None = None) -> AccessCheckRun | None:
    """Run one access check end to end in this worker. Returns the run (finished, or QUEUED again when
    it must wait for a session place or the SII's session limit), or None when it was not claimable
    (already taken or finished; one due later is sent again for its time). Never leaves it RUNNING:
    any exception finishes it, its unread companies FAILED with a typed code."""
    worker = worker or socket.gethostname()
    run = _claim(run_id=run_id, worker=worker)
    if run is None:
        # Already taken or finished, or not due yet (the dispatcher sends it again when it is).
        AccessCheckRun.objects.filter(pk=run_id, status=AccessCheckStatus.QUEUED, run_after__gt=timezone.now()).update(
            enqueued_at=None
        )
        return None
    try:
        _execute(run)
    except (ServiceError, crypto.DecryptionFailed) as exc:
        # The key was erased while the run waited, or its sealed material no longer decrypts (wrong
        # master key, tampered row): the admin must upload it again, which the message says.
        if isinstance(exc, ServiceError):
            code, message = exc.code, exc.message
        else:
            logger.error("access check run %s: firm key material does not decrypt", run.pk)
            code = "certificate_unreadable"
            message = "No pudimos leer la llave del estudio guardada. Cárguela de nuevo para verificar."
        _all_items(run, lambda: _failed(code, message))
        _run_finish(run=run, code=code, message=message)  # as for a key found missing before the run
    except BaseException as exc:
        timed_out = isinstance(exc, SoftTimeLimitExceeded)
        if timed_out:
            logger.warning("access check run %s timed out", run.pk)
        else:
            logger.exception("access check run %s crashed", run.pk)
        code = "timeout" if timed_out else "internal_error"
        message = (
            "La verificación tardó más de lo esperado y se detuvo."
            if timed_out
            else "Ocurrió un error inesperado de nuestra parte al verificar. Nuestro equipo fue notificado."
        )
        _all_items(run, lambda: _failed(code, message))
        _run_finish(run=run, status=AccessCheckStatus.FAILED, code=code, message=message)
        if not isinstance(exc, Exception):
            raise
    run.refresh_from_db()
    return run


def _execute(run: AccessCheckRun) -> None:
    now = timezone.now()
    firm_key = FirmKey.objects.filter(pk=run.firm_key_id).first() if run.firm_key_id else None
    if firm_key is None or not firm_key.is_usable:
        message = "La llave del estudio ya no está guardada. Cárguela de nuevo para verificar."
        _all_items(run, lambda: _failed("firm_key_missing", message))
        _run_finish(run=run, code="firm_key_missing", message=message)
        return
    if firm_key.not_after <= now:
        # Never shown to the SII: it would refuse it, and each refusal counts against the holder.
        message = f"La llave del estudio de {firm_key.holder_name} venció; cargue una vigente."
        _all_items(run, lambda: _Outcome(AccessCheckItemStatus.PROBLEM, problem=AccessProblem.FIRM_KEY_EXPIRED,
                                         failure_code="firm_key_expired", failure_message=message))
        _run_finish(run=run, code="firm_key_expired", message=message)
        return
    if firm_key.rejected_code:
        message = "El SII rechazó la llave del estudio en una verificación anterior; cargue una nueva."
        _all_items(run, lambda: _Outcome(AccessCheckItemStatus.PROBLEM, problem=AccessProblem.FIRM_KEY_REJECTED,
                                         failure_code=firm_key.rejected_code, failure_message=message))
        _run_finish(run=run, code="firm_key_rejected", message=message)
        return
    until = _session_limit_until(run=run, firm_key=firm_key, now=now)
    if until is not None:
        _run_wait(run=run, until=until)
        return
    leases = _leases_wait(run=run, firm_key=firm_key)
    if leases is None:
        _run_wait(run=run, until=None)  # back in the queue, behind the others
        return
    with sii_leases_kept(leases):
        outcome = _read_sessions(run=run, firm_key=firm_key)
    if outcome is not None and outcome[0] == "rejected":
        rejected = FirmKey.objects.get(pk=firm_key.pk).rejected_code or "certificate_rejected"
        _run_finish(run=run, code=rejected, message="El SII rechazó la llave del estudio.")
        return
    if outcome is not None:
        code, retry_after = outcome
        if run.retry_count + 1 < SESSION_LIMIT_WAITS:
            AccessCheckRun.objects.filter(pk=run.pk).update(retry_count=run.retry_count + 1)
            wait = retry_after * settings.AUTORIZA_JOB_RETRY_DELAY_SCALE
            _run_wait(run=run, until=timezone.now() + timedelta(seconds=wait), code=code)
            return
        failure = failure_from_code(code)
        _all_items(run, lambda: _failed(code, failure.user_message))
        _run_finish(run=run, code=code, message=failure.user_message)
        return
    _run_finish(run=run)


def _leases_wait(*, run: AccessCheckRun, firm_key: FirmKey) -> Leases | None:
    """A place among the SII sessions of the firm key's RUT, waiting for one in this slot (the access
    check queue has slots of its own: waiting here delays no live authorization) for at most
    AUTORIZA_ACCESS_CHECK_LEASE_WAIT_SECONDS; None if none freed up by then."""
    keys = access_check_lease_keys(firm_key=firm_key)
    give_up = time.monotonic() + settings.AUTORIZA_ACCESS_CHECK_LEASE_WAIT_SECONDS
    while True:
        leases = sii_leases_acquire_keys(keys=keys, holder=f"check-{run.pk}")
        if leases is not None or time.monotonic() >= give_up:
            return leases
        _held(run).update(heartbeat_at=timezone.now())
        time.sleep(access_check_wait_seconds())


def _read_sessions(*, run: AccessCheckRun, firm_key: FirmKey) -> tuple[str, int] | None:
    """Read the run's PENDING companies in one SII session, and in new ones (at most
    AUTORIZA_ACCESS_CHECK_SESSION_RETRIES) for those a session failure left unread. Returns
    (code, retry_after) when the SII answered with a session limit (the rest stay PENDING),
    ("rejected", 0) when it refused the firm key (every company recorded), else None."""
    representative_rut = normalize_rut(firm_key.holder_rut)
    bot_settings = sii_settings_for(run.tenant).replace(
        company_pause_seconds=settings.AUTORIZA_ACCESS_CHECK_PAUSE_SECONDS, screenshots=False
    )
    last_beat = [time.monotonic()]

    def heartbeat(event: object) -> None:
        if time.monotonic() - last_beat[0] >= HEARTBEAT_EVERY_SECONDS:
            last_beat[0] = time.monotonic()
            _held(run).update(heartbeat_at=timezone.now())

    sessions = 0
    with firm_key_opened(firm_key=firm_key, purpose=f"verificación de acceso {run.pk}") as material:
        while True:
            pending = {
                item.company.rut: item
                for item in AccessCheckItem.objects.filter(run=run, status=AccessCheckItemStatus.PENDING).select_related("company")
            }
            if not pending:
                return None
            sessions += 1
            result = sii_bot.read_users(
                UsersReadRequest(tuple(pending)), material, settings=bot_settings, on_progress=heartbeat
            )
            _held(run).update(heartbeat_at=timezone.now())
            now = timezone.now()
            session_failure: dict[str, Any] | None = None
            for read in result.per_company:
                item = pending.get(read.company_rut)
                if item is None:
                    continue
                failure = read.failure
                if failure is not None:
                    code = str(failure.get("code", ""))
                    if _firm_key_refused(code) or code in SESSION_LIMIT_CODES or _session_retryable(failure):
                        session_failure = failure
                        break
                requested = company_requested_permissions(item.company)
                _item_record(item=item, outcome=_outcome_of(read, representative_rut=representative_rut,
                                                            requested=requested), now=now)
            if session_failure is None:
                continue  # every company recorded: the next loop finds none pending
            code = str(session_failure.get("code", ""))
            if _firm_key_refused(code):
                _firm_key_rejected(run=run, firm_key=firm_key, code=code)
                return "rejected", 0
            if code in SESSION_LIMIT_CODES:
                return code, int(session_failure.get("retry_after_seconds") or 3600)
            if sessions > settings.AUTORIZA_ACCESS_CHECK_SESSION_RETRIES:
                message = str(session_failure.get("user_message", ""))
                _all_items(run, lambda code=code, message=message: _failed(code, message))
                return None
            logger.info("access check run %s: session ended early (%s); a new session for the rest", run.pk, code)
            time.sleep(settings.AUTORIZA_ACCESS_CHECK_SESSION_RETRY_SECONDS * settings.AUTORIZA_JOB_RETRY_DELAY_SCALE)


def _firm_key_rejected(*, run: AccessCheckRun, firm_key: FirmKey, code: str) -> None:
    """The SII refused the firm key at login: mark it (no later check shows it to the SII again) and
    give every company not read yet FIRM_KEY_REJECTED."""
    now = timezone.now()
    FirmKey.objects.filter(pk=firm_key.pk, rejected_code="").update(rejected_code=code[:40], rejected_at=now)
    message = f"El SII rechazó la llave del estudio de {firm_key.holder_name}: {failure_label(code) or code}. Cargue una nueva."
    _all_items(run, lambda: _Outcome(AccessCheckItemStatus.PROBLEM, problem=AccessProblem.FIRM_KEY_REJECTED,
                                     failure_code=code, failure_message=message))
