"""The firm's own keys: each representative's certificate, sealed at rest like a client's, opened only
in the worker for an access check or a change the firm makes itself.

A firm key opens only for its own tenant, its own representative and its own row
(`onboarding.crypto.record_context`, with the representative in the purpose), so a key is never
usable for another tenant's companies nor under another representative.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from onboarding import crypto
from onboarding.models import AuditAction, FirmKey, Representative
from onboarding.services.audit import audit_record
from onboarding.services.certificates import bundle_public_facts, bundle_seal, pem_material_split
from onboarding.services.errors import ServiceError
from sii_bot.certificates import CertificateBundle, CertificateMaterial

__all__ = [
    "firm_key_destroy",
    "firm_key_opened",
    "firm_key_store",
    "firm_keys_rewrap",
    "representative_firm_key",
]


def _firm_key_context(firm_key: FirmKey) -> bytes:
    # The representative is part of the purpose: a row moved under another representative won't open.
    return crypto.record_context(
        purpose=f"firm_key/representative={firm_key.representative_id}",
        tenant_id=firm_key.tenant_id,
        record_id=firm_key.pk,
    )


def representative_firm_key(*, representative: Representative) -> FirmKey | None:
    """The representative's live (not destroyed) firm key, or None."""
    return FirmKey.objects.filter(representative=representative, destroyed_at__isnull=True).first()


def firm_key_store(
    *, representative: Representative, bundle: CertificateBundle, uploaded_by: AbstractBaseUser | None
) -> FirmKey:
    """Seal an opened certificate as `representative`'s firm key, replacing (and erasing) any live one.

    The caller has checked that the holder is the representative (`bundle.holder_rut`); the password
    already did its one job. Returns the saved FirmKey. Audited.
    """
    if bundle.holder_rut != representative.rut:
        raise ServiceError(
            f"El certificado es de {bundle.holder_rut}, no del representante {representative.rut}.",
            code="firm_key_wrong_holder",
        )
    try:
        return _firm_key_replace(representative=representative, bundle=bundle, uploaded_by=uploaded_by)
    except IntegrityError:
        # Another upload for this representative committed first (one live key each).
        raise ServiceError(
            "Se estaba guardando otra llave para este representante al mismo tiempo. Revise la página y, "
            "si hace falta, cárguela de nuevo.",
            code="firm_key_concurrent_upload",
        ) from None


def _firm_key_replace(
    *, representative: Representative, bundle: CertificateBundle, uploaded_by: AbstractBaseUser | None
) -> FirmKey:
    with transaction.atomic():
        previous = FirmKey.objects.select_for_update().filter(representative=representative, destroyed_at__isnull=True)
        for old in previous:
            firm_key_destroy(firm_key=old, reason="replaced", actor=None)
        firm_key = FirmKey(
            tenant_id=representative.tenant_id,
            representative=representative,
            uploaded_by=uploaded_by,
            **bundle_public_facts(bundle),
        )
        sealed = bundle_seal(bundle=bundle, context=_firm_key_context(firm_key))
        firm_key.key_id = sealed.key_id
        firm_key.wrapped_key = sealed.wrapped_key
        firm_key.sealed_material = sealed.ciphertext
        firm_key.save()
        audit_record(
            tenant=representative.tenant,
            actor=uploaded_by,
            action=AuditAction.FIRM_KEY,
            summary=f"Llave del estudio de {bundle.holder_name} cargada",
            details={"firm_key": str(firm_key.pk), "fingerprint": bundle.fingerprint_sha256, "replaced": len(previous)},
        )
    return firm_key


@contextmanager
def firm_key_opened(*, firm_key: FirmKey, purpose: str) -> Iterator[CertificateMaterial]:
    """Yield the decrypted PEM material of a firm key for the bot; the plaintext buffer is overwritten
    afterwards. Every opening is an audit entry (`purpose` says what for) and stamps `last_used_at`.

    Only the worker calls this. Raises ServiceError if the key was erased, and crypto.DecryptionFailed
    if the row was tampered with or the master key is wrong.
    """
    if not firm_key.is_usable:
        raise ServiceError("La llave del estudio ya no está guardada. Cárguela de nuevo.", code="firm_key_missing")
    sealed = crypto.Sealed(
        key_id=firm_key.key_id, wrapped_key=bytes(firm_key.wrapped_key), ciphertext=bytes(firm_key.sealed_material)
    )
    plaintext = crypto.open_sealed(sealed, context=_firm_key_context(firm_key))
    now = timezone.now()
    FirmKey.objects.filter(pk=firm_key.pk).update(last_used_at=now)
    firm_key.last_used_at = now
    audit_record(
        tenant=firm_key.tenant,
        actor=None,
        action=AuditAction.FIRM_KEY,
        summary=f"Llave del estudio de {firm_key.holder_name} usada: {purpose}",
        details={"firm_key": str(firm_key.pk), "purpose": purpose},
    )
    try:
        key_pem, cert_pem, chain_pem = pem_material_split(bytes(plaintext))
        yield CertificateMaterial(cert_pem=cert_pem, key_pem=key_pem, chain_pem=chain_pem)
    finally:
        crypto.wipe(plaintext)


def firm_key_destroy(*, firm_key: FirmKey, reason: str, actor: AbstractBaseUser | None) -> bool:
    """Erase a firm key's sealed material (its public facts stay for the audit trail).

    Returns True if material was erased now, False if it was already gone. Audited.
    """
    erased = FirmKey.objects.filter(pk=firm_key.pk, destroyed_at__isnull=True).update(
        sealed_material=None, wrapped_key=None, key_id="", destroyed_at=timezone.now(), destroy_reason=reason
    )
    firm_key.refresh_from_db(fields=["sealed_material", "wrapped_key", "key_id", "destroyed_at", "destroy_reason"])
    if erased:
        audit_record(
            tenant=firm_key.tenant,
            actor=actor,
            action=AuditAction.FIRM_KEY,
            summary=f"Llave del estudio de {firm_key.holder_name} eliminada",
            details={"firm_key": str(firm_key.pk), "reason": reason},
        )
    return bool(erased)


def firm_keys_rewrap(*, batch_size: int = 200) -> int:
    """Re-wrap every live firm key's data key with the active master key (rotation). Returns rows changed."""
    changed = 0
    ring = crypto.get_keyring()
    queryset = FirmKey.objects.filter(destroyed_at__isnull=True).exclude(key_id=ring.active_id)
    for firm_key in queryset.iterator(chunk_size=batch_size):
        sealed = crypto.Sealed(firm_key.key_id, bytes(firm_key.wrapped_key), bytes(firm_key.sealed_material))
        fresh = crypto.rewrap(sealed, context=_firm_key_context(firm_key), keyring=ring)
        changed += FirmKey.objects.filter(pk=firm_key.pk, key_id=firm_key.key_id).update(
            key_id=fresh.key_id, wrapped_key=fresh.wrapped_key
        )
    return changed
