"""Firm keys at rest: sealed per tenant, representative and row; replaced keys erased; every use audited."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from onboarding import crypto
from onboarding.models import AuditAction, AuditEntry, FirmKey, Representative
from onboarding.services.errors import ServiceError
from onboarding.services.firm_keys import (
    firm_key_destroy,
    firm_key_opened,
    firm_key_store,
    firm_keys_rewrap,
    representative_firm_key,
)
from sii_bot.certificates import CertificateBundle

KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n"


def bundle_for(rut: str, fingerprint: str = "AB") -> CertificateBundle:
    now = datetime.now(dt_timezone.utc)
    return CertificateBundle(
        holder_rut=rut, holder_name="ALEX BRITO MARDONES", issuer="CA de Prueba",
        not_before=now - timedelta(days=10), not_after=now + timedelta(days=300),
        fingerprint_sha256=":".join([fingerprint] * 32), serial_number="1",
        cert_pem=b"-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n",
        key_pem=KEY_PEM,
    )


@pytest.fixture
def representative(cast) -> Representative:  # type: ignore[no-untyped-def]
    return Representative.objects.get(tenant=cast.tenant_a)


def test_a_stored_key_opens_to_its_material_and_each_use_is_audited(cast, representative) -> None:  # type: ignore[no-untyped-def]
    firm_key = firm_key_store(representative=representative, bundle=bundle_for("13322924-8"), uploaded_by=cast.admin_a)
    assert KEY_PEM not in bytes(firm_key.sealed_material)
    with firm_key_opened(firm_key=firm_key, purpose="verificación de acceso") as material:
        assert material.key_pem == KEY_PEM
    firm_key.refresh_from_db()
    assert firm_key.last_used_at is not None
    summaries = list(AuditEntry.objects.filter(action=AuditAction.FIRM_KEY).values_list("summary", flat=True))
    assert any("cargada" in s for s in summaries) and any("usada: verificación de acceso" in s for s in summaries)


def test_a_key_moved_to_another_tenant_or_representative_does_not_open(cast, representative) -> None:  # type: ignore[no-untyped-def]
    firm_key = firm_key_store(representative=representative, bundle=bundle_for("13322924-8"), uploaded_by=None)
    other = Representative.objects.get(tenant=cast.tenant_b)
    FirmKey.objects.filter(pk=firm_key.pk).update(tenant=cast.tenant_b, representative=other)
    moved = FirmKey.objects.get(pk=firm_key.pk)
    with pytest.raises(crypto.DecryptionFailed), firm_key_opened(firm_key=moved, purpose="x"):
        pass


def test_a_certificate_of_someone_else_is_refused_and_nothing_is_stored(cast, representative) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceError) as refused:
        firm_key_store(representative=representative, bundle=bundle_for("12531909-2"), uploaded_by=None)
    assert refused.value.code == "firm_key_wrong_holder"
    assert not FirmKey.objects.exists()


def test_replacing_a_key_erases_the_old_one_and_deleting_erases_it(cast, representative) -> None:  # type: ignore[no-untyped-def]
    first = firm_key_store(representative=representative, bundle=bundle_for("13322924-8"), uploaded_by=None)
    second = firm_key_store(representative=representative, bundle=bundle_for("13322924-8", "CD"), uploaded_by=None)
    first.refresh_from_db()
    assert first.sealed_material is None and first.destroy_reason == "replaced"
    assert representative_firm_key(representative=representative) == second
    assert firm_key_destroy(firm_key=second, reason="deleted", actor=cast.admin_a) is True
    assert firm_key_destroy(firm_key=second, reason="deleted", actor=cast.admin_a) is False
    assert representative_firm_key(representative=representative) is None
    with pytest.raises(ServiceError), firm_key_opened(firm_key=second, purpose="x"):
        pass


def test_rewrap_moves_live_keys_to_the_active_master_key(cast, representative, settings) -> None:  # type: ignore[no-untyped-def]
    firm_key = firm_key_store(representative=representative, bundle=bundle_for("13322924-8"), uploaded_by=None)
    old_spec = settings.AUTORIZA_MASTER_KEYS
    settings.AUTORIZA_MASTER_KEYS = "k2:" + "B" * 43 + "=," + old_spec
    assert firm_keys_rewrap() == 1
    firm_key.refresh_from_db()
    assert firm_key.key_id == "k2"
    with firm_key_opened(firm_key=firm_key, purpose="x") as material:
        assert material.key_pem == KEY_PEM


def test_two_uploads_at_once_end_in_a_spanish_message_not_a_500(cast, representative, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db import IntegrityError

    from onboarding.services import firm_keys

    def raced(**kwargs):  # type: ignore[no-untyped-def]
        raise IntegrityError("firm_key_one_live_per_representative")

    monkeypatch.setattr(firm_keys, "_firm_key_replace", raced)
    with pytest.raises(ServiceError) as refused:
        firm_key_store(representative=representative, bundle=bundle_for("13322924-8"), uploaded_by=None)
    assert refused.value.code == "firm_key_concurrent_upload" and "al mismo tiempo" in refused.value.message
