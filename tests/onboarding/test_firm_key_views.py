"""The firm keys page: admins upload, replace and delete each representative's own certificate (the
same checks and Spanish errors as a client's upload, plus "the holder is the representative"); staff
only see; another tenant's representative is a 404; a refused upload stores nothing."""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from onboarding.models import AuditAction, AuditEntry, FirmKey, Representative
from sii_bot.certificates import CERTIFICATE_ERROR_CODES
from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

pytestmark = pytest.mark.django_db

PASSWORD = "llave-del-estudio-7"
HOLDER = CertSpec(cn="ALEX BRITO MARDONES", san_rut="13322924-8")


def url(name: str, tenant: str = "pyme", **kwargs: object) -> str:
    return reverse(f"staff:{name}", kwargs={"tenant_slug": tenant, **kwargs})


def text(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(response.content.decode())).split())


@pytest.fixture(scope="module")
def good_pfx() -> bytes:
    return make_pfx(HOLDER, password=PASSWORD)


@pytest.fixture
def representative(cast) -> Representative:  # type: ignore[no-untyped-def]
    return Representative.objects.get(tenant=cast.tenant_a)


def upload(client, representative: Representative, data: bytes, password: str = PASSWORD, tenant: str = "pyme"):  # type: ignore[no-untyped-def]
    prefix = f"k{representative.pk}"
    return client.post(
        url("firm_key_upload", tenant=tenant, representative_id=representative.pk),
        {f"{prefix}-certificate": SimpleUploadedFile("llave.pfx", data), f"{prefix}-password": password},
    )


def test_an_admin_uploads_a_key_and_the_page_shows_holder_expiry_and_last_use(client, cast, representative, good_pfx) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    response = upload(client, representative, good_pfx)
    assert response.status_code == 302
    firm_key = FirmKey.objects.get(representative=representative, destroyed_at__isnull=True)
    assert firm_key.holder_rut == "13322924-8" and firm_key.uploaded_by == cast.admin_a
    assert PASSWORD.encode() not in bytes(firm_key.sealed_material)
    page = text(client.get(url("firm_keys")))
    assert "ALEX BRITO MARDONES" in page and timezone.localtime(firm_key.not_after).strftime("%d-%m-%Y") in page
    assert "Aún no se usa" in page
    assert "Reemplazar" in page and "Eliminar" in page
    entry = AuditEntry.objects.get(action=AuditAction.FIRM_KEY)
    assert "cargada" in entry.summary and entry.actor == cast.admin_a


def test_the_owner_may_upload_too(client, cast, representative, good_pfx) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    assert upload(client, representative, good_pfx).status_code == 302
    assert FirmKey.objects.filter(representative=representative, destroyed_at__isnull=True).count() == 1


def _expired_pfx() -> bytes:
    now = datetime.now(UTC)
    spec = CertSpec(cn=HOLDER.cn, san_rut=HOLDER.san_rut, not_before=now - timedelta(days=400), not_after=now - timedelta(days=2))
    return make_pfx(spec, password=PASSWORD)


def _future_pfx() -> bytes:
    now = datetime.now(UTC)
    spec = CertSpec(cn=HOLDER.cn, san_rut=HOLDER.san_rut, not_before=now + timedelta(days=5), not_after=now + timedelta(days=400))
    return make_pfx(spec, password=PASSWORD)


BAD_INPUTS = {
    "wrong_password": (lambda good: good, "otra-clave", CERTIFICATE_ERROR_CODES["wrong_password"]),
    "not_pkcs12": (lambda good: b"esto no es un certificado" * 10, PASSWORD, CERTIFICATE_ERROR_CODES["not_pkcs12"]),
    "empty": (lambda good: b"", PASSWORD, CERTIFICATE_ERROR_CODES["empty"]),
    "expired": (lambda good: _expired_pfx(), PASSWORD, CERTIFICATE_ERROR_CODES["expired"]),
    "not_yet_valid": (lambda good: _future_pfx(), PASSWORD, CERTIFICATE_ERROR_CODES["not_yet_valid"]),
    "no_rut": (lambda good: make_pfx(CertSpec(cn="JOHN DOE", san_rut=None), password=PASSWORD), PASSWORD,
               CERTIFICATE_ERROR_CODES["no_rut"]),
    "wrong_holder": (
        lambda good: make_pfx(CertSpec(cn="MARIA JOSE SOTO", san_rut="12531909-2"), password=PASSWORD),
        PASSWORD,
        "El certificado es de MARIA JOSE SOTO (RUT 12.531.909-2), no de ALEX BRITO MARDONES (RUT 13.322.924-8).",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_every_bad_upload_gets_its_spanish_message_and_stores_nothing(client, cast, representative, good_pfx, case) -> None:  # type: ignore[no-untyped-def]
    make, password, message = BAD_INPUTS[case]
    client.force_login(cast.admin_a)
    response = upload(client, representative, make(good_pfx), password=password)
    assert response.status_code == 400
    assert message in text(response)
    assert not FirmKey.objects.exists()
    assert not AuditEntry.objects.filter(action=AuditAction.FIRM_KEY).exists()
    assert password not in response.content.decode()


def test_a_file_over_the_size_cap_is_refused_unread(client, cast, representative, good_pfx, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_MAX_CERTIFICATE_BYTES = 512
    client.force_login(cast.admin_a)
    response = upload(client, representative, good_pfx + b"\0" * 1024)
    assert response.status_code == 400
    assert CERTIFICATE_ERROR_CODES["too_large"] in text(response)
    assert not FirmKey.objects.exists()


def test_replacing_a_key_erases_the_previous_one(client, cast, representative, good_pfx) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    upload(client, representative, good_pfx)
    first = FirmKey.objects.get()
    assert upload(client, representative, make_pfx(HOLDER, password=PASSWORD)).status_code == 302
    first.refresh_from_db()
    assert first.sealed_material is None and first.destroy_reason == "replaced"
    assert FirmKey.objects.filter(destroyed_at__isnull=True).exclude(pk=first.pk).count() == 1


def test_deleting_asks_first_and_then_erases(client, cast, representative, good_pfx) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    upload(client, representative, good_pfx)
    firm_key = FirmKey.objects.get()
    confirm = client.get(url("firm_key_delete", representative_id=representative.pk))
    assert confirm.status_code == 200 and "No se podrá recuperar" in text(confirm)
    firm_key.refresh_from_db()
    assert firm_key.is_usable  # a GET never erases
    response = client.post(url("firm_key_delete", representative_id=representative.pk))
    assert response.status_code == 302
    firm_key.refresh_from_db()
    assert firm_key.sealed_material is None and firm_key.wrapped_key is None and firm_key.destroy_reason == "deleted"
    assert AuditEntry.objects.filter(action=AuditAction.FIRM_KEY, summary__contains="eliminada", actor=cast.admin_a).exists()
    assert "Sin llave cargada" in text(client.get(url("firm_keys")))


def test_staff_see_the_keys_but_cannot_change_them(client, cast, representative, good_pfx) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    upload(client, representative, good_pfx)
    client.force_login(cast.staff_a)
    page = client.get(url("firm_keys"))
    assert page.status_code == 200 and "ALEX BRITO MARDONES" in text(page)
    assert "Reemplazar" not in text(page) and "Eliminar" not in text(page)
    assert upload(client, representative, good_pfx).status_code == 404
    assert client.get(url("firm_key_delete", representative_id=representative.pk)).status_code == 404
    assert client.post(url("firm_key_delete", representative_id=representative.pk)).status_code == 404
    assert FirmKey.objects.filter(destroyed_at__isnull=True).count() == 1


def test_another_tenants_representative_is_a_404(client, cast, good_pfx) -> None:  # type: ignore[no-untyped-def]
    other = Representative.objects.get(tenant=cast.tenant_b)
    client.force_login(cast.admin_a)
    assert upload(client, other, make_pfx(CertSpec(cn="BEA RIVAS", san_rut="12531909-2"), password=PASSWORD)).status_code == 404
    assert client.get(url("firm_key_delete", representative_id=other.pk)).status_code == 404
    # And a member of tenant B reaches nothing of tenant A.
    client.force_login(cast.staff_b)
    assert client.get(url("firm_keys")).status_code == 404
    assert not FirmKey.objects.exists()


def test_the_page_warns_of_expiry_and_of_a_key_the_sii_rejected(client, cast, representative, good_pfx) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    upload(client, representative, good_pfx)
    FirmKey.objects.update(not_after=timezone.now() + timedelta(days=12, hours=1), rejected_code="certificate_revoked")
    page = text(client.get(url("firm_keys")))
    assert "Vence en 13 días" in page
    assert "Rechazada por el SII" in page


def test_the_upload_is_post_only(client, cast, representative) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.admin_a)
    assert client.get(url("firm_key_upload", representative_id=representative.pk)).status_code == 405


def test_the_upload_needs_the_csrf_token(cast, representative, good_pfx) -> None:  # type: ignore[no-untyped-def]
    """The upload view swaps the upload handlers before reading the body (csrf_exempt outside), so
    the CSRF check must run inside: a forged cross-site upload is refused and stores nothing."""
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(cast.admin_a)
    assert upload(forged, representative, good_pfx).status_code == 403
    assert not FirmKey.objects.exists()
