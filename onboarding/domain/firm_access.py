"""When the firm may make a change in a client's SII with its own key instead of asking the client.

Three things must hold (`firm_key_usable`, `representative_administers`, `consent_allows_firm_access`):
the firm key is stored, unexpired and not rejected by the SII; the key's representative currently
administers the company, as far as we know (the last access check, or, when that is older or
missing, what the last succeeded job left in the company's `sii_*` fields); and the client's consent
was given under terms that say the firm may maintain its own access (`FIRM_ACCESS_CONSENT_EDITION`).
A consent under older terms keeps the old behaviour: the client is always asked.
"""
from __future__ import annotations

from datetime import datetime

from onboarding.models import ClientCompany, FirmKey, Permission, Representative

__all__ = [
    "CONSENT_EDITION",
    "FIRM_ACCESS_CONSENT_EDITION",
    "consent_allows_firm_access",
    "firm_key_usable",
    "representative_administers",
]

# The edition of the consent text shown to clients now. Raise it whenever what a client agrees to
# changes in substance; `ClientCompany.consent_edition` keeps the edition each client agreed to.
CONSENT_EDITION = 2
# The first edition that lets the firm's representative, once authorized as administrator, verify and
# maintain the firm's own access in the SII with the firm's key.
FIRM_ACCESS_CONSENT_EDITION = 2

# The SII attribute that lets a user maintain a company's authorized users.
ADMIN_PERMISSION = Permission.ADMIN.value


def consent_allows_firm_access(company: ClientCompany) -> bool:
    """True when the client's last consent covers the firm maintaining its own access."""
    return (company.consent_edition or 0) >= FIRM_ACCESS_CONSENT_EDITION


def firm_key_usable(firm_key: FirmKey | None, *, now: datetime) -> bool:
    """True when `firm_key` can log in as far as we know: stored, valid at `now`, not refused by the SII."""
    return (
        firm_key is not None
        and firm_key.is_usable
        and not firm_key.rejected_code
        and firm_key.not_before <= now < firm_key.not_after
    )


def representative_administers(company: ClientCompany, representative: Representative) -> bool:
    """True when, as far as we know, `representative` is a Usuario Administrador of `company` in the SII.

    The newer of two sources decides: the last access check (`access_verified_at`: the
    representative's row as read, and no access problem), or the SII state the last succeeded job
    wrote (`sii_synced_at`: `sii_user_rut` and `sii_admin`).
    """
    verified, synced = company.access_verified_at, company.sii_synced_at
    if verified is not None and (synced is None or verified >= synced):
        state = company.access_state if isinstance(company.access_state, dict) else {}
        return (
            not company.access_problem
            and state.get("rut") == representative.rut
            and ADMIN_PERMISSION in (state.get("permissions") or [])
        )
    return synced is not None and company.sii_user_rut == representative.rut and company.sii_admin
