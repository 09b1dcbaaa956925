"""Reads about the firm's own keys: the representatives with their live key, as the keys page shows
them (holder, expiry and its warning, last use, whether the SII rejected it)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from onboarding.models import FirmKey, Representative, Tenant

__all__ = ["FIRM_KEY_EXPIRY_WARN_DAYS", "FirmKeyRow", "firm_key_get", "firm_key_rows"]

# Under this many days to expiry the page warns (the first e-mail goes out then too).
FIRM_KEY_EXPIRY_WARN_DAYS = 30


@dataclass(frozen=True)
class FirmKeyRow:
    """One representative and their live firm key (None when none is stored).

    `days_left`: whole days to expiry (0 or less when expired); `expiring`: under
    `FIRM_KEY_EXPIRY_WARN_DAYS` and not yet expired; `rejected`: the SII refused it at login.
    """

    representative: Representative
    firm_key: FirmKey | None
    days_left: int | None
    expiring: bool
    expired: bool
    rejected: bool


def _row(representative: Representative, firm_key: FirmKey | None, now: datetime) -> FirmKeyRow:
    if firm_key is None:
        return FirmKeyRow(representative, None, None, False, False, False)
    seconds = (firm_key.not_after - now).total_seconds()
    expired = seconds <= 0
    days_left = math.ceil(seconds / 86400) if not expired else 0
    return FirmKeyRow(
        representative=representative,
        firm_key=firm_key,
        days_left=days_left,
        expiring=not expired and days_left <= FIRM_KEY_EXPIRY_WARN_DAYS,
        expired=expired,
        rejected=bool(firm_key.rejected_code),
    )


def firm_key_rows(*, tenant: Tenant, now: datetime) -> list[FirmKeyRow]:
    """Every representative of `tenant` (active first, then by name) with its live key (two queries)."""
    representatives = list(Representative.objects.filter(tenant=tenant).order_by("-is_active", "name", "pk"))
    keys = {
        key.representative_id: key
        for key in FirmKey.objects.filter(tenant=tenant, destroyed_at__isnull=True).select_related("uploaded_by")
    }
    return [_row(rep, keys.get(rep.pk), now) for rep in representatives]


def firm_key_get(*, tenant: Tenant, representative: Representative) -> FirmKey | None:
    """`representative`'s live firm key within `tenant`, or None (also for another tenant's)."""
    return FirmKey.objects.filter(tenant=tenant, representative=representative, destroyed_at__isnull=True).first()
