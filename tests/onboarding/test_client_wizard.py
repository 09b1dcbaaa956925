"""The certificate wizard: upload (every refusal, never a 500, nothing stored), review, consent,
deletion; the password and the key never reach the database, the session, a log or a page."""
from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from onboarding.models import AuditAction, AuditEntry, Certificate, CompanyStage, EnrollmentJob, JobStatus
from sii_bot.certificates import CERTIFICATE_ERROR_CODES, CertificateError

PFX_PASSWORD = "Clave-Del-Certificado-9931"
SII_RUT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.8321.1")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Test certificates (built with cryptography; keys generated once per run) ---------------------


@lru_cache(maxsize=None)
def _leaf_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@lru_cache(maxsize=None)
def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA de Prueba Firma Electrónica"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acreditadora de Prueba S.A.")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1000).not_valid_before(now - timedelta(days=3650)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _ia5(text: str) -> bytes:
    raw = text.encode("ascii")
    return bytes([0x16, len(raw)]) + raw


def make_pfx(
    *,
    rut: str | None = "13322924-8",
    name: str = "ALEX BRITO MARDONES",
    valid_from: timedelta = timedelta(days=-30),
    valid_to: timedelta = timedelta(days=335),
    password: str = PFX_PASSWORD,
    with_key: bool = True,
    with_cert: bool = True,
    with_chain: bool = True,
) -> bytes:
    """A Chilean-style .pfx (holder RUT in SAN otherName), 3DES legacy encryption like real CAs ship."""
    ca_key, ca_cert = _ca()
    key = _leaf_key()
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.COUNTRY_NAME, "CL")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(0x1234ABCD)
        .not_valid_before(now + valid_from).not_valid_after(now + valid_to)
    )
    if rut is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.OtherName(SII_RUT_OID, _ia5(rut))]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1()).build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(
        b"test", key if with_key else None, cert if with_cert else None, [ca_cert] if with_chain else None, encryption
    )


def upload(client, company, data: bytes, *, password: str = PFX_PASSWORD, name: str = "firma.pfx"):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("client:certificate_upload", kwargs={"company_id": company.pk}),
        {"certificate": SimpleUploadedFile(name, data, content_type="application/x-pkcs12"), "password": password},
    )


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def every_stored_value() -> list[bytes]:
    """Every value in every column of every table of the test database, as bytes."""
    values: list[bytes] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        values.append(bytes(value))
                    elif value is not None:
                        values.append(str(value).encode())
    return values


@pytest.fixture
def owner(client, cast):  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    return cast


# --- Refusals -------------------------------------------------------------------------------------


def _bad_files() -> dict[str, tuple[bytes, str, str]]:
    """code → (file, password, field the message shows next to)."""
    return {
        "wrong_password": (make_pfx(), "otra-clave", "password"),
        "not_pkcs12": (b"Esto no es un certificado, es un documento de texto.\n" * 3, PFX_PASSWORD, "certificate"),
        "not_pkcs12_pem": (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", PFX_PASSWORD, "certificate"),
        "not_pkcs12_truncated": (make_pfx()[:700], PFX_PASSWORD, "certificate"),
        "no_private_key": (make_pfx(with_key=False), PFX_PASSWORD, "certificate"),
        "no_certificate": (make_pfx(with_cert=False, with_chain=False), PFX_PASSWORD, "certificate"),
        "key_mismatch": (make_pfx(with_cert=False), PFX_PASSWORD, "certificate"),
        "expired": (make_pfx(valid_from=timedelta(days=-400), valid_to=timedelta(days=-1)), PFX_PASSWORD, "certificate"),
        "not_yet_valid": (make_pfx(valid_from=timedelta(days=2), valid_to=timedelta(days=400)), PFX_PASSWORD, "certificate"),
        "no_rut": (make_pfx(rut=None), PFX_PASSWORD, "certificate"),
        "invalid_rut": (make_pfx(rut="13322924-1"), PFX_PASSWORD, "certificate"),
        "not_a_person": (make_pfx(rut="76086428-5", name="COMERCIAL DEMO SPA"), PFX_PASSWORD, "certificate"),
        "empty": (b"", PFX_PASSWORD, "certificate"),
        "too_large": (b"\x30\x82" + b"\x00" * (70 * 1024), PFX_PASSWORD, "certificate"),
    }


BAD_CASES = [
    "wrong_password", "not_pkcs12", "not_pkcs12_pem", "not_pkcs12_truncated", "no_private_key", "no_certificate",
    "key_mismatch",    "expired", "not_yet_valid", "no_rut", "invalid_rut", "not_a_person", "empty", "too_large",
]


@pytest.fixture(scope="module")
def bad_files() -> dict[str, tuple[bytes, str, str]]:
    return _bad_files()


@pytest.mark.parametrize("case", BAD_CASES)
def test_every_bad_certificate_is_refused_with_its_own_message(client, owner, bad_files, case: str, caplog) -> None:  # type: ignore[no-untyped-def]
    data, password, field = bad_files[case]
    code = case.split("_pem")[0].split("_truncated")[0]
    caplog.set_level(logging.DEBUG)
    response = upload(client, owner.company_a, data, password=password)
    assert response.status_code == 200
    body = text(response)
    expected = CERTIFICATE_ERROR_CODES[code]
    # The message is shown next to its field (the id Django's aria-describedby points at).
    assert f'<p class="field-error" id="id_{field}_error">{expected}</p>' in body
    # …and no other certificate message is shown.
    others = [m for c, m in CERTIFICATE_ERROR_CODES.items() if c != code]
    assert not any(message in body for message in others)
    assert Certificate.objects.count() == 0
    assert not AuditEntry.objects.filter(action=AuditAction.UPLOAD).exists()
    assert password not in body
    assert password not in caplog.text


def test_missing_file_and_missing_password(client, owner) -> None:  # type: ignore[no-untyped-def]
    response = client.post(reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk}), {})
    body = text(response)
    assert response.status_code == 200
    assert "Elija el archivo de su certificado digital (.pfx o .p12)." in body
    assert "Ingrese la contraseña de su certificado digital." in body
    assert Certificate.objects.count() == 0


def test_an_unexpected_parser_exception_is_a_refusal_not_a_500(client, owner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr("sii_bot.certificates.open_pkcs12", explode)
    response = upload(client, owner.company_a, make_pfx())
    assert response.status_code == 200
    assert CERTIFICATE_ERROR_CODES["not_pkcs12"] in text(response)
    assert Certificate.objects.count() == 0


def test_legacy_disabled_is_shown_as_a_server_problem(client, owner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def legacy(*args: object, **kwargs: object) -> None:
        raise CertificateError("legacy_disabled")

    monkeypatch.setattr("sii_bot.certificates.open_pkcs12", legacy)
    response = upload(client, owner.company_a, make_pfx())
    assert response.status_code == 200
    assert CERTIFICATE_ERROR_CODES["legacy_disabled"] in text(response)


def test_a_huge_upload_never_touches_disk(client, owner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Over FILE_UPLOAD_MAX_MEMORY_SIZE Django would spool to a temporary file; our handler doesn't."""
    import django.core.files.uploadedfile as uploaded

    def no_disk(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload was written to a temporary file")

    monkeypatch.setattr(uploaded.TemporaryUploadedFile, "__init__", no_disk)
    response = upload(client, owner.company_a, b"\x00" * (3 * 1024 * 1024))
    assert response.status_code == 200
    assert CERTIFICATE_ERROR_CODES["too_large"] in text(response)
    assert Certificate.objects.count() == 0


# --- The good path --------------------------------------------------------------------------------


def test_good_certificate_is_stored_sealed_and_the_password_is_nowhere(client, owner, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    response = upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "client:certificate_review", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk}
    )
    assert certificate.company == owner.company_a and certificate.uploaded_by == owner.client_a
    assert certificate.holder_rut == "13322924-8" and certificate.holder_name == "ALEX BRITO MARDONES"
    assert certificate.is_usable and certificate.key_id == "t1"
    review = client.get(response["Location"])
    body = text(review)
    assert review.status_code == 200
    for shown in ("ALEX BRITO MARDONES", "13.322.924-8", "CA de Prueba Firma Electrónica", certificate.fingerprint_sha256,
                  "Comercial Demo SpA", "76.086.428-5", "Es normal que los RUT sean distintos"):
        assert shown in body
    # Sealed: neither PEM nor the password is in any column of any table; nor in the session or a log.
    stored = every_stored_value()
    assert not any(b"-----BEGIN" in value or b"PRIVATE KEY" in value for value in stored)
    assert not any(PFX_PASSWORD.encode() in value for value in stored)
    session = client.session
    assert PFX_PASSWORD not in str(dict(session.items()))
    assert PFX_PASSWORD not in body and PFX_PASSWORD not in caplog.text
    assert AuditEntry.objects.filter(action=AuditAction.UPLOAD, company=owner.company_a).count() == 1


def test_a_new_upload_replaces_the_unused_one(client, owner) -> None:  # type: ignore[no-untyped-def]
    upload(client, owner.company_a, make_pfx())
    first = Certificate.objects.get()
    upload(client, owner.company_a, make_pfx(name="CAROLINA MUÑOZ TAPIA", rut="12531909-2"))
    first.refresh_from_db()
    assert not first.is_usable and first.destroy_reason == "replaced"
    assert Certificate.objects.filter(destroyed_at__isnull=True).get().holder_rut == "12531909-2"


def test_upload_page_renders_the_right_input(client, owner) -> None:  # type: ignore[no-untyped-def]
    body = client.get(reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk})).content.decode()
    assert 'type="file"' in body and 'accept=".pfx,.p12,application/x-pkcs12"' in body
    assert 'enctype="multipart/form-data"' in body
    assert 'type="password"' in body and 'autocomplete="off"' in body
    assert "<script>" not in body and "style=" not in body  # CSP: no inline script or style


def test_consent_creates_exactly_one_queued_job(client, owner, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    url = reverse("client:consent", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk})
    page = client.get(url)
    body = text(page)
    assert page.status_code == 200
    for shown in ("ALEX BRITO MARDONES", "13.322.924-8", "Comercial Demo SpA", "76.086.428-5",
                  "Usuario Administrador", "Firmar Documentos", "Registro", "PyME Contadores", "7 días"):
        assert shown in body
    version = page.context["terms"].version
    # Without the checkbox: refused, no job.
    refused = client.post(url, {"terms_version": version})
    assert refused.status_code == 200 and "marque la casilla" in text(refused)
    assert EnrollmentJob.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url, {"consent": "on", "terms_version": version})
    job = EnrollmentJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("client:job", kwargs={"job_id": job.pk})
    assert len(callbacks) == 1  # enqueued once the transaction commits
    assert job.status == JobStatus.QUEUED and job.certificate == certificate and job.created_by == owner.client_a
    assert job.user_rut == "13322924-8" and job.permissions == {"admin", "sign", "registry"}
    owner.company_a.refresh_from_db()
    assert owner.company_a.stage == CompanyStage.QUEUED
    consent_entry = AuditEntry.objects.get(action=AuditAction.CONSENT)
    assert consent_entry.details["job"] == str(job.pk) and consent_entry.actor == owner.client_a
    # A second consent: a message, no second job.
    again = client.post(url, {"consent": "on", "terms_version": version})
    assert again.status_code == 200
    assert "Ya hay una autorización en curso para esta empresa" in text(again)
    assert EnrollmentJob.objects.count() == 1
    # The wizard now sends the client to the job instead.
    wizard = client.get(reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk}))
    assert wizard.status_code == 302 and wizard["Location"] == reverse("client:job", kwargs={"job_id": job.pk})


def test_consent_given_on_outdated_terms_is_refused(client, owner) -> None:  # type: ignore[no-untyped-def]
    upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    url = reverse("client:consent", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk})
    version = client.get(url).context["terms"].version
    owner.tenant_a.grant_admin = False
    owner.tenant_a.save()
    response = client.post(url, {"consent": "on", "terms_version": version})
    assert response.status_code == 200
    assert "cambiaron mientras revisaba" in text(response)
    assert EnrollmentJob.objects.count() == 0
    # The page now shows the new terms; consenting to them works.
    new_version = response.context["terms"].version
    assert new_version != version
    assert client.post(url, {"consent": "on", "terms_version": new_version}).status_code == 302
    assert EnrollmentJob.objects.get().permissions == {"sign", "registry"}


def test_consent_without_representative_shows_the_service_message(client, owner) -> None:  # type: ignore[no-untyped-def]
    upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    owner.tenant_a.representatives.update(is_active=False)
    url = reverse("client:consent", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk})
    page = client.get(url)
    assert "aún no ha configurado a su representante" in text(page)
    response = client.post(url, {"consent": "on", "terms_version": "x"})
    assert response.status_code == 200
    assert "aún no ha configurado a su representante" in text(response)
    assert EnrollmentJob.objects.count() == 0


def test_client_deletes_an_unused_certificate(client, owner) -> None:  # type: ignore[no-untyped-def]
    upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    response = client.post(
        reverse("client:certificate_delete", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk})
    )
    assert response.status_code == 302
    certificate.refresh_from_db()
    assert not certificate.is_usable and certificate.destroy_reason == "client_deleted"
    assert certificate.sealed_material is None and certificate.wrapped_key is None
    assert AuditEntry.objects.filter(action=AuditAction.DELETION, actor=owner.client_a).exists()
    # Its review and consent pages now send the client back to step 1.
    review = client.get(
        reverse("client:certificate_review", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk})
    )
    assert review.status_code == 302
    assert review["Location"] == reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk})


def test_a_certificate_in_use_cannot_be_deleted(client, owner) -> None:  # type: ignore[no-untyped-def]
    upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    url = reverse("client:consent", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk})
    client.post(url, {"consent": "on", "terms_version": client.get(url).context["terms"].version})
    response = client.post(
        reverse("client:certificate_delete", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk}),
        follow=True,
    )
    assert "se está usando en una autorización en curso" in text(response)
    certificate.refresh_from_db()
    assert certificate.is_usable


def test_get_is_not_allowed_on_delete(client, owner) -> None:  # type: ignore[no-untyped-def]
    upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    url = reverse("client:certificate_delete", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk})
    assert client.get(url).status_code == 405
    certificate.refresh_from_db()
    assert certificate.is_usable


def test_upload_still_requires_the_csrf_token(cast) -> None:  # type: ignore[no-untyped-def]
    """The view swaps upload handlers under csrf_exempt, then protects itself: the check must hold."""
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(cast.client_a)
    response = upload(strict, cast.company_a, make_pfx())
    assert response.status_code == 403
    assert Certificate.objects.count() == 0


# --- After the work is done -----------------------------------------------------------------------


@pytest.fixture
def sii_enroll(monkeypatch):  # type: ignore[no-untyped-def]
    """Stands in for sii_bot.enroll: the SII authorizes the requested user with the requested permissions."""
    import sii_bot

    def enroll(request, certificate, settings=None, on_progress=None):  # type: ignore[no-untyped-def]
        record = sii_bot.SiiUserRecord(
            company_name="COMERCIAL DEMO SPA", company_rut=request.company_rut, user_rut=request.user_rut,
            user_name="ALEX BRITO MARDONES", admin=request.admin, sign=request.sign, registry=request.registry,
            authorized_by="MARIA JOSE SOTO PEREZ",
        )
        return sii_bot.EnrollmentResult(outcome="created", record=record)

    monkeypatch.setattr(sii_bot, "enroll", enroll)


def _authorize_through_the_wizard(client, company) -> tuple[str, EnrollmentJob]:  # type: ignore[no-untyped-def]
    """Upload, consent and run the job to success; returns the consent page's URL and the job."""
    from onboarding import services

    upload(client, company, make_pfx())
    certificate = Certificate.objects.get()
    url = reverse("client:consent", kwargs={"company_id": company.pk, "certificate_id": certificate.pk})
    client.post(url, {"consent": "on", "terms_version": client.get(url).context["terms"].version})
    job = services.enrollment_job_execute(job_id=str(EnrollmentJob.objects.get().pk))
    assert job.status == JobStatus.SUCCEEDED
    return url, job


def test_back_from_the_result_goes_to_the_company_not_to_a_new_upload(client, owner, sii_enroll) -> None:  # type: ignore[no-untyped-def]
    consent_url, job = _authorize_through_the_wizard(client, owner.company_a)
    company_url = reverse("client:company", kwargs={"company_id": owner.company_a.pk})
    upload_url = reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk})
    back = client.get(consent_url)  # the browser's Back from the result page
    assert back.status_code == 302 and back["Location"] == company_url
    page = text(client.get(company_url))
    assert "La autorización de su empresa en el SII ya está lista" in page
    assert "ya fue eliminado de nuestros sistemas. Suba su certificado" not in page
    assert "Volver a intentarlo" not in page and f'href="{upload_url}"' not in page
    for url in (upload_url, reverse("client:certificate_review", kwargs={
            "company_id": owner.company_a.pk, "certificate_id": job.certificate_id})):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == company_url, url
    assert upload(client, owner.company_a, make_pfx())["Location"] == company_url
    assert Certificate.objects.filter(destroyed_at__isnull=True).count() == 0  # nothing stored for nothing


def test_the_wizard_opens_again_when_the_firm_asks_for_something_new(client, owner, sii_enroll) -> None:  # type: ignore[no-untyped-def]
    consent_url, _ = _authorize_through_the_wizard(client, owner.company_a)
    owner.tenant_a.grant_registry = False  # the firm now asks for other permissions
    owner.tenant_a.save()
    again = client.get(reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk}))
    assert again.status_code == 200
    assert '<span class="num" aria-hidden="true">3</span> <span class="step-name">Autorizar</span></li>' in text(again)
    back = client.get(consent_url)
    assert back["Location"] == reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk})


def test_the_removal_wizard_names_its_last_step(client, owner) -> None:  # type: ignore[no-untyped-def]
    from onboarding.models import ClientCompany

    ClientCompany.objects.filter(pk=owner.company_a.pk).update(
        sii_user_rut="13322924-8", sii_admin=True, sii_sign=True, sii_registry=True, relationship="ending",
        stage=CompanyStage.AUTHORIZED,
    )
    upload(client, owner.company_a, make_pfx())
    certificate = Certificate.objects.get()
    kwargs = {"company_id": owner.company_a.pk, "certificate_id": certificate.pk}
    for url in (reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk}),
                reverse("client:certificate_review", kwargs=kwargs), reverse("client:consent", kwargs=kwargs)):
        body = text(client.get(url))
        assert 'aria-label="Pasos para retirar al representante"' in body, url
        assert '<span class="num" aria-hidden="true">3</span> <span class="step-name">Retirar</span></li>' in body, url
        assert "Autorizar</li>" not in body, url
