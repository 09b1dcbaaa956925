"""Services for the firm's side: invitations (one or from a CSV), tenant settings, representatives,
the team and its roles, and bulk re-runs.

HackSoft style: keyword-only arguments, `<entity>_<action>` names, a `ServiceError` with a Spanish
message for every refusal. Each write done by a person leaves an audit entry; settings changes
record what the values were before and after.
"""
from __future__ import annotations

import csv
import io
import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.formats import date_format
from django.utils.http import urlsafe_base64_encode

from onboarding import selectors
from onboarding.domain.display import attempt_label, greeting, rut_display
from onboarding.models import (
    AuditAction,
    ClientCompany,
    CompanyStage,
    EnrollmentJob,
    Invitation,
    JobStatus,
    Membership,
    Representative,
    Role,
    SiiEnvironment,
    Tenant,
)
from onboarding.services.core import ServiceError, audit_record, client_company_create
from onboarding.services.core import membership_add as _membership_add
from onboarding.services.core import representative_add as _representative_add
from onboarding.services.jobs.lifecycle import enrollment_job_rerun
from sii_bot.rut import InvalidRut, normalize_rut

logger = logging.getLogger(__name__)

# How long an invitation link stays usable after it is sent (or re-sent).
INVITATION_TTL_DAYS = 14
# Caps on a CSV import, so one upload can't tie up a web worker: rows after the header, and bytes.
INVITATION_CSV_MAX_ROWS = 500
INVITATION_CSV_MAX_BYTES = 256 * 1024
# At most this many jobs in one bulk re-run request (the dashboard page holds 50 rows).
RERUN_BULK_MAX = 200

__all__ = [
    "CERTIFICATE_REQUEST_EVERY_HOURS",
    "INVITATION_CSV_MAX_BYTES",
    "INVITATION_CSV_MAX_ROWS",
    "INVITATION_TTL_DAYS",
    "RERUN_BULK_MAX",
    "InvitationImportReport",
    "InvitationImportRow",
    "RerunOutcome",
    "company_certificate_request",
    "enrollment_job_retry_now",
    "enrollment_jobs_rerun",
    "invitation_create",
    "invitation_link",
    "invitation_resend",
    "invitation_revoke",
    "invitations_import_csv",
    "member_add",
    "member_password_link",
    "member_remove",
    "member_role_change",
    "representative_create",
    "representative_deactivate",
    "representative_reactivate",
    "tenant_settings_update",
]


# --- Invitations --------------------------------------------------------------------------------


def invitation_link(*, invitation: Invitation) -> str:
    """The absolute signup link for this invitation: `client:signup` + `?invitacion=<signed token>`.

    Falls back to the literal path `/registro/<slug>/` while the client side has no `client:signup`.
    """
    from onboarding.services.core import invitation_token

    slug = invitation.tenant.slug
    try:
        path = reverse("client:signup", kwargs={"tenant_slug": slug})
    except NoReverseMatch:
        path = f"/registro/{slug}/"
    return f"{settings.AUTORIZA_BASE_URL.rstrip('/')}{path}?invitacion={invitation_token(invitation=invitation)}"


def _invitation_message(invitation: Invitation) -> EmailMessage:
    """The invitation email (Spanish, plain text) with a fresh signed link."""
    tenant = invitation.tenant
    company = invitation.company
    hello = greeting(invitation.name)
    expires = date_format(timezone.localtime(invitation.expires_at), "j \\d\\e F \\d\\e Y")
    body = (
        f"{hello}\n\n"
        f"{tenant.name}, su estudio contable, le invita a autorizar a su representante como usuario de "
        f"{company.legal_name} (RUT {rut_display(company.rut)}) en el SII.\n\n"
        "Con Autoriza lo hace en pocos minutos con su certificado digital: lo usamos una sola vez, "
        "cifrado, y lo eliminamos al terminar.\n\n"
        f"Para comenzar, abra este enlace (válido hasta el {expires}):\n"
        f"{invitation_link(invitation=invitation)}\n\n"
        "Si no esperaba este correo, puede ignorarlo.\n\n"
        f"— Autoriza, para {tenant.name}"
    )
    return EmailMessage(
        subject=f"{tenant.name} le invita a autorizar a su contador en el SII",
        body=body,
        to=[invitation.email],
    )


def _invitations_send(invitations: list[Invitation]) -> int:
    """Email each invitation over one connection and count the send on its row.

    Returns how many were sent. A mail outage is logged, not raised: the rows stay and the firm
    can resend from the list (which shows "no enviada").
    """
    if not invitations:
        return 0
    messages = [_invitation_message(invitation) for invitation in invitations]
    try:
        with get_connection() as connection:
            connection.send_messages(messages)
    except Exception:
        logger.exception("sending %s invitation email(s) failed", len(messages))
        return 0
    now = timezone.now()
    Invitation.objects.filter(pk__in=[invitation.pk for invitation in invitations]).update(
        sent_at=now, send_count=F("send_count") + 1
    )
    for invitation in invitations:
        invitation.sent_at = now
        invitation.send_count += 1
    return len(invitations)


_BLOCKED_MESSAGES = {
    selectors.BLOCKED_CLIENT: "Ya es cliente del estudio: búsquela en el panel.",
    selectors.BLOCKED_OPEN_INVITATION: "Ya tiene una invitación vigente: use «Reenviar» en la lista de invitaciones.",
}


def _invitation_insert(
    *, tenant: Tenant, rut: str, legal_name: str, contact_name: str, email: str, actor: AbstractBaseUser | None
) -> Invitation:
    """Create the INVITED company (or reuse an unclaimed one whose invitations all closed) and its
    open invitation (no email), audited. Call inside a transaction; raises ServiceError when the
    RUT is already a client or already has an open invitation."""
    blocker = selectors.company_invitation_blockers(tenant=tenant, ruts={rut}).get(rut)
    if blocker:
        raise ServiceError(_BLOCKED_MESSAGES[blocker], code="company_exists")
    company = selectors.company_reinvitable(tenant=tenant, rut=rut)
    if company is not None:
        # Invited before, never claimed, link revoked or expired: a fresh invitation for the same row.
        ClientCompany.objects.filter(pk=company.pk).update(
            legal_name=legal_name.strip(), owner_name=contact_name.strip(), owner_email=email.strip()
        )
        company.legal_name, company.owner_name, company.owner_email = legal_name.strip(), contact_name.strip(), email.strip()
    else:
        try:
            company = client_company_create(
                tenant=tenant,
                rut=rut,
                legal_name=legal_name,
                owner_name=contact_name,
                owner_email=email,
                stage=CompanyStage.INVITED,
            )
        except ServiceError as error:
            if error.code == "company_exists":
                # Registered concurrently. Core's message speaks to the client; the firm needs this one.
                raise ServiceError(_BLOCKED_MESSAGES[selectors.BLOCKED_CLIENT], code="company_exists") from None
            raise
    invitation = Invitation.objects.create(
        tenant=tenant,
        company=company,
        email=email.strip(),
        name=contact_name.strip(),
        created_by=actor,
        expires_at=timezone.now() + timedelta(days=INVITATION_TTL_DAYS),
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action=AuditAction.INVITATION,
        company=company,
        summary=f"Invitación a {company.legal_name} ({rut_display(company.rut)}) enviada a {invitation.email}",
        details={"invitation": invitation.pk, "email": invitation.email, "rut": company.rut},
    )
    return invitation


def invitation_create(
    *, tenant: Tenant, rut: str, legal_name: str, contact_name: str, email: str, actor: AbstractBaseUser | None
) -> Invitation:
    """Invite one client: a new INVITED company, an invitation valid INVITATION_TTL_DAYS, the email.

    Returns the invitation (`sent_at` is None if the email could not be sent). Raises ServiceError
    for an invalid RUT or email, a missing legal name, a RUT that is already a client, or one with an
    open invitation. A company invited before whose links were all revoked or expired, and that
    nobody claimed, is invited again (same row, new invitation).
    """
    canonical = _rut_or_error(rut)
    _email_or_error(email)
    if not legal_name.strip():
        raise ServiceError("Ingrese la razón social de la empresa.", code="legal_name_missing")
    with transaction.atomic():
        invitation = _invitation_insert(
            tenant=tenant, rut=canonical, legal_name=legal_name, contact_name=contact_name, email=email, actor=actor
        )
    invitation.tenant = tenant
    _invitations_send([invitation])
    return invitation


def invitation_resend(*, invitation: Invitation, actor: AbstractBaseUser | None) -> Invitation:
    """Send the invitation again with a new expiry (now + INVITATION_TTL_DAYS); `send_count` + 1.

    Raises ServiceError if it was revoked or already accepted, or if the email could not be sent.
    """
    expires_at = timezone.now() + timedelta(days=INVITATION_TTL_DAYS)
    # Compare-and-set: a revoke or an acceptance that lands first wins, and we refuse.
    moved = Invitation.objects.filter(
        pk=invitation.pk, tenant_id=invitation.tenant_id, revoked_at__isnull=True, accepted_at__isnull=True
    ).update(expires_at=expires_at)
    if not moved:
        raise ServiceError(
            "Esta invitación ya fue revocada o aceptada: no se puede reenviar.", code="invitation_closed"
        )
    invitation.expires_at = expires_at
    if not _invitations_send([invitation]):
        raise ServiceError(
            "No pudimos enviar el correo. Intente nuevamente en unos minutos.", code="email_failed"
        )
    audit_record(
        tenant=invitation.tenant,
        actor=actor,
        action=AuditAction.INVITATION,
        company=invitation.company,
        summary=f"Invitación a {invitation.company.legal_name} reenviada a {invitation.email}",
        details={"invitation": invitation.pk, "send_count": invitation.send_count, "expires_at": expires_at.isoformat()},
    )
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: AbstractBaseUser | None) -> Invitation:
    """Kill the invitation's link now (`revoked_at`). Raises ServiceError if already revoked/accepted."""
    now = timezone.now()
    revoked = Invitation.objects.filter(
        pk=invitation.pk, tenant_id=invitation.tenant_id, revoked_at__isnull=True, accepted_at__isnull=True
    ).update(revoked_at=now)
    if not revoked:
        raise ServiceError("Esta invitación ya estaba revocada o fue aceptada.", code="invitation_closed")
    invitation.revoked_at = now
    audit_record(
        tenant=invitation.tenant,
        actor=actor,
        action=AuditAction.INVITATION,
        company=invitation.company,
        summary=f"Invitación a {invitation.company.legal_name} ({invitation.email}) revocada",
        details={"invitation": invitation.pk, "revoked_at": now.isoformat()},
    )
    return invitation


# --- Invitations from a CSV file ----------------------------------------------------------------

# Accepted header spellings (after lower-casing, removing accents and turning spaces/dashes into _).
_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "rut": ("rut", "rut_empresa", "rut_de_la_empresa"),
    "razon_social": ("razon_social", "empresa", "nombre_empresa", "razon"),
    "nombre": ("nombre", "contacto", "nombre_contacto", "nombre_del_contacto", "representante"),
    "email": ("email", "correo", "correo_electronico", "e_mail", "mail"),
}
_CSV_REQUIRED = ("rut", "razon_social", "email")


@dataclass
class InvitationImportRow:
    """One data line of the file and what happened to it (`errors` empty = invited)."""

    line: int
    rut: str
    legal_name: str
    contact_name: str
    email: str
    errors: list[str] = field(default_factory=list)
    invitation: Invitation | None = None

    @property
    def accepted(self) -> bool:
        return not self.errors and self.invitation is not None


@dataclass
class InvitationImportReport:
    """What an import did: a file-level error (nothing imported) or a per-row report."""

    rows: list[InvitationImportRow] = field(default_factory=list)
    file_error: str = ""
    emails_sent: int = 0

    @property
    def invited(self) -> list[InvitationImportRow]:
        return [row for row in self.rows if row.accepted]

    @property
    def rejected(self) -> list[InvitationImportRow]:
        return [row for row in self.rows if not row.accepted]


def _header_key(text: str) -> str:
    """'Razón Social ' → 'razon_social': lower case, accents and BOM removed, spaces to underscores."""
    text = unicodedata.normalize("NFKD", text.replace("\ufeff", "")).encode("ascii", "ignore").decode()
    return "_".join(text.strip().lower().replace("-", " ").split())


def _decode_csv(content: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252: what Excel in Chile saves."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _parse_csv(content: bytes) -> tuple[list[InvitationImportRow], str]:
    """Rows of an invitations CSV (`;` or `,` separated), or a file-level Spanish error message."""
    if len(content) > INVITATION_CSV_MAX_BYTES:
        return [], f"El archivo pesa más de {INVITATION_CSV_MAX_BYTES // 1024} KB: divídalo en partes más pequeñas."
    text = _decode_csv(content)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if not first:
        return [], "El archivo está vacío."
    # The header decides the separator: Excel in Spanish writes ';', most other tools ','.
    delimiter = ";" if first.count(";") >= first.count(",") and ";" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    columns: dict[str, int] = {}
    rows: list[InvitationImportRow] = []
    for values in reader:
        if not any(value.strip() for value in values):
            continue
        if header is None:
            header = values
            keys = [_header_key(value) for value in values]
            for column, aliases in _CSV_COLUMNS.items():
                for index, key in enumerate(keys):
                    if key in aliases:
                        columns[column] = index
                        break
            missing = [column for column in _CSV_REQUIRED if column not in columns]
            if missing:
                return [], (
                    "No encontramos las columnas " + ", ".join(missing) + " en la primera fila. "
                    "La primera fila debe decir: rut, razon_social, nombre, email."
                )
            continue
        if len(rows) >= INVITATION_CSV_MAX_ROWS:
            return [], f"El archivo tiene más de {INVITATION_CSV_MAX_ROWS} filas: divídalo en partes más pequeñas."

        def cell(column: str, values: list[str] = values) -> str:
            index = columns.get(column)
            return values[index].strip() if index is not None and index < len(values) else ""

        rows.append(
            InvitationImportRow(
                line=reader.line_num,
                rut=cell("rut"),
                legal_name=cell("razon_social"),
                contact_name=cell("nombre"),
                email=cell("email"),
            )
        )
    if not rows:
        return [], "El archivo no tiene filas con datos bajo la fila de títulos."
    return rows, ""


def invitations_import_csv(*, tenant: Tenant, content: bytes, actor: AbstractBaseUser | None) -> InvitationImportReport:
    """Invite every valid row of a CSV (columns rut, razon_social, nombre, email) and report each row.

    Rows are refused, with the reason, for an invalid RUT, a RUT repeated earlier in the file, a RUT
    that is already a client or has an open invitation, a missing legal name or a bad email; the others are invited (company +
    invitation + audit entry, in one transaction) and emailed over one connection. A file over the
    size or row caps, or without the required columns, imports nothing (`file_error`).
    """
    rows, file_error = _parse_csv(content)
    report = InvitationImportReport(rows=rows, file_error=file_error)
    if file_error:
        return report
    seen: dict[str, int] = {}
    canonical_by_line: dict[int, str] = {}
    for row in rows:
        try:
            canonical = normalize_rut(row.rut)
        except InvalidRut as exc:
            row.errors.append(f"RUT inválido: {exc.message}" if row.rut else "Falta el RUT.")
        else:
            if canonical in seen:
                row.errors.append(f"RUT repetido: ya aparece en la fila {seen[canonical]} del archivo.")
            else:
                seen[canonical] = row.line
                canonical_by_line[row.line] = canonical
        if not row.legal_name:
            row.errors.append("Falta la razón social.")
        if not row.email:
            row.errors.append("Falta el correo.")
        else:
            try:
                validate_email(row.email)
            except ValidationError:
                row.errors.append(f"Correo inválido: «{row.email}».")
    blockers = selectors.company_invitation_blockers(tenant=tenant, ruts=set(canonical_by_line.values()))
    for row in rows:
        blocker = blockers.get(canonical_by_line.get(row.line, ""))
        if blocker:
            row.errors.append(_BLOCKED_MESSAGES[blocker])
    with transaction.atomic():
        for row in rows:
            if row.errors:
                continue
            try:
                # A savepoint per row: a RUT registered concurrently fails that row, not the file.
                with transaction.atomic():
                    row.invitation = _invitation_insert(
                        tenant=tenant,
                        rut=canonical_by_line[row.line],
                        legal_name=row.legal_name,
                        contact_name=row.contact_name,
                        email=row.email,
                        actor=actor,
                    )
            except ServiceError as error:
                row.errors.append(error.message)
    invitations = [row.invitation for row in rows if row.invitation is not None]
    for invitation in invitations:
        invitation.tenant = tenant
    report.emails_sent = _invitations_send(invitations)
    return report


def _rut_or_error(rut: str) -> str:
    try:
        return normalize_rut(rut)
    except InvalidRut as exc:
        raise ServiceError(exc.message, code="invalid_rut") from None


def _email_or_error(email: str) -> str:
    try:
        validate_email(email.strip())
    except ValidationError:
        raise ServiceError(f"El correo «{email}» no es válido.", code="invalid_email") from None
    return email.strip()


# --- Tenant settings ----------------------------------------------------------------------------


def _clean_notification_emails(text: str) -> str:
    """One address per line (commas, semicolons and spaces also separate), each validated, no repeats.

    Raises ServiceError naming the first invalid address.
    """
    seen: dict[str, None] = {}
    for part in text.replace(",", "\n").replace(";", "\n").split():
        address = part.strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise ServiceError(f"El correo «{address}» no es válido.", code="invalid_email") from None
        seen.setdefault(address.lower(), None)
    return "\n".join(seen)


def tenant_settings_update(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser,
    name: str,
    sii_environment: str,
    grant_admin: bool,
    grant_sign: bool,
    grant_registry: bool,
    notification_emails: str,
) -> dict[str, dict[str, Any]]:
    """Change the firm's settings; returns the changes as {field: {"before": …, "after": …}}.

    Audited (SETTINGS) with the same before/after. Raises ServiceError for an empty name, an unknown
    SII environment, no permission requested, or an invalid notification email. Jobs already created
    keep what they requested: the job row holds its own copy.
    """
    name = name.strip()
    if not name:
        raise ServiceError("Ingrese el nombre del estudio.", code="name_missing")
    if sii_environment not in SiiEnvironment.values:
        raise ServiceError("Elija un ambiente del SII válido.", code="invalid_environment")
    if not (grant_admin or grant_sign or grant_registry):
        raise ServiceError("Solicite al menos un permiso en el SII.", code="no_permission")
    after = {
        "name": name,
        "sii_environment": sii_environment,
        "grant_admin": grant_admin,
        "grant_sign": grant_sign,
        "grant_registry": grant_registry,
        "notification_emails": _clean_notification_emails(notification_emails),
    }
    changes = {
        key: {"before": getattr(tenant, key), "after": value}
        for key, value in after.items()
        if getattr(tenant, key) != value
    }
    if not changes:
        return {}
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(**{key: change["after"] for key, change in changes.items()})
        for key, change in changes.items():
            setattr(tenant, key, change["after"])
        labels = {f.name: str(f.verbose_name) for f in Tenant._meta.fields}
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary="Configuración cambiada: " + ", ".join(labels.get(key, key) for key in changes),
            details={"changes": changes},
        )
    return changes


def representative_create(*, tenant: Tenant, rut: str, name: str, actor: AbstractBaseUser) -> Representative:
    """Add a representative, or reactivate the firm's INACTIVE one with this RUT under the name typed
    now (audited as "reactivado", with the name before and after); returns the saved, active one.

    Raises ServiceError for an invalid RUT, a missing name, a company RUT (the SII only accepts a
    natural person as an authorized user), or a RUT that already is an ACTIVE representative of the
    firm (`already_representative`: nothing changes, their name included).
    """
    from sii_bot.rut import is_person_rut

    canonical = _rut_or_error(rut)
    if not name.strip():
        raise ServiceError("Ingrese el nombre del representante.", code="name_missing")
    if not is_person_rut(canonical):
        raise ServiceError(
            "Ese RUT es de una empresa: el SII solo acepta a una persona natural como usuario autorizado.",
            code="not_a_person",
        )
    with transaction.atomic():
        # Lock the tenant row (as `representative_deactivate` does): the check and the write go together.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        before = Representative.objects.filter(tenant=tenant, rut=canonical).values("name", "is_active").first()
        if before is not None and before["is_active"]:
            raise ServiceError(
                f"Ese RUT ya es representante del estudio ({before['name']}).", code="already_representative"
            )
        representative = _representative_add(tenant=tenant, rut=canonical, name=name)
        renamed = f" (antes figuraba como {before['name']})" if before and before["name"] != representative.name else ""
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=f"Representante {representative.name} ({rut_display(representative.rut)}) "
            + ("agregado" if before is None else f"reactivado{renamed}"),
            details={
                "representative": representative.pk,
                "before": before,
                "after": {"name": representative.name, "is_active": True},
            },
        )
    return representative


def representative_deactivate(*, representative: Representative, actor: AbstractBaseUser) -> Representative:
    """Stop authorizing this representative in new jobs (past jobs keep it), audited.

    Raises ServiceError if it is the firm's last active representative or is already inactive.
    """
    with transaction.atomic():
        # Lock the tenant row: two owners deactivating the last two representatives at once must
        # not leave the firm with none.
        Tenant.objects.select_for_update().filter(pk=representative.tenant_id).first()
        active = Representative.objects.filter(tenant_id=representative.tenant_id, is_active=True)
        if not active.filter(pk=representative.pk).exists():
            raise ServiceError("Este representante ya no estaba vigente.", code="already_inactive")
        if active.count() <= 1:
            raise ServiceError(
                "El estudio necesita al menos un representante vigente: agregue otro antes de desactivar este.",
                code="last_representative",
            )
        Representative.objects.filter(pk=representative.pk, is_active=True).update(is_active=False)
        representative.is_active = False
        audit_record(
            tenant=representative.tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=f"Representante {representative.name} ({rut_display(representative.rut)}) desactivado",
            details={"representative": representative.pk, "before": {"is_active": True}, "after": {"is_active": False}},
        )
    return representative


def representative_reactivate(*, representative: Representative, actor: AbstractBaseUser) -> Representative:
    """Make an inactive representative active again, audited. Raises ServiceError if already active."""
    with transaction.atomic():
        if not Representative.objects.filter(pk=representative.pk, is_active=False).update(is_active=True):
            raise ServiceError("Este representante ya estaba vigente.", code="already_active")
        representative.is_active = True
        audit_record(
            tenant=representative.tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=f"Representante {representative.name} ({rut_display(representative.rut)}) reactivado",
            details={"representative": representative.pk, "before": {"is_active": False}, "after": {"is_active": True}},
        )
    return representative


# --- The team -----------------------------------------------------------------------------------


def member_password_link(*, user: AbstractBaseUser) -> str:
    """An absolute one-time link where `user` sets their password (Django's reset-token machinery).

    The token dies when the password is set or the user logs in, and after PASSWORD_RESET_TIMEOUT.
    """
    path = reverse(
        "staff:password_set",
        kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user)},
    )
    return f"{settings.AUTORIZA_BASE_URL.rstrip('/')}{path}"


def member_add(*, tenant: Tenant, email: str, role: str, actor: AbstractBaseUser) -> Membership:
    """Give the person with this email a role in the firm, creating their user if needed, audited.

    A new user gets an unusable password and an email with a link to set one; an existing user gets
    an email saying they were added. Raises ServiceError for a bad email or role, or an existing member.
    """
    email = _email_or_error(email).lower()
    if role not in Role.values:
        raise ServiceError("Elija un rol válido.", code="invalid_role")
    User = get_user_model()
    with transaction.atomic():
        user = selectors.user_by_email(email=email)
        created = user is None
        if user is None:
            user = User.objects.create_user(username=email, email=email, password=None)
        elif Membership.objects.filter(tenant=tenant, user=user).exists():
            raise ServiceError("Esa persona ya es parte del equipo: cambie su rol en la lista.", code="already_member")
        membership = _membership_add(tenant=tenant, user=user, role=role)
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=f"{email} agregado al equipo como {Role(role).label}",
            details={"membership": membership.pk, "email": email, "before": None, "after": {"role": role}},
        )
    if created or not user.has_usable_password():
        link = member_password_link(user=user)
        body = (
            f"{greeting(None)}\n\n{actor.get_username()} le agregó al equipo de {tenant.name} en Autoriza, con el rol "
            f"{Role(role).label}.\n\nPara ingresar, defina su contraseña en este enlace (sirve una sola vez):\n{link}\n\n"
            f"Su usuario es {email}.\n\n— Autoriza"
        )
    else:
        body = (
            f"{greeting(None)}\n\n{actor.get_username()} le agregó al equipo de {tenant.name} en Autoriza, con el rol "
            f"{Role(role).label}.\n\nIngrese con su cuenta de siempre en {settings.AUTORIZA_BASE_URL.rstrip('/')}"
            f"{reverse('login')}\n\n— Autoriza"
        )
    try:
        EmailMessage(subject=f"Le agregaron al equipo de {tenant.name} en Autoriza", body=body, to=[email]).send()
    except Exception:
        logger.exception("member invitation email to tenant %s failed", tenant.pk)
    return membership


def _refuse_losing_last_owner(membership: Membership, *, removing: bool) -> None:
    """Raise ServiceError when this change would leave the firm without an owner. Call in a transaction."""
    if membership.role != Role.OWNER:
        return
    # Lock the tenant row so two owners demoting each other at once can't both succeed.
    Tenant.objects.select_for_update().filter(pk=membership.tenant_id).first()
    owners = Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER).count()
    if owners <= 1:
        raise ServiceError(
            "El estudio necesita al menos un dueño: nombre a otra persona como dueña antes de "
            + ("quitar a esta." if removing else "cambiar este rol."),
            code="last_owner",
        )


def member_role_change(*, membership: Membership, role: str, actor: AbstractBaseUser) -> Membership:
    """Change a member's role (compare-and-set on the role read), audited with before/after.

    Raises ServiceError for an unknown role, a change that would leave no owner, or a role that
    someone else changed in the meantime.
    """
    if role not in Role.values:
        raise ServiceError("Elija un rol válido.", code="invalid_role")
    if role == membership.role:
        return membership
    before = membership.role
    with transaction.atomic():
        _refuse_losing_last_owner(membership, removing=False)
        if not Membership.objects.filter(pk=membership.pk, role=before).update(role=role):
            raise ServiceError("Otra persona cambió este rol recién: revise la lista.", code="changed_meanwhile")
        membership.role = role
        audit_record(
            tenant=membership.tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=f"Rol de {membership.user.get_username()}: {Role(before).label} → {Role(role).label}",
            details={"membership": membership.pk, "before": {"role": before}, "after": {"role": role}},
        )
    return membership


def member_remove(*, membership: Membership, actor: AbstractBaseUser) -> None:
    """Take a person out of the firm (their user stays; their audit entries too), audited.

    Raises ServiceError if they are the last owner.
    """
    with transaction.atomic():
        _refuse_losing_last_owner(membership, removing=True)
        deleted, _ = Membership.objects.filter(pk=membership.pk).delete()
        if not deleted:
            raise ServiceError("Esa persona ya no era parte del equipo.", code="not_member")
        audit_record(
            tenant=membership.tenant,
            actor=actor,
            action=AuditAction.SETTINGS,
            summary=f"{membership.user.get_username()} quitado del equipo ({Role(membership.role).label})",
            details={"membership": membership.pk, "before": {"role": membership.role}, "after": None},
        )


# --- Re-runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RerunOutcome:
    """What happened to one job of a bulk re-run: a new attempt, or the Spanish reason it was refused."""

    job_id: str
    company: ClientCompany | None
    new_job: EnrollmentJob | None
    message: str

    @property
    def ok(self) -> bool:
        return self.new_job is not None


def enrollment_jobs_rerun(*, tenant: Tenant, job_ids: list[Any], actor: AbstractBaseUser) -> list[RerunOutcome]:
    """Re-run each of these failed jobs of the tenant (each through `enrollment_job_rerun`: a new
    attempt linked to the failed one, audited) and report each one, in the order given.

    Refusals (not failed, already re-run, certificate gone, an attempt already in flight) are reported
    per job and don't stop the others. Ids that are not this tenant's jobs are reported as not found.
    Raises ServiceError if more than RERUN_BULK_MAX ids are given.
    """
    if len(job_ids) > RERUN_BULK_MAX:
        raise ServiceError(
            f"Seleccione como máximo {RERUN_BULK_MAX} trabajos por vez.", code="too_many"
        )
    jobs = {str(job.pk): job for job in selectors.jobs_for_rerun(tenant=tenant, job_ids=job_ids)}
    outcomes: list[RerunOutcome] = []
    for raw in dict.fromkeys(str(value) for value in job_ids):
        parsed = selectors.parse_uuid(raw)
        job = jobs.get(str(parsed)) if parsed else None
        if job is None:
            outcomes.append(RerunOutcome(job_id=raw, company=None, new_job=None, message="Trabajo no encontrado."))
            continue
        try:
            new_job = enrollment_job_rerun(job=job, actor=actor)
        except ServiceError as error:
            outcomes.append(RerunOutcome(job_id=raw, company=job.company, new_job=None, message=error.message))
        else:
            outcomes.append(
                RerunOutcome(
                    job_id=raw, company=job.company, new_job=new_job, message=f"{attempt_label(kind=new_job.kind, number=selectors.job_kind_number(job=new_job))} en cola."
                )
            )
    return outcomes


# --- Asking a client for a new certificate ------------------------------------------------------

# A client is e-mailed a request for a new certificate at most once in this many hours (per company),
# so a busy dashboard cannot flood anyone's inbox.
CERTIFICATE_REQUEST_EVERY_HOURS = 12


def _certificate_upload_link(company: ClientCompany) -> str:
    path = reverse("client:certificate_upload", kwargs={"company_id": company.pk})
    return f"{settings.AUTORIZA_BASE_URL.rstrip('/')}{path}"


def company_certificate_request(*, company: ClientCompany, actor: AbstractBaseUser | None) -> ClientCompany:
    """E-mail the client's contact a link to upload a new certificate (their stored one is gone, so
    the firm cannot retry), audited as an INVITATION entry marked `certificate_request`.

    At most once every CERTIFICATE_REQUEST_EVERY_HOURS per company. Raises ServiceError when the
    relationship ended, the client has no e-mail, or the client was asked too recently (the message
    says since when and from when it may be asked again). Returns the company.
    """
    from onboarding.domain.display import CERTIFICATE_REQUEST_MARKER, job_kind_noun
    from onboarding.models import AuditEntry, Relationship

    if company.relationship == Relationship.ENDED:
        raise ServiceError("La relación con este cliente terminó: no hay nada que pedirle.", code="relationship_ended")
    email = (company.owner_email or "").strip()
    if not email:
        raise ServiceError(
            "Este cliente no tiene un correo registrado: pídale el certificado por otro medio.", code="no_email"
        )
    now = timezone.now()
    with transaction.atomic():
        # One request at a time per company: two clicks at once cannot both pass the check below.
        ClientCompany.objects.select_for_update().filter(pk=company.pk).first()
        last = (
            AuditEntry.objects.filter(
                tenant_id=company.tenant_id,
                company=company,
                action=AuditAction.INVITATION,
                created_at__gte=now - timedelta(hours=CERTIFICATE_REQUEST_EVERY_HOURS),
                **{f"details__{CERTIFICATE_REQUEST_MARKER}": True},
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if last is not None:
            asked = timezone.localtime(last)
            again = timezone.localtime(last + timedelta(hours=CERTIFICATE_REQUEST_EVERY_HOURS))
            raise ServiceError(
                f"Ya le pedimos un nuevo certificado a este cliente el {asked:%d-%m-%Y} a las {asked:%H:%M}. "
                f"Para no llenar su correo, puede volver a pedirlo desde el {again:%d-%m-%Y} a las {again:%H:%M}.",
                code="too_soon",
            )
        latest = EnrollmentJob.objects.filter(tenant_id=company.tenant_id, company=company).order_by("-attempt").first()
        what = job_kind_noun(latest.kind).lower() if latest is not None else "autorización"
        tenant = company.tenant
        body = "\n".join(
            [
                greeting(company.owner_name),
                "",
                (
                    f"{tenant.name} necesita su certificado digital nuevamente para completar la {what} de "
                    f"{company.legal_name} (RUT {rut_display(company.rut)}) en el SII: el que usamos antes ya no "
                    "está guardado en nuestros sistemas."
                ),
                "",
                (
                    "Súbalo en el siguiente enlace. Antes de hacer cualquier cambio le mostraremos exactamente "
                    "qué se hará y le pediremos su consentimiento:"
                ),
                _certificate_upload_link(company),
                "",
                "Si no esperaba este correo, puede ignorarlo.",
                "",
                f"— Autoriza, para {tenant.name}",
            ]
        )
        message = EmailMessage(
            subject=f"Se necesita un nuevo certificado digital: {company.legal_name}", body=body + "\n", to=[email]
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditAction.INVITATION,
            company=company,
            summary=f"Pedido de nuevo certificado a {email} para {company.legal_name}",
            details={CERTIFICATE_REQUEST_MARKER: True, "email": email, "job": str(latest.pk) if latest else None},
        )

        def send() -> None:
            try:
                message.send()
            except Exception:
                logger.exception("certificate request e-mail for company %s failed", company.pk)

        transaction.on_commit(send)
    return company


# --- Running a scheduled retry now ------------------------------------------------------------------


def enrollment_job_retry_now(*, job: EnrollmentJob, actor: AbstractBaseUser | None) -> EnrollmentJob:
    """Run `job`'s scheduled automatic retry now instead of at `run_after` (the SII is back): a
    compare-and-set moves `run_after` to now, then the dispatcher enqueues it after commit, as it would
    have when the retry fell due. Audited. Returns the job as stored.

    Raises ServiceError when the job is not waiting for a retry (it ran, finished, or is due anyway),
    or when its failure demands a minimum wait that has not passed (the message says until when).
    """
    state = selectors.job_retry_now_state(job=job)
    if state is None:
        raise ServiceError(
            "Este trabajo no está esperando un reintento automático: revise su estado.", code="not_waiting"
        )
    if not state.allowed:
        raise ServiceError(state.reason, code="sii_minimum_wait")
    now = timezone.now()
    with transaction.atomic():
        # enqueued_at cleared too: the dispatcher sends only jobs without a live message.
        moved = EnrollmentJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED, run_after__gt=now).update(
            run_after=now, enqueued_at=None
        )
        if not moved:
            raise ServiceError(
                "El reintento ya comenzó o el trabajo cambió mientras tanto: revise su estado.", code="changed_meanwhile"
            )
        label = attempt_label(kind=job.kind, number=selectors.job_kind_number(job=job))
        audit_record(
            tenant=job.tenant,
            actor=actor,
            action=AuditAction.RERUN,
            company=job.company,
            summary=f"Reintento inmediato de {label} de {job.company.legal_name}",
            details={"job": str(job.pk), "failure_code": job.failure_code, "retry_now": True},
        )
        transaction.on_commit(_dispatch_due_jobs)
    job.refresh_from_db()
    return job


def _dispatch_due_jobs() -> None:
    """Enqueue the due jobs as the periodic dispatcher does (the one public way to send a job)."""
    from onboarding import services

    services.enrollment_jobs_dispatch()
