"""Inviting clients: one at a time or from a CSV file, re-sending and revoking an invitation, and the
signed signup link an invitation carries.

HackSoft style: keyword-only arguments, `<entity>_<action>` names, a `ServiceError` with a Spanish
message for every refusal. Each invitation is audited; its email goes out over one connection per
batch, and a mail outage leaves the rows for a resend.
"""
from __future__ import annotations

import csv
import io
import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format

from onboarding import selectors
from onboarding.domain import rules
from onboarding.domain.display import greeting, rut_display
from onboarding.models import AuditAction, ClientCompany, CompanyStage, Invitation, Tenant
from onboarding.services.audit import audit_record
from onboarding.services.errors import ServiceError, email_or_error, rut_or_error
from onboarding.services.tenants import client_company_create
from sii_bot.rut import InvalidRut, normalize_rut

logger = logging.getLogger(__name__)

__all__ = [
    "INVITATION_CSV_MAX_BYTES",
    "INVITATION_CSV_MAX_ROWS",
    "INVITATION_TTL_DAYS",
    "InvitationImportReport",
    "InvitationImportRow",
    "invitation_create",
    "invitation_from_token",
    "invitation_link",
    "invitation_resend",
    "invitation_revoke",
    "invitation_token",
    "invitations_import_csv",
]

# How long an invitation link stays usable after it is sent (or re-sent).
INVITATION_TTL_DAYS = 14
# Caps on a CSV import, so one upload can't tie up a web worker: rows after the header, and bytes.
INVITATION_CSV_MAX_ROWS = 500
INVITATION_CSV_MAX_BYTES = 256 * 1024


# --- Links ----------------------------------------------------------------------------------------


def invitation_token(*, invitation: Invitation) -> str:
    """A signed token naming the invitation; the link is `client:signup` + `?invitacion=<token>`."""
    return rules.invitation_token(invitation_id=invitation.pk)


def invitation_from_token(*, token: str, tenant: Tenant) -> Invitation | None:
    """The open Invitation of `tenant` named by a valid, unexpired token, or None.

    None for a forged or tampered token, another tenant's invitation, or one that is revoked,
    accepted or past `expires_at`.
    """
    pk = rules.invitation_id_from_token(token)
    if pk is None:
        return None
    invitation = Invitation.objects.select_related("company").filter(pk=pk, tenant=tenant).first()
    if invitation is None or not invitation.is_open():
        return None
    return invitation


def invitation_link(*, invitation: Invitation) -> str:
    """The absolute signup link for this invitation: `client:signup` + `?invitacion=<signed token>`.

    Falls back to the literal path `/registro/<slug>/` while the client side has no `client:signup`.
    """
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
    canonical = rut_or_error(rut)
    email_or_error(email)
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
