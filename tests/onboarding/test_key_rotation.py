"""Master key rotation: `rewrap_keys` moves stored records to the active key; old key can go."""
from __future__ import annotations

import base64
from io import StringIO

from django.core.management import call_command

from onboarding import services
from onboarding.models import Certificate

NEW = "n2:" + base64.b64encode(b"\x33" * 32).decode()


def test_rewrap_moves_certificates_to_the_new_key(cast, certificate_bundle, settings) -> None:  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=None)
    assert certificate.key_id == "t1"
    old_spec = settings.AUTORIZA_MASTER_KEYS
    settings.AUTORIZA_MASTER_KEYS = f"{NEW},{old_spec}"
    out = StringIO()
    call_command("rewrap_keys", stdout=out)
    assert "1 registro(s)" in out.getvalue()
    certificate = Certificate.objects.get(pk=certificate.pk)
    assert certificate.key_id == "n2"
    settings.AUTORIZA_MASTER_KEYS = NEW  # the old keys are gone: the record still opens
    with services.certificate_opened(certificate=certificate) as material:
        assert material.key_pem == certificate_bundle.key_pem
        assert material.cert_pem == certificate_bundle.cert_pem


def test_stored_certificate_holds_no_clear_key_material(cast, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=None)
    row = Certificate.objects.filter(pk=certificate.pk).values().get()
    blob = b"".join(bytes(v) for v in row.values() if isinstance(v, (bytes, memoryview)))
    assert b"PRIVATE KEY" not in blob and certificate_bundle.key_pem[40:80] not in blob
    assert services.certificate_destroy(certificate=certificate, reason="client_deleted", actor=cast.client_a)
    certificate.refresh_from_db()
    assert certificate.sealed_material is None and certificate.wrapped_key is None and not certificate.is_usable
    assert not services.certificate_destroy(certificate=certificate, reason="again")
