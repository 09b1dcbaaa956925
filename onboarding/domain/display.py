"""How Autoriza names things to people: jobs and their states, attempts, steps, failures, audit
entries, permissions, RUTs and greetings. The single home of these rules, so the staff pages, the client pages, the CSV
export, the audit log and the e-mails never disagree (a removal never reads "Autorizado" anywhere).

Pure functions: no queries, no requests; they import only the models' enums and `sii_bot`'s failure
catalogue (plain Python). Spanish (es-CL) for everything they return.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from onboarding.models import AuditAction, JobKind, JobStatus, Permission
from sii_bot import Step, errors
from sii_bot.rut import InvalidRut, normalize_rut

__all__ = [
    "FAILURE_LABELS",
    "JOB_EVENT_LABELS",
    "PERMISSION_LABELS",
    "STEP_LABELS",
    "TONE_BAD",
    "TONE_NEUTRAL",
    "TONE_OK",
    "TONE_RUN",
    "TONE_WAIT",
    "Badge",
    "attempt_label",
    "audit_action_choices",
    "audit_action_label",
    "audit_badge",
    "audit_summary",
    "audit_value_label",
    "failure_label",
    "failure_lead",
    "failure_reason",
    "greeting",
    "job_kind_noun",
    "job_status_badge",
    "kind_attempt_numbers",
    "message_once",
    "permission_labels",
    "permission_rows",
    "rut_display",
    "ruts_in_text_display",
    "sentence_end",
    "step_label",
    "unavailable_permissions_note",
]


# --- RUTs and people --------------------------------------------------------------------------------


def sentence_end(name: str) -> str:
    """`name` ending a sentence: with its period, unless it already ends with one ("Ferretería Ltda."
    read "Ferretería Ltda.." at the end of a message)."""
    name = (name or "").rstrip()
    return name if name.endswith((".", "!", "?")) else f"{name}."


def rut_display(rut: str | None) -> str:
    """The RUT as people write it ("13.322.924-8"); the input unchanged if it is not a valid RUT."""
    if not rut:
        return ""
    try:
        body, _, check_digit = normalize_rut(str(rut)).partition("-")
    except InvalidRut:
        return str(rut)
    groups = []
    while body:
        groups.insert(0, body[-3:])
        body = body[:-3]
    return f"{'.'.join(groups)}-{check_digit}"


# A canonical RUT inside free text ("… (76086428-5) …"), not part of a longer number or word.
_CANONICAL_RUT_IN_TEXT = re.compile(r"(?<![\w.\-])(\d{7,8}-[\dkK])(?![\w\-])")


def ruts_in_text_display(text: str) -> str:
    """`text` with every canonical RUT in it written with dots, so stored free text (audit summaries
    keep canonical RUTs) shows RUTs as everything else does."""
    return _CANONICAL_RUT_IN_TEXT.sub(lambda match: rut_display(match.group(1)), text or "")


def greeting(name: str | None) -> str:
    """The one greeting of every e-mail: "Hola María:" (first name only), or "Hola:" without a name."""
    first = (name or "").split()
    return f"Hola {first[0]}:" if first else "Hola:"


# --- Jobs -----------------------------------------------------------------------------------------

# Badge tones (CSS classes `badge tone-<tone>`): what the state means, not which state it is.
TONE_OK = "ok"
TONE_BAD = "bad"
TONE_RUN = "run"
TONE_WAIT = "wait"
TONE_NEUTRAL = "neutral"


@dataclass(frozen=True)
class Badge:
    """A label and the tone its badge is drawn in."""

    label: str
    tone: str

    @property
    def css(self) -> str:
        return f"tone-{self.tone}"


# What a succeeded job did, by kind: never the model's "Autorizado" for a removal.
_SUCCEEDED_LABELS: dict[str, str] = {
    JobKind.AUTHORIZE: "Autorizado",
    JobKind.REVOKE: "Retirado",
    JobKind.REPLACE: "Reemplazado",
}


def job_status_badge(*, kind: str, status: str, outcome: str = "", retrying: bool = False) -> Badge:
    """The state of a job of `kind` as people read it, with its tone.

    `retrying`: a QUEUED job waiting for an automatic retry (after a transient failure) reads
    "Reintento programado", not "En cola". A succeeded authorization that only changed permissions
    (`outcome` "updated") reads "Permisos actualizados".
    """
    if status == JobStatus.SUCCEEDED:
        if kind == JobKind.AUTHORIZE and outcome == "updated":
            return Badge("Permisos actualizados", TONE_OK)
        return Badge(_SUCCEEDED_LABELS.get(kind, "Terminado"), TONE_OK)
    if status == JobStatus.FAILED:
        return Badge("Con error", TONE_BAD)
    if status == JobStatus.RUNNING:
        return Badge("En curso", TONE_RUN)
    if status == JobStatus.QUEUED:
        return Badge("Reintento programado" if retrying else "En cola", TONE_WAIT)
    return Badge(str(status), TONE_NEUTRAL)


_KIND_NOUNS: dict[str, str] = {
    JobKind.AUTHORIZE: "Autorización",
    JobKind.REVOKE: "Retiro",
    JobKind.REPLACE: "Reemplazo",
}


def job_kind_noun(kind: str) -> str:
    """"Autorización", "Retiro" or "Reemplazo"."""
    return _KIND_NOUNS.get(kind, "Trabajo")


def attempt_label(*, kind: str, number: int) -> str:
    """"Retiro, intento 1": attempts are counted per kind for people (the stored `attempt` is one
    sequence per company, shared by every kind)."""
    return f"{job_kind_noun(kind)}, intento {number}"


def kind_attempt_numbers(jobs: Iterable[Any]) -> dict[Any, int]:
    """Each job's number among the same company's jobs of its kind (1 for the first removal, even if
    it is the company's fifth job), by job pk. `jobs`: one company's jobs (with `pk`, `kind`, `attempt`)."""
    numbers: dict[Any, int] = {}
    seen: dict[str, int] = defaultdict(int)
    for job in sorted(jobs, key=lambda job: job.attempt):
        seen[job.kind] += 1
        numbers[job.pk] = seen[job.kind]
    return numbers


# --- Steps of a job ------------------------------------------------------------------------------

# Events about a job as a whole (not a step of the SII's guide).
JOB_EVENT_LABELS: dict[str, str] = {
    "queued": "En cola",
    "retry": "Reintento programado",
    "waiting": "Esperando turno en el SII",
    "finished": "Terminado",
    "late_result": "Resultado recibido tarde",
    "superseded": "No fue necesario",
    "certificate_deleted": "Certificado eliminado",
}

# Every step a job reports (`sii_bot.Step`, every kind's, in the words of the client's timeline) and
# every job-level event, by the `JobEvent.step` value. The order of the steps per kind of job is the
# selectors' (`job_step_flow`).
STEP_LABELS: dict[str, str] = {
    **{step.value: step.label for step in Step.__members__.values()},
    **JOB_EVENT_LABELS,
}


def step_label(step: str) -> str:
    """The Spanish name of a job's step or event ("login" → "Identificarse con el certificado
    digital"); an unknown one gets its code, readable ("new_step" → "New step")."""
    return STEP_LABELS.get(step, step.replace("_", " ").capitalize())


# --- Permissions ----------------------------------------------------------------------------------

PERMISSION_LABELS: dict[str, str] = {str(choice.value): str(choice.label) for choice in Permission}


def permission_labels(codes: Iterable[str]) -> tuple[str, ...]:
    """The SII's names of these `Permission` codes, in the order given ("Usuario Administrador", …)."""
    return tuple(PERMISSION_LABELS[code] for code in codes)


def permission_rows(codes: Iterable[str]) -> tuple[tuple[str, bool], ...]:
    """(label, requested?) for each of the six SII attributes, in the SII's order: the SI/NO list a
    page shows for what `codes` request."""
    wanted = set(codes)
    return tuple((label, code in wanted) for code, label in PERMISSION_LABELS.items())


def unavailable_permissions_note(result: object) -> str:
    """The Spanish note for requested attributes the company's SII page did not offer (a job's stored
    result, key "unavailable_permissions"); "" when there were none."""
    codes = result.get("unavailable_permissions") if isinstance(result, Mapping) else None
    if not codes:
        return ""
    labels = [label for code, label in PERMISSION_LABELS.items() if code in set(codes)]
    return (
        "El SII no ofrece en esta empresa: " + ", ".join(labels) + ". No se otorgaron (no se pueden otorgar "
        "aquí); el resto de los permisos solicitados quedó como se pidió."
    )


# --- Failures -------------------------------------------------------------------------------------

# A short Spanish name for every failure code a job can store: the bot's (sii_bot.errors, whose
# `user_message` is the full sentence kept on the job) and the web app's own. Staff see this name;
# the code itself only as a small support reference on the job page.
FAILURE_LABELS: dict[str, str] = {
    errors.EnrollmentFailure.code: "Falla en el trámite del SII",
    errors.CertificateRejected.code: "El SII rechazó el certificado",
    errors.HolderNotAdministrator.code: "El titular del certificado no administra la empresa",
    errors.CompanyNotAuthorized.code: "La empresa no puede operar en esta modalidad del SII",
    errors.OptionNotAllowed.code: "El titular no tiene acceso a la opción del SII",
    errors.TooManySessions.code: "Demasiadas sesiones abiertas en el SII",
    errors.LoginThrottled.code: "El SII bloqueó los ingresos por un tiempo",
    errors.SiiUnavailable.code: "SII no disponible",
    errors.WafRejected.code: "El SII rechazó la conexión por seguridad",
    errors.SessionExpired.code: "La sesión del SII se cerró",
    errors.UnexpectedPage.code: "Página inesperada del SII",
    errors.ConfirmationMismatch.code: "La confirmación del SII no coincidía",
    errors.UserRutInvalid.code: "El SII rechazó el RUT del usuario",
    errors.StepTimeout.code: "El SII tardó demasiado en responder",
    errors.JobTimeout.code: "El trámite en el SII tardó demasiado",
    errors.BrowserUnavailable.code: "No se pudo iniciar el navegador",
    errors.ServerCertificateUntrusted.code: "Conexión con el SII no verificada",
    errors.BrowserCrashed.code: "El navegador se detuvo",
    errors.JobCancelled.code: "Trámite detenido",
    errors.InternalError.code: "Error interno del robot",
    errors.EditScreenMismatch.code: "La ficha del usuario en el SII no coincidía",
    errors.DeleteUnavailable.code: "El SII no ofreció eliminar al usuario",
    errors.UserStillPresent.code: "El usuario sigue en la lista del SII",
    errors.VerificationFailed.code: "La lista del SII no quedó como se esperaba",
    errors.ReplacementIncomplete.code: "Reemplazo incompleto: el anterior sigue autorizado",
    errors.SiiOutage.code: "SII fuera de servicio",
    errors.CertificateLoginDisabled.code: "El SII no tiene habilitado el ingreso con certificado",
    errors.CertificateNotRead.code: "El SII no pudo leer el certificado",
    errors.CertificateRevoked.code: "Certificado revocado",
    errors.CertificateExpired.code: "Certificado vencido según el SII",
    errors.CertificateIssuerNotAccepted.code: "Proveedor del certificado no aceptado por el SII",
    errors.CertificateInvalid.code: "El SII no aceptó el certificado",
    errors.LegalRepresentativeMismatch.code: "El titular no es el representante legal según el SII",
    errors.AuthenticationLocked.code: "Ingreso al SII bloqueado",
    errors.PermissionsUnavailable.code: "El SII no ofrece los permisos solicitados",
    # The web app's own codes (services): the certificate and the worker.
    "certificate_missing": "Sin certificado: el cliente debe subir uno nuevo",
    "certificate_unreadable": "El certificado guardado no se pudo leer",
    "expired": "Certificado vencido",
    "not_yet_valid": "Certificado aún no vigente",
    "worker_lost": "Se interrumpió el proceso que lo ejecutaba",
    "timeout": "Tardó más de lo permitido",
    "claim_lost": "Otra persona acreditó primero ser dueña de la empresa",
}


def failure_label(code: str | None) -> str:
    """The short Spanish name of a stored failure code ("" for none). An unknown code gets its failure
    class' sentence (`sii_bot.errors.failure_from_code`), never the bare code."""
    if not code:
        return ""
    label = FAILURE_LABELS.get(code)
    if label is not None:
        return label
    failure = errors.failure_from_code(code)
    return failure.user_message if failure is not errors.EnrollmentFailure else "Error no clasificado"


def failure_lead(code: str | None, message: str | None) -> str:
    """The Spanish name of failure `code` to put before its `message`: "" when there is no code or the
    message already begins with the name (e.g. "El SII rechazó el certificado" before "El SII rechazó
    el certificado digital. Verifique…", which said it twice)."""
    label = failure_label(code)
    if label and " ".join((message or "").split()).casefold().startswith(label.casefold()):
        return ""
    return label


def failure_reason(code: str | None, message: str | None) -> str:
    """A failure in one line for e-mails: "<name>. <message>", the name said once (`failure_lead`);
    "sin clasificar" when there is neither name nor message."""
    lead = failure_lead(code, message)
    parts = (f"{lead}." if lead else "", (message or "").strip())
    return " ".join(part for part in parts if part) or "sin clasificar"


# --- Audit log ------------------------------------------------------------------------------------

_AUDIT_ACTION_LABELS: dict[str, str] = {
    **{str(value): str(label) for value, label in AuditAction.choices},
    AuditAction.RERUN: "Reintento",
}
# An audit entry that asked a client for a new certificate (`services.staff_jobs.company_certificate_request`)
# is an INVITATION entry with this marker in its details.
CERTIFICATE_REQUEST_MARKER = "certificate_request"

# A finished job's audit entry by kind (a failed one reads "<kind> con error").
_FINISHED_LABELS: dict[str, str] = {
    JobKind.AUTHORIZE: "Autorización terminada",
    JobKind.REVOKE: "Retiro terminado",
    JobKind.REPLACE: "Reemplazo terminado",
}

_FAILED_NOUNS: dict[str, str] = {JobKind.REVOKE: "el retiro", JobKind.REPLACE: "el reemplazo"}

_OUTCOME_LABELS: dict[str, str] = {
    "created": "usuario autorizado",
    "updated": "permisos actualizados",
    "already_authorized": "ya estaba autorizado",
    "revoked": "eliminado",
    "not_present": "ya no figuraba",
    "replaced": "reemplazado",
}


def audit_action_label(action: str, details: Mapping[str, Any] | None = None) -> str:
    """The Spanish name of an audit action ("Reintento", "Pedido de certificado", …)."""
    details = details if isinstance(details, Mapping) else {}
    if action == AuditAction.INVITATION and details.get(CERTIFICATE_REQUEST_MARKER):
        return "Pedido de certificado"
    if action == AuditAction.JOB_FINISHED:
        kind = str(details.get("kind") or JobKind.AUTHORIZE)
        if details.get("failure_code"):
            return f"{job_kind_noun(kind)} con error"
        return _FINISHED_LABELS.get(kind, "Trabajo terminado")
    return _AUDIT_ACTION_LABELS.get(action, action)


def audit_action_choices() -> list[tuple[str, str]]:
    """The audit filter's choices, in the Spanish of `audit_action_label`."""
    return [(str(value), _AUDIT_ACTION_LABELS[str(value)]) for value in AuditAction.values]


def audit_badge(action: str, details: Mapping[str, Any] | None = None) -> Badge:
    """The audit entry's badge: a finished job is red when it failed, green when it succeeded."""
    details = details if isinstance(details, Mapping) else {}
    label = audit_action_label(action, details)
    if action == AuditAction.JOB_FINISHED:
        return Badge(label, TONE_BAD if details.get("failure_code") else TONE_OK)
    return Badge(label, TONE_NEUTRAL)


def audit_value_label(key: str, value: Any) -> str | None:
    """A readable value for the audit details' machine codes (failure codes, outcomes, job kinds), or
    None when `key` holds no code."""
    if not isinstance(value, str) or not value:
        return None
    if key == "failure_code":
        return failure_label(value)
    if key == "outcome":
        return _OUTCOME_LABELS.get(value, value)
    if key == "kind":
        return job_kind_noun(value)
    return None


def audit_summary(summary: str, details: Mapping[str, Any] | None = None) -> str:
    """An audit summary as people read it: RUTs with dots, a trailing failure code or outcome
    ("…: waf_rejected", "… (not_present)") in Spanish, and a failed removal or replacement (`kind`
    in `details`) named as such, not as an authorization."""
    details = details if isinstance(details, Mapping) else {}
    text = ruts_in_text_display(summary)
    kind = details.get("kind")
    if kind in _FAILED_NOUNS and text.startswith("Falló la autorización"):
        text = f"Falló {_FAILED_NOUNS[kind]}{text[len('Falló la autorización'):]}"
    code = details.get("failure_code")
    if isinstance(code, str) and code and text.endswith(f": {code}"):
        text = f"{text[: -len(code)]}{failure_label(code)}"
    outcome = details.get("outcome")
    if isinstance(outcome, str) and outcome in _OUTCOME_LABELS and text.endswith(f" ({outcome})"):
        text = f"{text[: -len(outcome) - 2]}({_OUTCOME_LABELS[outcome]})"
    return text


# --- Saying a failure once -----------------------------------------------------------------------

# A scheduled retry's event: "<the failure's sentence> (Reintento 1 de 3, en unos 2 min.)".
_RETRY_MESSAGE = re.compile(r"^(?P<sentence>.*?)\s*\((?P<tail>[Rr]eintento [^()]*)\)\s*$", re.DOTALL)


def message_once(message: str, shown: set[str]) -> str:
    """`message` without the sentence a page already showed (`shown`, updated in place), so the
    same failure is said once: "<sentence> (Reintento 2 de 3, en unos 4 min.)" becomes
    "Reintento 2 de 3, en unos 4 min." when the sentence was shown above; "" when nothing is left."""
    message = (message or "").strip()
    if not message:
        return ""
    match = _RETRY_MESSAGE.match(message)
    sentence, tail = (match["sentence"].strip(), match["tail"].strip()) if match else (message, "")
    for seen in shown:
        if seen and sentence.startswith(seen):
            rest = sentence[len(seen):].strip()
            return " ".join(part for part in (rest, tail) if part)
    shown.add(sentence)
    return message
