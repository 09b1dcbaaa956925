"""A tenant admin uploads or deletes a representative's firm key from the firm's pages.

The upload runs the same checks as a client's certificate (`client.client_certificate_open`: size,
PKCS#12, password, validity dates, a Chilean holder RUT; then `selectors.readiness`), and one more:
the holder must be the representative. The password opens the file here and goes nowhere else; a
refused file stores nothing. Sealing, replacing and erasing are `services.firm_keys`.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from onboarding.domain.display import rut_display
from onboarding.models import FirmKey, Representative
from onboarding.selectors.readiness import certificate_readiness_for
from onboarding.services.client import client_certificate_open
from onboarding.services.errors import ServiceError
from onboarding.services.firm_keys import firm_key_destroy, firm_key_store

__all__ = ["firm_key_delete", "firm_key_upload"]


def firm_key_upload(
    *, representative: Representative, upload: UploadedFile, password: str, uploaded_by: AbstractBaseUser
) -> FirmKey:
    """Open `upload` with `password` and seal it as `representative`'s firm key (replacing and erasing
    any live one); returns the new FirmKey. Audited (`firm_key_store`).

    Raises `sii_bot.certificates.CertificateError` for a file or password refused like a client's
    (too large, empty, not a PKCS#12, wrong password, expired or not yet valid, no Chilean RUT…), and
    ServiceError when the holder is not the representative (`firm_key_wrong_holder`), the SII would
    refuse the certificate (`firm_key_not_ready`, e.g. an issuer it does not accept) or the
    representative is no longer active (`representative_inactive`). Nothing is stored then.
    """
    if not representative.is_active:
        raise ServiceError(
            "Este representante ya no está vigente: reactívelo antes de cargar su certificado.",
            code="representative_inactive",
        )
    bundle = client_certificate_open(upload=upload, password=password)
    if bundle.holder_rut != representative.rut:
        raise ServiceError(
            f"El certificado es de {bundle.holder_name} (RUT {rut_display(bundle.holder_rut)}), no de "
            f"{representative.name} (RUT {rut_display(representative.rut)}). Suba el certificado digital "
            "del propio representante.",
            code="firm_key_wrong_holder",
        )
    readiness = certificate_readiness_for(
        facts=bundle, environment=representative.tenant.sii_environment, now=timezone.now()
    )
    if readiness.blocked:
        reasons = " ".join(finding.message for finding in readiness.of_level("error"))
        raise ServiceError(f"El SII no aceptaría este certificado. {reasons}".strip(), code="firm_key_not_ready")
    return firm_key_store(representative=representative, bundle=bundle, uploaded_by=uploaded_by)


def firm_key_delete(*, firm_key: FirmKey, actor: AbstractBaseUser) -> bool:
    """Erase a firm key at an admin's request (its sealed material; public facts stay for the audit
    trail). Returns True if it was erased now, False if it was already gone. Audited."""
    return firm_key_destroy(firm_key=firm_key, reason="deleted", actor=actor)
