"""The firm's own settings and people: the tenant's settings, its representatives, and the team and
its roles.

HackSoft style: keyword-only arguments, `<entity>_<action>` names, a `ServiceError` with a Spanish
message for every refusal. Each write done by a person leaves an audit entry with what the values
were before and after.
"""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from onboarding import selectors
from onboarding.domain.display import greeting, rut_display
from onboarding.models import AuditAction, Membership, Representative, Role, SiiEnvironment, Tenant
from onboarding.services.audit import audit_record
from onboarding.services.errors import ServiceError, email_or_error, rut_or_error
from onboarding.services.tenants import membership_add, representative_add
from sii_bot.rut import is_person_rut

logger = logging.getLogger(__name__)

__all__ = [
    "member_add",
    "member_password_link",
    "member_remove",
    "member_role_change",
    "representative_create",
    "representative_deactivate",
    "representative_reactivate",
    "tenant_settings_update",
]


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
    grant_folios: bool = False,
    grant_annul: bool = False,
    grant_send: bool = False,
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
    if not (grant_admin or grant_sign or grant_registry or grant_folios or grant_annul or grant_send):
        raise ServiceError("Solicite al menos un permiso en el SII.", code="no_permission")
    after = {
        "name": name,
        "sii_environment": sii_environment,
        "grant_admin": grant_admin,
        "grant_sign": grant_sign,
        "grant_registry": grant_registry,
        "grant_folios": grant_folios,
        "grant_annul": grant_annul,
        "grant_send": grant_send,
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
    canonical = rut_or_error(rut)
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
        representative = representative_add(tenant=tenant, rut=canonical, name=name)
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
    email = email_or_error(email).lower()
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
        membership = membership_add(tenant=tenant, user=user, role=role)
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
