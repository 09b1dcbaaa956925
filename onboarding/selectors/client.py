"""Reads for the client side: the firm a signup page belongs to, the client's own companies and
certificates, what the consent covers, and the live timeline of a job.

Every read that returns a company, certificate or job is scoped to the client who owns the company
(`company.owner == user`) or, for a company several people registered, to the claimant whose
certificates and jobs they are (see `CompanyClaim`); another client's id and a non-existent id look
the same (None).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Max, Q
from django.utils import timezone

from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    Certificate,
    ClaimStatus,
    ClientCompany,
    CompanyClaim,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobEvent,
    JobKind,
    JobStatus,
    Permission,
    Relationship,
    Representative,
    Tenant,
)
from onboarding.selectors.core import parse_uuid
from sii_bot.errors import CertificateRejected
from sii_bot.rut import InvalidRut, normalize_rut

__all__ = [
    "CERTIFICATE_FAILURE_CODES",
    "JOB_STEPS",
    "SII_REJECTED_CERTIFICATE_CODES",
    "CertificateRetention",
    "ConsentTerms",
    "FailureAdvice",
    "JobResultView",
    "JobStatusPoll",
    "JobTimeline",
    "JobWording",
    "TimelineStep",
    "certificate_in_active_job",
    "certificate_retention",
    "claim_has_rivals",
    "client_certificate_current",
    "client_certificate_get",
    "client_claim_get",
    "client_companies",
    "client_company_get",
    "client_company_settled",
    "client_job_active",
    "client_job_claimant_view",
    "client_job_latest",
    "consent_terms",
    "invitation_company_used_by",
    "job_failure_advice",
    "job_result_view",
    "job_status_etag",
    "job_status_etag_for_owner",
    "job_status_poll_get",
    "job_timeline",
    "job_wording",
    "representative_active",
    "rut_display",
    "tenant_get_by_slug",
]


def rut_display(rut: str | None) -> str:
    """The RUT as people write it ("13.322.924-8"); the input unchanged if it is not a valid RUT."""
    if not rut:
        return ""
    try:
        body, _, check_digit = normalize_rut(rut).partition("-")
    except InvalidRut:
        return rut
    groups = []
    while body:
        groups.insert(0, body[-3:])
        body = body[:-3]
    return f"{'.'.join(groups)}-{check_digit}"


# --- Tenants and representatives ------------------------------------------------------------------


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    """The firm whose public signup page is /registro/<slug>/, or None."""
    return Tenant.objects.filter(slug=slug).first()


def representative_active(*, tenant: Tenant) -> Representative | None:
    """The representative a new job authorizes: the oldest active one (the rule
    `enrollment_job_create` applies when it is not given one), or None."""
    return tenant.representatives.filter(is_active=True).order_by("created_at").first()


# --- The client's companies and certificates -------------------------------------------------------


def client_company_get(*, user: AbstractBaseUser, company_id: object) -> ClientCompany | None:
    """The company `company_id` if `user` owns it or claims it (tenant loaded), else None (also for
    anonymous users).

    For a claimant whose claim is not proven (see `CompanyClaim`) the instance is a display copy: it
    shows the company as that claimant typed it (legal name, their own name and e-mail) and their own
    progress (`stage`), and none of what the SII holds for the firm there: never save it.
    """
    if not user.is_authenticated:
        return None
    try:
        pk = int(str(company_id))
    except ValueError:
        return None
    company = (
        ClientCompany.objects.select_related("tenant")
        .filter(pk=pk)
        .filter(Q(owner=user) | Q(pk__in=CompanyClaim.objects.filter(user=user).values("company_id")))
        .first()
    )
    if company is not None:
        claim = client_claim_get(company=company, user=user)
        if claim is not None and claim.status != ClaimStatus.WON:
            _claimant_view(company, claim)
    return company


def client_companies(*, user: AbstractBaseUser) -> list[ClientCompany]:
    """The companies `user` registered — owns or claims (see `CompanyClaim`) — newest first, with
    their tenant; an unproven claimant's as their display copy (see `client_company_get`)."""
    claims = {claim.company_id: claim for claim in CompanyClaim.objects.filter(user=user).exclude(status=ClaimStatus.WON)}
    companies = list(
        ClientCompany.objects.select_related("tenant")
        .filter(Q(owner=user) | Q(pk__in=CompanyClaim.objects.filter(user=user).values("company_id")))
        .order_by("-created_at")
    )
    for company in companies:
        if company.pk in claims:
            _claimant_view(company, claims[company.pk])
    return companies


def client_claim_get(*, company: ClientCompany, user: AbstractBaseUser | AnonymousUser) -> CompanyClaim | None:
    """`user`'s claim on `company` (any status), or None (the owner of an invited company, or anyone
    else). A claim that is not WON limits what `user` sees of the company to their own rows."""
    if not user.is_authenticated:
        return None
    return CompanyClaim.objects.filter(tenant_id=company.tenant_id, company=company, user=user).first()


def _claimant_view(company: ClientCompany, claim: CompanyClaim) -> None:
    """Turn `company` (in memory) into what an unproven claimant may see of it (see `client_company_get`)."""
    latest = EnrollmentJob.objects.filter(claim=claim).order_by("-attempt").values_list("status", flat=True).first()
    company.legal_name = claim.legal_name or company.legal_name
    company.owner_name, company.owner_email = claim.name, claim.email
    company.stage = _CLAIM_STAGES.get(latest or "", CompanyStage.WAITING_CERTIFICATE)
    company.relationship = Relationship.ACTIVE
    company.sii_user_rut, company.sii_synced_at = "", None
    company.sii_admin = company.sii_sign = company.sii_registry = False


_CLAIM_STAGES = {
    JobStatus.QUEUED: CompanyStage.QUEUED,
    JobStatus.RUNNING: CompanyStage.RUNNING,
    JobStatus.SUCCEEDED: CompanyStage.AUTHORIZED,
    JobStatus.FAILED: CompanyStage.FAILED,
}


def _mine(claim: CompanyClaim | None) -> Q:
    """The certificates/jobs of a company that the viewer holding `claim` sees: an unproven
    claimant only their claim's; the owner the company's own (and their won claim's)."""
    if claim is None:
        return Q(claim__isnull=True)
    if claim.status == ClaimStatus.WON:
        return Q(claim__isnull=True) | Q(claim=claim)
    return Q(claim=claim)


def client_certificate_get(
    *, company: ClientCompany, certificate_id: object, claim: CompanyClaim | None = None
) -> Certificate | None:
    """One certificate uploaded for `company` that the viewer holding `claim` (None: the company's
    owner without a claim) may see (destroyed ones included), or None."""
    pk = parse_uuid(certificate_id)
    if pk is None:
        return None
    return Certificate.objects.filter(_mine(claim), tenant_id=company.tenant_id, company=company, pk=pk).first()


def client_certificate_current(*, company: ClientCompany, claim: CompanyClaim | None = None) -> Certificate | None:
    """The newest certificate of `company` the viewer holding `claim` sees whose key material is still
    stored, or None."""
    return (
        Certificate.objects.filter(
            _mine(claim),
            tenant_id=company.tenant_id,
            company=company,
            destroyed_at__isnull=True,
            sealed_material__isnull=False,
        )
        .order_by("-created_at")
        .first()
    )


def certificate_in_active_job(*, certificate: Certificate) -> bool:
    """True while a queued or running job is going to use this certificate."""
    return EnrollmentJob.objects.filter(certificate=certificate, status__in=ACTIVE_JOB_STATUSES).exists()


# Why a certificate's key is no longer stored, in the client's words.
DESTROY_REASON_LABELS: dict[str, str] = {
    "job_succeeded": "porque el trámite en el SII terminó bien",
    "sii_rejected": "porque el SII no aceptó ese certificado",
    "client_deleted": "a su pedido",
    "replaced": "porque subió otro certificado",
    "retention": "porque se cumplió el plazo de conservación",
    "relationship_ended": "porque terminó la relación con su estudio contable",
    "company_removed": "porque la empresa fue eliminada de Autoriza",
}


@dataclass(frozen=True)
class CertificateRetention:
    """What Autoriza keeps of a client's certificate after a job, and until when (for the client's pages).

    `stored`: the private key is still stored (sealed). Then `erase_by` is when the periodic purge erases
    it at the latest (`retention_days` after the upload, within the hour after), and `in_use` says a
    queued or running job still needs it (it cannot be deleted now). Otherwise `destroyed_at` and
    `destroyed_because` say when and why it was erased.
    """

    certificate_id: Any
    holder_name: str
    stored: bool
    retention_days: int
    erase_by: datetime
    in_use: bool
    destroyed_at: datetime | None
    destroyed_because: str


def certificate_retention(*, certificate: Certificate | None) -> CertificateRetention | None:
    """How long `certificate` stays stored and how it can go sooner; None when there is no certificate."""
    if certificate is None:
        return None
    days = settings.AUTORIZA_CERT_RETENTION_DAYS
    # The periodic purge (CELERY_BEAT_SCHEDULE) erases it within one of its periods after the retention.
    purge_every = float(settings.CELERY_BEAT_SCHEDULE["purge-expired-certificates"]["schedule"])
    stored = certificate.is_usable
    return CertificateRetention(
        certificate_id=certificate.pk,
        holder_name=certificate.holder_name,
        stored=stored,
        retention_days=days,
        erase_by=certificate.created_at + timedelta(days=days, seconds=purge_every),
        in_use=stored and certificate_in_active_job(certificate=certificate),
        destroyed_at=certificate.destroyed_at,
        destroyed_because=DESTROY_REASON_LABELS.get(certificate.destroy_reason, ""),
    )


def client_job_active(*, company: ClientCompany, claim: CompanyClaim | None = None) -> EnrollmentJob | None:
    """The queued or running job of `company` the viewer holding `claim` sees, or None (at most one)."""
    return (
        EnrollmentJob.objects.filter(
            _mine(claim), tenant_id=company.tenant_id, company=company, status__in=ACTIVE_JOB_STATUSES
        )
        .order_by("-attempt")
        .first()
    )


def client_job_latest(*, company: ClientCompany, claim: CompanyClaim | None = None) -> EnrollmentJob | None:
    """The most recent attempt of `company` the viewer holding `claim` sees, or None."""
    return (
        EnrollmentJob.objects.filter(_mine(claim), tenant_id=company.tenant_id, company=company)
        .order_by("-attempt")
        .first()
    )


def claim_has_rivals(*, claim: CompanyClaim) -> bool:
    """True when someone else also claims `claim`'s company (their claim pending too)."""
    return (
        CompanyClaim.objects.filter(company_id=claim.company_id, status=ClaimStatus.PENDING).exclude(pk=claim.pk).exists()
    )


def invitation_company_used_by(
    *, token: str, tenant: Tenant, user: AbstractBaseUser | AnonymousUser
) -> ClientCompany | None:
    """The company of the invitation named by `token` (a validly signed link of `tenant`) if that
    invitation was accepted and `user` owns its company — i.e. `user` is who used the link — else
    None (a forged token, another firm's, an unused or revoked one, or anyone else)."""
    from django.core import signing

    from onboarding.services.core import INVITATION_SALT

    if not user.is_authenticated:
        return None
    try:
        pk = signing.TimestampSigner(salt=INVITATION_SALT).unsign(token)
    except signing.BadSignature:
        return None
    invitation = Invitation.objects.filter(pk=pk, tenant=tenant, accepted_at__isnull=False).first()
    if invitation is None:
        return None
    return ClientCompany.objects.filter(pk=invitation.company_id, tenant=tenant, owner=user).first()


def client_job_claimant_view(*, job: EnrollmentJob) -> CompanyClaim | None:
    """The claim of a claimant's `job` (see `CompanyClaim`), with `job.company` turned into that
    claimant's display copy while the claim is not proven; None for the company's own jobs."""
    if job.claim_id is None:
        return None
    claim = CompanyClaim.objects.get(pk=job.claim_id)
    if claim.status != ClaimStatus.WON:
        _claimant_view(job.company, claim)
    return claim


# Why a company needs nothing more from its owner (`client_company_settled`).
SETTLED_AUTHORIZED = "authorized"
SETTLED_ENDED = "ended"


def client_company_settled(*, company: ClientCompany) -> str | None:
    """Why `company` needs no certificate from its owner now, or None when it does.

    SETTLED_ENDED: the relationship with the firm ended and the SII holds nobody of the firm there.
    SETTLED_AUTHORIZED: the relationship is active, the SII holds the firm's active representative with
    exactly the permissions the firm requests, and no replacement is left half done.
    None: anything else (nothing authorized yet, a representative to remove or replace, permissions to
    update). A job in flight is not looked at: callers send the owner to it first.
    """
    if company.relationship == Relationship.ENDED:
        return SETTLED_ENDED if not company.sii_user_rut else None
    if company.relationship != Relationship.ACTIVE or not company.sii_user_rut:
        return None
    tenant = company.tenant
    representative = representative_active(tenant=tenant)
    if representative is None or representative.rut != company.sii_user_rut:
        return None
    held = (company.sii_admin, company.sii_sign, company.sii_registry)
    if held != (tenant.grant_admin, tenant.grant_sign, tenant.grant_registry):
        return None
    from onboarding.selectors.changes import change_consent_terms  # it imports this module

    # A replacement that added the representative but did not remove the previous one is pending.
    if change_consent_terms(company=company) is not None:
        return None
    return SETTLED_AUTHORIZED


# --- Consent --------------------------------------------------------------------------------------

PERMISSION_LABELS: dict[str, str] = {str(choice.value): str(choice.label) for choice in Permission}


@dataclass(frozen=True)
class ConsentTerms:
    """Exactly what the client agrees to: who is authorized, with which permissions, in which company.

    `version` is a hash of all of it: the consent form carries it, so a consent given on a page that
    showed other terms (the firm changed its representative or permissions meanwhile) is refused.
    """

    company_name: str
    company_rut: str
    representative: Representative | None
    representative_name: str
    representative_rut: str
    permissions: tuple[str, ...]
    permission_labels: tuple[str, ...]
    tenant_name: str
    retention_days: int
    version: str


def consent_terms(*, company: ClientCompany, retention_days: int) -> ConsentTerms:
    """The terms a consent for `company` covers right now (the tenant's active representative and
    the tenant's requested permissions, in SII's order)."""
    tenant = company.tenant
    representative = representative_active(tenant=tenant)
    flags = ((Permission.ADMIN, tenant.grant_admin), (Permission.SIGN, tenant.grant_sign), (Permission.REGISTRY, tenant.grant_registry))
    permissions = tuple(str(code) for code, on in flags if on)
    parts = [
        str(company.pk),
        company.rut,
        company.legal_name,
        str(representative.pk) if representative else "-",
        representative.rut if representative else "-",
        representative.name if representative else "-",
        ",".join(permissions),
    ]
    version = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return ConsentTerms(
        company_name=company.legal_name,
        company_rut=rut_display(company.rut),
        representative=representative,
        representative_name=representative.name if representative else "",
        representative_rut=rut_display(representative.rut) if representative else "",
        permissions=permissions,
        permission_labels=tuple(PERMISSION_LABELS[code] for code in permissions),
        tenant_name=tenant.name,
        retention_days=retention_days,
        version=version,
    )


# --- The job's live timeline ----------------------------------------------------------------------

# The steps of SII's guide in the order the bot runs them; values match `sii_bot.Step`.
JOB_STEPS: tuple[tuple[str, str], ...] = (
    ("open_page", "Abrir Mantención de usuarios autorizados"),
    ("login", "Identificarse con el certificado digital"),
    ("company", "Ingresar el RUT de la empresa"),
    ("user_list", "Revisar los usuarios autorizados"),
    ("new_user", "Ingresar Nuevo Usuario"),
    ("fill_form", "Ingresar el RUT del usuario y sus permisos"),
    ("confirm", "Revisar la confirmación"),
    ("save", "Grabar Usuario"),
    ("result", "Leer el resultado"),
    ("logout", "Cerrar la sesión"),
)
_STEP_LABELS = dict(JOB_STEPS)


def _step_order() -> list[tuple[str, str]]:
    """The steps in the bot's order: `sii_bot.Step` when the engine defines it (its order wins, our
    Spanish labels are kept), else our own list."""
    try:
        from sii_bot import Step  # type: ignore[attr-defined]
    except ImportError:
        return list(JOB_STEPS)
    steps = []
    for member in Step:
        value = str(getattr(member, "value", member))
        label = _STEP_LABELS.get(value) or str(getattr(member, "label", "") or value.replace("_", " ").capitalize())
        steps.append((value, label))
    return steps or list(JOB_STEPS)


STEP_STATE_LABELS: dict[str, str] = {
    "pending": "Pendiente",
    "started": "En curso",
    "done": "Listo",
    "failed": "Con error",
    "skipped": "No fue necesario",
    "not_run": "No se realizó",
}

# Events that are not steps of the guide but news about the job as a whole.
INFO_EVENT_LABELS: dict[str, str] = {
    "queued": "En cola",
    "retry": "Reintento programado",
    "waiting": "Esperando turno en el SII",
    "finished": "Terminado",
    "late_result": "Resultado recibido tarde",
    "superseded": "No fue necesario",
    "certificate_deleted": "Certificado eliminado",
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
    extra: dict[str, Any] = field(default_factory=dict)


def job_timeline(*, job: EnrollmentJob, events: list[JobEvent]) -> JobTimeline:
    """Fold the job's events (oldest first) into the guide's steps.

    A scheduled retry runs the guide again from the start, so step states come only from the events
    after the last retry; every info event stays in `notes`.
    """
    order = _step_order()
    if getattr(job, "kind", "authorize") != "authorize":
        # Revocation / replacement (services.changes): the bot's steps for that kind of job.
        from onboarding.selectors.changes import job_step_flow

        order = job_step_flow(kind=job.kind)
    known = {code for code, _ in order}
    last_retry = max((index for index, event in enumerate(events) if event.step == "retry"), default=-1)
    per_step: dict[str, dict[str, Any]] = {}
    notes: list[TimelineNote] = []
    for index, event in enumerate(events):
        if event.step == "finished":
            continue  # the end is shown by the result or failure block, not repeated as news
        if event.step not in known:
            notes.append(
                TimelineNote(
                    code=event.step,
                    label=INFO_EVENT_LABELS.get(event.step, "Aviso"),
                    message=event.message,
                    at=event.created_at,
                    is_failure=event.status == "failed",
                )
            )
            continue
        if index < last_retry:
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
        if job.is_finished and state == "started":
            # The job ended while this step was in flight: it did not finish.
            state = "failed" if job.status == JobStatus.FAILED else "done"
        elif job.is_finished and state == "pending":
            # A finished job never comes back to this step: say why it did not run.
            state = "skipped" if job.status == JobStatus.SUCCEEDED else "not_run"
        message = slot.get("message", "")
        if message.startswith(label) or (state == "failed" and message == job.failure_message):
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
    return JobTimeline(steps=steps, notes=notes, current=current, done_count=done_count, summary=_summary(job, steps, current))


def _summary(job: EnrollmentJob, steps: list[TimelineStep], current: TimelineStep | None) -> str:
    """One sentence for screen readers (the live region announces it when it changes)."""
    noun = job_wording(job=job).noun
    if job.status == JobStatus.SUCCEEDED:
        return f"Listo: {noun} en el SII terminó."
    if job.status == JobStatus.FAILED:
        return f"{noun[:1].upper()}{noun[1:]} no se pudo completar."
    if job.status == JobStatus.QUEUED:
        return f"En cola: {noun} comenzará en breve." if not job.retry_count else "Reintento programado."
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
        noun, indefinite, done, again = "el retiro", "un retiro", "Retirado", "vuelva a confirmar el retiro"
    elif kind == JobKind.REPLACE:
        old = job.old_user_name or rut_display(job.old_user_rut)
        title, heading = "Reemplazo del representante en el SII", f"Reemplazo de {old} por {job.user_name}"
        noun, indefinite, done, again = "el reemplazo", "un reemplazo", "Reemplazado", "vuelva a confirmar el cambio"
    else:
        title, heading = "Autorización en el SII", f"Autorización de {job.user_name}"
        noun, indefinite, done, again = "la autorización", "una autorización", "Autorizado", "autorice nuevamente"
    return JobWording(
        kind=str(kind),
        title=title,
        heading=heading,
        noun=noun,
        indefinite=indefinite,
        status_label=done if job.status == JobStatus.SUCCEEDED else str(job.get_status_display()),
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
    )


# Failure codes that mean "this certificate will not do": the fix is another certificate.
CERTIFICATE_FAILURE_CODES = frozenset(
    {"certificate_rejected", "certificate_missing", "certificate_unreadable", "expired", "not_yet_valid"}
)
# Of those, the ones where the SII refused the certificate itself: the job's certificate is destroyed
# when it fails so (`services.core`), since offering it again could only fail the same way.
SII_REJECTED_CERTIFICATE_CODES = frozenset({CertificateRejected.code})
HOLDER_FAILURE_CODES = frozenset({"holder_not_administrator", "option_not_allowed"})


@dataclass(frozen=True)
class FailureAdvice:
    """What the client should do after a failed job: a sentence and, when it helps, a new certificate."""

    kind: str  # certificate | holder | sii | retry | firm
    text: str
    upload_another: bool


def job_failure_advice(*, job: EnrollmentJob) -> FailureAdvice | None:
    """Plain-Spanish next steps for a failed job (None unless the job failed)."""
    if job.status != JobStatus.FAILED:
        return None
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
    if code == "claim_lost":  # services.claims: another claimant was proven first
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
