"""Display filters for the firm's pages: RUTs with dots, durations, the SII's SI/NO.

Display only: nothing here reads the database or changes what is stored. The rules themselves live in
`onboarding.domain.display`; these filters only put them in the templates.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from onboarding.domain import display
from onboarding.domain.rules import job_needs_person
from onboarding.models import JobKind, JobStatus

register = template.Library()


@register.filter
def rut_display(value: object) -> str:
    """'76086428-5' → '76.086.428-5' (anything that isn't a RUT is returned as is)."""
    return display.rut_display(str(value or ""))


@register.filter
def rut(value: object) -> SafeString:
    """A RUT with dots in a `<span class="rut">` that never breaks across lines ("" for none)."""
    text = display.rut_display(str(value or ""))
    return format_html('<span class="rut">{}</span>', text) if text else SafeString("")


@register.filter
def job_badge(job: Any) -> SafeString:
    """The job's state badge in its own terms ("Retirado" for a removal, never "Autorizado")."""
    badge = display.job_status_badge(
        kind=getattr(job, "kind", JobKind.AUTHORIZE),
        status=job.status,
        outcome=getattr(job, "outcome", "") or "",
        retrying=job.status == JobStatus.QUEUED and bool(getattr(job, "retry_count", 0)),
    )
    return format_html('<span class="badge {}">{}</span>', badge.css, badge.label)


@register.filter
def permission_list(codes: object) -> str:
    """The SII's names of these permission codes, in the SII's order, joined ("Usuario
    Administrador, Firmar Documentos"); "ninguno" for none."""
    wanted = {str(code) for code in codes} if isinstance(codes, (list, tuple, set, frozenset)) else set()
    labels = [label for code, label in display.PERMISSION_LABELS.items() if code in wanted]
    return ", ".join(labels) or "ninguno"


@register.filter
def unavailable_note(result: object) -> str:
    """`display.unavailable_permissions_note` of a job's stored result."""
    return display.unavailable_permissions_note(result)


@register.filter
def needs_person(job: Any) -> bool:
    """Whether the job failed for a reason only a person can fix (`domain.rules.job_needs_person`)."""
    return job_needs_person(job)


@register.filter
def failure_label(code: object) -> str:
    """The Spanish name of a stored failure code ("" for none)."""
    return display.failure_label(str(code or ""))


@register.filter
def failure_lead(code: object, message: object) -> str:
    """The failure's Spanish name to say before `message`, or "" when the message already says it."""
    return display.failure_lead(str(code or ""), str(message or ""))


@register.filter
def duration(value: dt.timedelta | None) -> str:
    """A short Spanish duration: '0,4 s', '12 s', '3 min 05 s', '1 h 02 min'; '' for None."""
    if value is None:
        return ""
    seconds = max(value.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".", ",")
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def si_no(value: object) -> str:
    """True → 'SI', False → 'NO', as the SII writes its privileges (strings 'SI'/'NO' pass through)."""
    if isinstance(value, str):
        return value.strip().upper() or "—"
    if value is None:
        return "—"
    return "SI" if value else "NO"


# Spanish names for the keys the services put in AuditEntry.details; an unknown key shows as is.
_AUDIT_LABELS: dict[str, str] = {
    "after": "Después", "affected": "Clientes afectados", "before": "Antes", "certificate": "Certificado",
    "certificate_destroyed": "Certificado eliminado", "changes": "Cambios", "email": "Correo",
    "expires_at": "Vence", "failure_code": "Código de error", "fingerprint": "Huella", "invitation": "Invitación",
    "is_active": "Activo", "job": "Trabajo", "kind": "Tipo", "membership": "Miembro", "new": "Nuevo",
    "new_job": "Trabajo nuevo", "old": "Anterior", "outcome": "Resultado", "permissions": "Permisos",
    "reason": "Motivo", "relationship": "Relación", "representative": "Representante", "revoked_at": "Revocada",
    "role": "Rol", "rut": "RUT", "send_count": "Envíos", "sii_user_rut": "Usuario en el SII",
}


def _audit_value(value: object) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return "Sí"
    if value is False:
        return "No"
    if isinstance(value, dict):
        return "; ".join(f"{_AUDIT_LABELS.get(str(k), str(k))}: {_audit_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_audit_value(v) for v in value) or "—"
    return rut_display(value)


@register.filter
def audit_details(details: object) -> list[tuple[str, str]]:
    """An audit entry's details as (Spanish label, readable value) pairs, for a definition list:
    booleans as Sí/No, RUTs with dots, nested values inline (was Python's repr of the dict)."""
    if not isinstance(details, dict):
        return [("Detalle", _audit_value(details))] if details else []
    return [
        (_AUDIT_LABELS.get(str(key), str(key)), display.audit_value_label(str(key), value) or _audit_value(value))
        for key, value in details.items()
        if key != display.CERTIFICATE_REQUEST_MARKER  # the action's label already says it
    ]
