"""Reads for the client's pages about one job: its live timeline (the steps of the SII's guide per
kind of job, and the news about the job), how it is named, the status poll's ETag, the SII's
confirmation and what to do after a failure.

The poll (`job_status_poll_get`) runs one precompiled statement and loads no model: it answers every
few seconds for every open status page.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Max
from django.utils import timezone

from onboarding.domain.display import (
    JOB_EVENT_LABELS,
    PERMISSION_LABELS,
    job_status_badge,
    message_once,
    rut_display,
    step_label,
    unavailable_permissions_note,
)
from onboarding.domain.rules import (
    CERTIFICATE_FAILURE_CODES,
    CLAIM_LOST_CODE,
    HOLDER_FAILURE_CODES,
    SII_REJECTED_CERTIFICATE_CODES,
    job_needs_person,
)
from onboarding.models import ClientCompany, CompanyClaim, EnrollmentJob, JobEvent, JobKind, JobStatus
from onboarding.selectors.core import parse_uuid
from sii_bot import Step

__all__ = [
    "STEP_STATE_LABELS",
    "FailureAdvice",
    "JobResultView",
    "JobStatusPoll",
    "JobTimeline",
    "JobWording",
    "TimelineNote",
    "TimelineStep",
    "job_failure_advice",
    "job_result_view",
    "job_status_etag",
    "job_status_etag_for_owner",
    "job_status_poll_get",
    "job_step_flow",
    "job_timeline",
    "job_waits_for_retry",
    "job_wording",
]


# --- The job's live timeline ----------------------------------------------------------------------

# The `sii_bot.Step.flow` each kind of job runs.
_BOT_FLOWS: dict[str, str] = {JobKind.AUTHORIZE: "enroll", JobKind.REVOKE: "revoke", JobKind.REPLACE: "replace"}


def job_step_flow(*, kind: str) -> list[tuple[str, str]]:
    """(step value, Spanish label) of the steps a job of `kind` (a `JobKind`) reports, in order."""
    return [(step.value, step_label(step.value)) for step in Step.flow(_BOT_FLOWS.get(kind, "enroll"))]  # type: ignore[arg-type]


STEP_STATE_LABELS: dict[str, str] = {
    "pending": "Pendiente",
    "started": "En curso",
    "done": "Listo",
    "failed": "Con error",
    "skipped": "No fue necesario",
    "not_run": "No se realizó",
}


@dataclass(frozen=True)
class TimelineStep:
    """One step of the guide as the client sees it."""

    number: int
    code: str
    label: str
    state: str  # pending | started | done | failed | skipped | not_run
    state_label: str
    started_at: datetime | None
    finished_at: datetime | None
    message: str


@dataclass(frozen=True)
class TimelineNote:
    """An event about the job as a whole (queued, a scheduled retry, the end)."""

    code: str
    label: str
    message: str
    at: datetime
    is_failure: bool


@dataclass(frozen=True)
class JobTimeline:
    """The job's steps in order with their state, the news about the job, and a one-line summary."""

    steps: list[TimelineStep]
    notes: list[TimelineNote]
    current: TimelineStep | None
    done_count: int
    summary: str


def job_waits_for_retry(*, job: EnrollmentJob) -> bool:
    """True while `job` is queued again after a transient failure, waiting for its automatic retry."""
    return job.status == JobStatus.QUEUED and job.retry_count > 0


def job_timeline(*, job: EnrollmentJob, events: list[JobEvent]) -> JobTimeline:
    """Fold the job's events (oldest first) into the guide's steps.

    A scheduled retry runs the guide again from the start, so step states come from the latest run:
    the events after the last retry, or, while the retry is still waiting, the run that just failed
    (the client sees what the firm sees, and which step it stopped at). Every info event stays in
    `notes`, saying the failure's sentence once, and a finished job's notes end with how it ended.
    """
    order = job_step_flow(kind=job.kind)
    known = {code for code, _ in order}
    retries = [index for index, event in enumerate(events) if event.step == "retry"]
    waiting = job_waits_for_retry(job=job) and bool(retries)
    if waiting:
        # The run that failed: from the retry before it (if any) up to the retry now waiting.
        run_start, run_end = (retries[-2] if len(retries) > 1 else -1), retries[-1]
    else:
        run_start, run_end = (retries[-1] if retries else -1), len(events)
    # The failure's sentence is shown above the steps (failed, or waiting for a retry): not again here.
    shown: set[str] = {job.failure_message} if job.failure_message and (waiting or job.status == JobStatus.FAILED) else set()
    per_step: dict[str, dict[str, Any]] = {}
    notes: list[TimelineNote] = []
    for index, event in enumerate(events):
        if event.step == "finished":
            continue  # the end is added once below, without repeating the failure
        if event.step not in known:
            notes.append(
                TimelineNote(
                    code=event.step,
                    label=JOB_EVENT_LABELS.get(event.step, "Aviso"),
                    message=message_once(event.message, shown),
                    at=event.created_at,
                    is_failure=event.status == "failed",
                )
            )
            continue
        if not run_start < index < run_end:
            continue
        slot = per_step.setdefault(event.step, {"state": "pending", "started_at": None, "finished_at": None, "message": ""})
        if event.status == "started":
            slot["started_at"] = slot["started_at"] or event.created_at
            slot["state"] = "started"
        elif event.status in ("done", "failed", "skipped"):
            slot["state"] = event.status
            slot["finished_at"] = event.created_at
            slot["started_at"] = slot["started_at"] or event.created_at
        if event.message:
            slot["message"] = event.message
    steps: list[TimelineStep] = []
    for number, (code, label) in enumerate(order, start=1):
        slot = per_step.get(code, {})
        state = slot.get("state", "pending")
        if (job.is_finished or waiting) and state == "started":
            # The run ended while this step was in flight: it did not finish.
            state = "done" if job.status == JobStatus.SUCCEEDED else "failed"
        elif job.is_finished and state == "pending":
            # A finished job never comes back to this step: say why it did not run.
            state = "skipped" if job.status == JobStatus.SUCCEEDED else "not_run"
        message = slot.get("message", "")
        if message.startswith(label) or (state == "failed" and message in shown):
            message = ""  # "<label>: listo." says nothing the state does not; the failure is shown above
        steps.append(
            TimelineStep(
                number=number,
                code=code,
                label=label,
                state=state,
                state_label=STEP_STATE_LABELS.get(state, state),
                started_at=slot.get("started_at"),
                finished_at=slot.get("finished_at"),
                message=message,
            )
        )
    current = next((step for step in steps if step.state in ("started", "failed")), None)
    done_count = sum(step.state in ("done", "skipped") for step in steps)
    summary = _summary(job, steps, current)
    if job.is_finished:
        ended_at = job.finished_at or next(
            (event.created_at for event in reversed(events) if event.step == "finished"), None
        )
        if ended_at is not None:
            notes.append(
                TimelineNote(
                    code="finished",
                    label=JOB_EVENT_LABELS["finished"],
                    message=summary,
                    at=ended_at,
                    is_failure=job.status == JobStatus.FAILED,
                )
            )
    return JobTimeline(steps=steps, notes=notes, current=current, done_count=done_count, summary=summary)


def _summary(job: EnrollmentJob, steps: list[TimelineStep], current: TimelineStep | None) -> str:
    """One sentence for screen readers (the live region announces it when it changes)."""
    noun = job_wording(job=job).noun
    if job.status == JobStatus.SUCCEEDED:
        return f"Listo: {noun} en el SII terminó."
    if job.status == JobStatus.FAILED:
        return f"{noun[:1].upper()}{noun[1:]} no se pudo completar."
    if job.status == JobStatus.QUEUED:
        if not job.retry_count:
            return f"En cola: {noun} comenzará en breve."
        if job.run_after is not None:
            return f"Reintento programado a las {timezone.localtime(job.run_after):%H:%M}."
        return "Reintento programado."
    if current is not None:
        return f"Paso {current.number} de {len(steps)}: {current.label}."
    return f"{noun[:1].upper()}{noun[1:]} está en curso."


@dataclass(frozen=True)
class JobWording:
    """How the client's pages name a job of one kind: an authorization, a removal (REVOKE) or a
    replacement (REPLACE). Every page and badge about the job uses it, so a removal never reads as an
    authorization."""

    kind: str
    title: str  # the page title: "Retiro del usuario en el SII"
    heading: str  # "Retiro de ALEX BRITO MARDONES"
    noun: str  # with its article, lower case: "el retiro"
    indefinite: str  # "un retiro"
    status_label: str  # the badge: "Retirado" once succeeded, else the status' own label
    failure_title: str  # "No se pudo completar el retiro"
    again: str  # what the owner does after fixing a failure: "vuelva a confirmar el retiro"


def job_wording(*, job: EnrollmentJob) -> JobWording:
    """The Spanish names of `job` for the client's pages (see `JobWording`); no query."""
    kind = getattr(job, "kind", JobKind.AUTHORIZE)
    if kind == JobKind.REVOKE:
        title, heading = "Retiro del usuario en el SII", f"Retiro de {job.user_name}"
        noun, indefinite, again = "el retiro", "un retiro", "vuelva a confirmar el retiro"
    elif kind == JobKind.REPLACE:
        old = job.old_user_name or rut_display(job.old_user_rut)
        title, heading = "Reemplazo del representante en el SII", f"Reemplazo de {old} por {job.user_name}"
        noun, indefinite, again = "el reemplazo", "un reemplazo", "vuelva a confirmar el cambio"
    else:
        title, heading = "Autorización en el SII", f"Autorización de {job.user_name}"
        noun, indefinite, again = "la autorización", "una autorización", "autorice nuevamente"
    return JobWording(
        kind=str(kind),
        title=title,
        heading=heading,
        noun=noun,
        indefinite=indefinite,
        status_label=job_status_badge(
            kind=str(kind), status=job.status, outcome=job.outcome, retrying=job_waits_for_retry(job=job)
        ).label,
        failure_title=f"No se pudo completar {noun}",
        again=again,
    )


def _status_etag(job_id: object, status: str, retry_count: int, heartbeat_at: datetime | None,
                 finished_at: datetime | None, last_event_id: int | None) -> str:
    parts = [
        "v1",
        str(job_id),
        status,
        str(retry_count),
        heartbeat_at.isoformat() if heartbeat_at else "-",
        finished_at.isoformat() if finished_at else "-",
        str(last_event_id or 0),
    ]
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24] + '"'


def job_status_etag(*, job: EnrollmentJob) -> str:
    """A validator that changes whenever the status partial would render differently: the job's
    status, retry count, heartbeat and finish time, and its latest event id (one query)."""
    last_event_id = JobEvent.objects.filter(job_id=job.pk).aggregate(last=Max("id"))["last"] or 0
    return _status_etag(job.pk, job.status, job.retry_count, job.heartbeat_at, job.finished_at, last_event_id)


def job_status_etag_for_owner(*, user: AbstractBaseUser | AnonymousUser, job_id: object) -> str | None:
    """`job_status_etag` of a job of a company `user` owns, in one statement that loads no model; None
    when it is not theirs or does not exist (the same rule as `access.client_job_or_404`)."""
    if not user.is_authenticated:
        return None
    poll = job_status_poll_get(job_id=job_id, owner_id=user.pk)
    return None if poll is None else poll.etag


@dataclass(frozen=True, slots=True)
class JobStatusPoll:
    """A status poll's answer, before the poller's session is trusted: the ETag, and the owner's
    password hash and active flag, which `onboarding.session_auth` checks the session against."""

    etag: str
    # The owner's password hash: kept out of reprs, so a traceback or a log line never shows it.
    owner_password: str = field(repr=False)
    owner_is_active: bool


# The poll's statement, one per database vendor (quoting differs), built on first use: the ORM would
# build and compile it on every poll, which costs several times what running it does.
_POLL_SQL: dict[str, str] = {}


def _poll_sql(connection: BaseDatabaseWrapper) -> str:
    sql = _POLL_SQL.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        job, company, event, claim = EnrollmentJob._meta, ClientCompany._meta, JobEvent._meta, CompanyClaim._meta
        owner = get_user_model()._meta

        def col(meta: Any, name: str) -> str:
            return qn(meta.get_field(name).column)

        sql = (
            f"SELECT j.{col(job, 'status')}, j.{col(job, 'retry_count')}, j.{col(job, 'heartbeat_at')}, "
            f"j.{col(job, 'finished_at')}, "
            f"(SELECT e.{col(event, 'id')} FROM {qn(event.db_table)} e WHERE e.{col(event, 'job')} = j.{col(job, 'id')} "
            f"ORDER BY e.{col(event, 'id')} DESC LIMIT 1), "
            f"u.{col(owner, 'password')}, u.{col(owner, 'is_active')} "
            f"FROM {qn(job.db_table)} j "
            f"INNER JOIN {qn(company.db_table)} c ON c.{col(company, 'id')} = j.{col(job, 'company')} "
            # A claimant's job is its claimant's; the company's own jobs are its owner's.
            f"LEFT OUTER JOIN {qn(claim.db_table)} k ON k.{col(claim, 'id')} = j.{col(job, 'claim')} "
            f"INNER JOIN {qn(owner.db_table)} u ON u.{qn(owner.pk.column)} = CASE WHEN j.{col(job, 'claim')} IS NULL "
            f"THEN c.{col(company, 'owner')} ELSE k.{col(claim, 'user')} END "
            f"WHERE j.{col(job, 'id')} = %s AND u.{qn(owner.pk.column)} = %s"
        )
        _POLL_SQL[connection.vendor] = sql
    return sql


def _aware(value: datetime | None, connection: BaseDatabaseWrapper) -> datetime | None:
    """A datetime as the ORM returns it (SQLite gives naive UTC), so the ETag matches `job_status_etag`."""
    if value is not None and settings.USE_TZ and timezone.is_naive(value):
        return timezone.make_aware(value, connection.timezone)
    return value


def job_status_poll_get(*, job_id: object, owner_id: object) -> JobStatusPoll | None:
    """The status ETag of job `job_id` if it is the job of the user whose primary key is `owner_id`
    (the claimant's, for a claimant's job; else the company owner's), with that user's password hash and active flag; None when there is no such job (not
    theirs, or none, or a malformed id). One precompiled statement, no model.

    The ownership rule is `access.client_job_or_404`'s; the caller must still verify that the request
    really is that user's (`onboarding.session_auth.session_claim_verified`) before answering."""
    pk = parse_uuid(job_id)
    if pk is None or owner_id is None:
        return None
    connection = connections[router.db_for_read(EnrollmentJob)]
    params = [
        EnrollmentJob._meta.pk.get_db_prep_value(pk, connection),
        get_user_model()._meta.pk.get_db_prep_value(owner_id, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_poll_sql(connection), params)
        row = cursor.fetchone()
    if row is None:
        return None
    status, retry_count, heartbeat_at, finished_at, last_event_id, password, is_active = row
    etag = _status_etag(
        pk, status, retry_count, _aware(heartbeat_at, connection), _aware(finished_at, connection), last_event_id
    )
    return JobStatusPoll(etag=etag, owner_password=password, owner_is_active=bool(is_active))


# --- The result and what to do after a failure ------------------------------------------------------
OUTCOME_LABELS: dict[str, str] = {
    "created": "Usuario autorizado",
    "updated": "Permisos actualizados",
    "already_authorized": "Ya estaba autorizado; no se hizo ningún cambio",
}


@dataclass(frozen=True)
class JobResultView:
    """SII's confirmation of the authorized user, ready to print like SII's own table."""

    outcome: str
    outcome_label: str
    company_name: str
    company_rut: str
    user_rut: str
    user_name: str
    admin: str
    sign: str
    registry: str
    authorized_by: str
    # (label, "SI"/"NO") for the attributes beyond the first three that the SII's page showed.
    extra_flags: tuple[tuple[str, str], ...] = ()
    # The Spanish note for requested attributes the company's SII page did not offer ("" for none).
    unavailable_note: str = ""


def _si_no(value: object) -> str:
    if isinstance(value, str):
        return "SI" if value.strip().upper() in ("SI", "SÍ", "S", "TRUE", "1") else "NO"
    return "SI" if value else "NO"


def job_result_view(*, job: EnrollmentJob) -> JobResultView | None:
    """The confirmation SII showed for a succeeded job (from `job.result`), or None."""
    if job.status != JobStatus.SUCCEEDED:
        return None
    result = job.result if isinstance(job.result, dict) else {}
    authorized_by = str(result.get("authorized_by") or "")
    return JobResultView(
        outcome=job.outcome,
        outcome_label=OUTCOME_LABELS.get(job.outcome, "Autorización completada"),
        company_name=str(result.get("company_name") or job.company.legal_name),
        company_rut=rut_display(str(result.get("company_rut") or job.company.rut)),
        user_rut=rut_display(str(result.get("user_rut") or job.user_rut)),
        user_name=str(result.get("user_name") or job.user_name),
        admin=_si_no(result.get("admin", job.grant_admin)),
        sign=_si_no(result.get("sign", job.grant_sign)),
        registry=_si_no(result.get("registry", job.grant_registry)),
        authorized_by=rut_display(authorized_by) if authorized_by[:1].isdigit() else authorized_by,
        extra_flags=tuple(
            (PERMISSION_LABELS[code], _si_no(result[code]))
            for code in ("folios", "annul", "send")
            if result.get(code) is not None
        ),
        unavailable_note=unavailable_permissions_note(result),
    )


# Failure codes that mean "this certificate will not do": the fix is another certificate.
@dataclass(frozen=True)
class FailureAdvice:
    """What the client should do after a failed job: a sentence and, when it helps, a new certificate."""

    kind: str  # certificate | holder | sii | retry | firm
    text: str
    upload_another: bool
    # Only a person can fix it (`domain.rules.job_needs_person`): nothing is retried by itself.
    needs_person: bool = False


def job_failure_advice(*, job: EnrollmentJob) -> FailureAdvice | None:
    """Plain-Spanish next steps for a failed job (None unless the job failed), saying whether only a
    person can fix it."""
    if job.status != JobStatus.FAILED:
        return None
    return replace(_failure_advice(job), needs_person=job_needs_person(job))


def _failure_advice(job: EnrollmentJob) -> FailureAdvice:
    code = job.failure_code
    firm = job.tenant.name
    again = job_wording(job=job).again
    if code in SII_REJECTED_CERTIFICATE_CODES:
        return FailureAdvice(
            "certificate",
            "Como el SII no acepta ese certificado, lo eliminamos de nuestros sistemas. Suba otro certificado "
            f"digital vigente, emitido por una entidad acreditada en Chile, y {again}.",
            upload_another=True,
        )
    if code in CERTIFICATE_FAILURE_CODES:
        return FailureAdvice(
            "certificate",
            f"Suba otro certificado digital vigente (o vuelva a exportar el suyo) y {again}.",
            upload_another=True,
        )
    if code in HOLDER_FAILURE_CODES:
        return FailureAdvice(
            "holder",
            "Use el certificado digital de un representante legal de la empresa o de un usuario que ya sea "
            f"administrador de la empresa en el SII, y {again}.",
            upload_another=True,
        )
    if code == CLAIM_LOST_CODE:
        return FailureAdvice(
            "firm", f"Si usted administra esta empresa y cree que es un error, comuníquese con {firm}.", upload_another=False
        )
    if code == "company_not_authorized":
        return FailureAdvice(
            "sii",
            "Consulte al SII (Mesa de Ayuda o una oficina) por qué la empresa no puede operar en esta modalidad. "
            f"Cuando esté resuelto, avísele a {firm} para volver a intentarlo.",
            upload_another=False,
        )
    if job.failure_retryable:
        return FailureAdvice(
            "retry",
            f"Suele ser un problema pasajero del SII. {firm} fue notificado y lo reintentaremos; "
            "no necesita hacer nada por ahora.",
            upload_another=False,
        )
    return FailureAdvice(
        "firm",
        f"{firm} fue notificado y revisará el caso. Le escribirán si necesitan algo de usted.",
        upload_another=False,
    )
