"""Warning the firm's admins before a firm key expires: 30 days before, then 7 days before, each once.

An expired firm key cannot log in to the SII: access checks stop, and every change for a client goes
back to asking the client for their certificate. The warning reaches the people who can upload the
renewed certificate (the tenant's owners and admins) while there is time to renew it.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from onboarding.domain.display import greeting, rut_display
from onboarding.models import FirmKey
from onboarding.selectors.firm import tenant_admin_recipients
from onboarding.selectors.firm_keys import FIRM_KEY_EXPIRY_WARN_DAYS

logger = logging.getLogger(__name__)

__all__ = ["FIRM_KEY_EXPIRY_WARNING_DAYS", "firm_keys_expiry_warn"]

# Days before expiry at which the admins are warned, each once per key (the first when the keys page
# starts warning too).
FIRM_KEY_EXPIRY_WARNING_DAYS: tuple[int, ...] = (FIRM_KEY_EXPIRY_WARN_DAYS, 7)


def _threshold(days_left: float) -> int | None:
    """The smallest warning threshold `days_left` is within (7 before 30), or None for none yet."""
    within = [days for days in FIRM_KEY_EXPIRY_WARNING_DAYS if days_left <= days]
    return min(within) if within else None


def _keys_page_url(tenant_slug: str) -> str:
    path = reverse("staff:firm_keys", kwargs={"tenant_slug": tenant_slug})
    return settings.AUTORIZA_BASE_URL.rstrip("/") + path


def _body(firm_key: FirmKey, name: str, days_left: int, expires: datetime) -> str:
    representative = firm_key.representative
    tenant = firm_key.tenant
    lines = [
        greeting(name),
        "",
        (
            f"El certificado digital de {representative.name} (RUT {rut_display(representative.rut)}), que "
            f"Autoriza usa como llave de {tenant.name} para verificar y mantener su acceso a los clientes en "
            f"el SII, vence el {timezone.localtime(expires):%d-%m-%Y} (en {days_left} {'día' if days_left == 1 else 'días'})."
        ),
        "",
        (
            "Cuando venza, ya no podremos verificar el acceso a sus clientes, y cada cambio en el SII (cambio "
            "de representante, de permisos o término de una relación) volverá a pedirle al cliente su "
            "certificado."
        ),
        "",
        f"Cuando {representative.name} renueve su certificado, cárguelo en la página de llaves del estudio:",
        _keys_page_url(tenant.slug),
        "",
        "— Autoriza",
    ]
    return "\n".join(lines) + "\n"


def firm_keys_expiry_warn(*, now: datetime | None = None) -> int:
    """E-mail each tenant's owners and admins about its live firm keys that expire within 30 days,
    and again within 7 days: each warning once per key (`FirmKey.expiry_warned_days`, set by a
    compare-and-set, so two runs never send the same warning). A key that is first seen with 5 days
    left gets only the 7-day warning. Expired keys get none. Returns the number of keys warned now.
    """
    now = now or timezone.now()
    horizon = now + timedelta(days=max(FIRM_KEY_EXPIRY_WARNING_DAYS))
    candidates = FirmKey.objects.filter(
        destroyed_at__isnull=True, not_after__gt=now, not_after__lte=horizon
    ).select_related("tenant", "representative")
    warned = 0
    for firm_key in candidates.order_by("not_after"):
        seconds_left = (firm_key.not_after - now).total_seconds()
        days = _threshold(seconds_left / 86400)
        if days is None:
            continue
        with transaction.atomic():
            claimed = FirmKey.objects.filter(
                Q(expiry_warned_days__isnull=True) | Q(expiry_warned_days__gt=days),
                pk=firm_key.pk,
                destroyed_at__isnull=True,
            ).update(expiry_warned_days=days)
            if not claimed:
                continue
            warned += 1
            days_left = max(1, math.ceil(seconds_left / 86400))
            subject = (
                f"El certificado de {firm_key.representative.name} vence en {days_left} "
                f"{'día' if days_left == 1 else 'días'}"
            )
            for name, email in tenant_admin_recipients(tenant=firm_key.tenant):
                body = _body(firm_key, name, days_left, firm_key.not_after)
                transaction.on_commit(lambda s=subject, b=body, e=email: _send(s, b, e))
    return warned


def _send(subject: str, body: str, email: str) -> None:
    try:
        send_mail(subject, body, None, [email])
    except Exception:  # a mail outage must not stop the other warnings
        logger.exception("firm key expiry e-mail failed")
