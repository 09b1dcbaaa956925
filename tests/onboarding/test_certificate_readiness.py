"""Readiness before the SII on the wizard's review step: the tenant's environment decides about the
sandbox's test PKI, warnings are shown, and an error finding erases the certificate and blocks consent."""
from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from onboarding.models import AuditAction, AuditEntry, Certificate, EnrollmentJob, SiiEnvironment
from onboarding.selectors.readiness import certificate_readiness_for
from sii_bot.certificates import CertificateBundle, Finding, open_pkcs12
from sii_sandbox.pki import PASSWORD, ensure_pki
from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

PFX_PASSWORD = "secreto"
ECERT = {"issuer_cn": "E-CERTCHILE CA FIRMA ELECTRONICA SIMPLE", "issuer_org": "E-CERTCHILE"}
ERASED = "Por seguridad, eliminamos este certificado de nuestros sistemas: no quedó guardado."


def pfx(*, days_left: float = 200, **spec: object) -> bytes:
    not_after = datetime.now(UTC) + timedelta(days=days_left, minutes=30)
    return make_pfx(CertSpec(cn="ALEX BRITO MARDONES", san_rut="13322924-8", not_after=not_after, **spec),  # type: ignore[arg-type]
                    password=PFX_PASSWORD)


def upload(client, company, data: bytes, password: str = PFX_PASSWORD):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("client:certificate_upload", kwargs={"company_id": company.pk}),
        {"certificate": SimpleUploadedFile("firma.pfx", data, content_type="application/x-pkcs12"),
         "password": password},
    )


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def set_environment(tenant, environment: str) -> None:  # type: ignore[no-untyped-def]
    tenant.sii_environment = environment
    tenant.save(update_fields=["sii_environment"])


@pytest.fixture
def owner(client, cast):  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    return cast


@pytest.fixture(scope="module")
def sandbox_pfx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return ensure_pki(Path(tmp_path_factory.mktemp("readiness_pki_file")))["demo"].path.read_bytes()


@pytest.fixture(scope="module")
def sandbox_bundle(tmp_path_factory: pytest.TempPathFactory) -> CertificateBundle:
    pki = ensure_pki(Path(tmp_path_factory.mktemp("readiness_pki")))
    return open_pkcs12(pki["demo"].path.read_bytes(), PASSWORD)


@pytest.fixture(scope="module")
def unknown_bundle() -> CertificateBundle:
    return open_pkcs12(pfx(), PFX_PASSWORD)


# --- The environment decides about issuers ----------------------------------------------------------


def issuer_finding(bundle: CertificateBundle, environment: str) -> Finding:
    findings = certificate_readiness_for(facts=bundle, environment=environment, now=datetime.now(UTC)).findings
    return findings[1]


@pytest.mark.parametrize("environment", [SiiEnvironment.PRODUCTION, SiiEnvironment.CERTIFICATION])
def test_the_real_sii_refuses_sandbox_issuers_and_may_refuse_unknown_ones(environment: str, sandbox_bundle, unknown_bundle) -> None:  # type: ignore[no-untyped-def]
    assert issuer_finding(unknown_bundle, environment)[:2] == ("issuer_not_accepted", "warning")
    assert issuer_finding(sandbox_bundle, environment)[:2] == ("issuer_sandbox", "error")


def test_the_sandbox_environment_accepts_its_own_test_pki(sandbox_bundle) -> None:  # type: ignore[no-untyped-def]
    assert issuer_finding(sandbox_bundle, SiiEnvironment.SANDBOX) == Finding(
        "issuer_sandbox", "ok",
        "Emitido por la autoridad de pruebas del sandbox de Autoriza, el ambiente de pruebas que usa su estudio contable.",
    )
    readiness = certificate_readiness_for(facts=sandbox_bundle, environment=SiiEnvironment.SANDBOX, now=datetime.now(UTC))
    assert not readiness.blocked


def test_the_sandbox_environment_only_warns_about_an_unknown_issuer(unknown_bundle) -> None:  # type: ignore[no-untyped-def]
    assert issuer_finding(unknown_bundle, SiiEnvironment.SANDBOX) == Finding(
        "issuer_not_accepted", "warning",
        "Su certificado fue emitido por «Test CA Firma Electronica (Acreditadora de Prueba S.A.)», que no es un "
        "proveedor que el SII acepte. Su estudio contable trabaja en el ambiente de pruebas, donde puede "
        "continuar; en el SII real no servirá.",
    )


def test_an_accepted_provider_is_fine_everywhere() -> None:
    bundle = open_pkcs12(pfx(**ECERT), PFX_PASSWORD)
    for environment in SiiEnvironment.values:
        assert issuer_finding(bundle, environment)[:2] == ("issuer_accepted", "ok")


# --- The review step ----------------------------------------------------------------------------------


def test_review_shows_the_checklist_and_the_expiry_warning(client, owner) -> None:  # type: ignore[no-untyped-def]
    set_environment(owner.tenant_a, SiiEnvironment.PRODUCTION)
    response = upload(client, owner.company_a, pfx(days_left=12, **ECERT))
    certificate = Certificate.objects.get()
    assert certificate.is_usable
    review = client.get(response["Location"])
    body = text(review)
    assert review.status_code == 200
    assert [(f.code, f.level) for f in review.context["readiness"].findings] == [
        ("expires_soon", "warning"), ("issuer_accepted", "ok"), ("holder_person", "ok"),
    ]
    assert '<p class="notice warning" data-code="expires_soon">Su certificado vence en 12 días (' in body
    assert "): la autorización debe completarse antes.</p>" in body
    assert '<li data-code="issuer_accepted">✓ Emitido por E-CERTCHILE, un proveedor que el SII acepta.</li>' in body
    assert '<li data-code="holder_person">✓ El titular es una persona natural (RUT 13.322.924-8).</li>' in body
    assert reverse("client:consent", kwargs={"company_id": owner.company_a.pk, "certificate_id": certificate.pk}) in body
    assert "El SII no aceptará este certificado" not in body and ERASED not in body


def test_an_error_erases_the_upload_and_blocks_consent(client, owner, sandbox_pfx) -> None:  # type: ignore[no-untyped-def]
    set_environment(owner.tenant_a, SiiEnvironment.PRODUCTION)
    upload(client, owner.company_a, pfx(**ECERT))
    kept = Certificate.objects.get()
    response = upload(client, owner.company_a, sandbox_pfx, password=PASSWORD)  # a test certificate
    refused = Certificate.objects.exclude(pk=kept.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "client:certificate_review", kwargs={"company_id": owner.company_a.pk, "certificate_id": refused.pk}
    )
    # Erased before the client saw anything; the certificate uploaded before it is left as it was.
    assert not refused.is_usable and refused.sealed_material is None and refused.destroy_reason == "not_ready"
    kept.refresh_from_db()
    assert kept.is_usable
    deletion = AuditEntry.objects.get(action=AuditAction.DELETION)
    assert deletion.details == {"certificate": str(refused.pk), "reason": "not_ready"}

    review = client.get(response["Location"])
    body = text(review)
    assert review.status_code == 200
    assert "El SII no aceptará este certificado" in body and ERASED in body
    assert ('<li data-code="issuer_sandbox">Es un certificado de pruebas del sandbox de Autoriza: el SII no lo '
            "acepta.") in body
    consent_url = reverse("client:consent", kwargs={"company_id": owner.company_a.pk, "certificate_id": refused.pk})
    assert consent_url not in body
    assert reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk}) in body
    assert "No es este: eliminarlo" not in body
    # Going to the consent anyway (typed URL, Back button): sent to upload, no job.
    posted = client.post(consent_url, {"consent": "on", "terms_version": "x"})
    assert posted.status_code == 302
    assert posted["Location"] == reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk})
    assert EnrollmentJob.objects.count() == 0


def test_a_certificate_that_became_unready_is_erased_at_review(client, owner, sandbox_pfx) -> None:  # type: ignore[no-untyped-def]
    # Uploaded while the firm worked against the sandbox (its own test PKI is fine there) ...
    response = upload(client, owner.company_a, sandbox_pfx, password=PASSWORD)
    certificate = Certificate.objects.get()
    assert certificate.is_usable
    # ... and reviewed once the firm moved to production, where the SII refuses a test certificate.
    set_environment(owner.tenant_a, SiiEnvironment.PRODUCTION)
    body = text(client.get(response["Location"]))
    certificate.refresh_from_db()
    assert not certificate.is_usable and certificate.destroy_reason == "not_ready"
    assert ERASED in body and "El SII no aceptará este certificado" in body
    assert AuditEntry.objects.get(action=AuditAction.DELETION).actor == owner.client_a
