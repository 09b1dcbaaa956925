"""sii_bot.certificates.certificate_readiness: validity, issuer and holder findings before the SII."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sii_bot.certificates import (
    ACCEPTED_ISSUERS,
    CertificateBundle,
    Finding,
    certificate_readiness,
    open_pkcs12,
)
from sii_bot.certificates.readiness import accepted_issuer, is_sandbox_issuer
from sii_sandbox.pki import PASSWORD, ensure_pki
from tests.sii_bot.bot_pfx_factory import NOW, CertSpec, make_pfx

ECERT = {"issuer_cn": "E-CERTCHILE CA FIRMA ELECTRONICA SIMPLE", "issuer_org": "E-CERTCHILE"}


def bundle_for(**spec: object) -> CertificateBundle:
    return open_pkcs12(make_pfx(CertSpec(**spec)), "secreto", now=NOW)  # type: ignore[arg-type]


def by_code(bundle: CertificateBundle, now: datetime = NOW) -> dict[str, Finding]:
    return {finding.code: finding for finding in certificate_readiness(bundle, now=now).findings}


def test_a_certificate_of_an_accepted_provider_with_forty_days_left_is_ready() -> None:
    bundle = bundle_for(not_after=NOW + timedelta(days=40), **ECERT)
    readiness = certificate_readiness(bundle, now=NOW)
    assert readiness.findings == (
        Finding("valid", "ok", "Vigente hasta el 24 de febrero de 2026."),
        Finding("issuer_accepted", "ok", "Emitido por E-CERTCHILE, un proveedor que el SII acepta."),
        Finding("holder_person", "ok", "El titular es una persona natural (RUT 13.322.924-8)."),
    )
    assert not readiness.blocked


def test_ten_days_left_is_a_warning_that_does_not_block() -> None:
    readiness = certificate_readiness(bundle_for(not_after=NOW + timedelta(days=10), **ECERT), now=NOW)
    assert readiness.findings[0] == Finding(
        "expires_soon", "warning",
        "Su certificado vence en 10 días (25 de enero de 2026): la autorización debe completarse antes.",
    )
    assert not readiness.blocked


def test_the_warning_starts_under_thirty_days() -> None:
    assert by_code(bundle_for(not_after=NOW + timedelta(days=30), **ECERT))["valid"].level == "ok"
    assert by_code(bundle_for(not_after=NOW + timedelta(days=29, hours=23), **ECERT))["expires_soon"].message == (
        "Su certificado vence en 29 días (14 de febrero de 2026): la autorización debe completarse antes."
    )
    assert by_code(bundle_for(not_after=NOW + timedelta(hours=30), **ECERT))["expires_soon"].message.startswith(
        "Su certificado vence mañana"
    )


def test_an_expired_certificate_is_an_error() -> None:
    # open_pkcs12 refuses it at upload; readiness judges the same facts later (a stored certificate).
    bundle = bundle_for(not_after=NOW + timedelta(days=3), **ECERT)
    readiness = certificate_readiness(bundle, now=NOW + timedelta(days=5))
    assert readiness.findings[0] == Finding(
        "expired", "error",
        "Su certificado venció el 18 de enero de 2026 y el SII no acepta certificados vencidos. "
        "Renuévelo con su proveedor y suba el certificado nuevo.",
    )
    assert readiness.blocked


def test_a_certificate_not_yet_valid_is_an_error() -> None:
    bundle = bundle_for(not_before=NOW - timedelta(days=1), **ECERT)
    readiness = certificate_readiness(bundle, now=NOW - timedelta(days=2))
    assert readiness.findings[0].code == "not_yet_valid" and readiness.findings[0].level == "error"
    assert readiness.blocked


def test_an_issuer_not_on_the_list_is_a_warning_the_sii_decides() -> None:
    readiness = certificate_readiness(bundle_for(), now=NOW)
    finding = by_code(bundle_for())["issuer_not_accepted"]
    assert finding.level == "warning"
    assert not readiness.blocked
    assert finding.message.startswith(
        "No reconocemos a «Test CA Firma Electronica (Acreditadora de Prueba S.A.)» entre los proveedores "
        "que el SII acepta (E-CERTCHILE, Acepta, E-Sign,"
    )


def test_the_sandbox_test_pki_is_its_own_error(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    bundle = open_pkcs12(pki["demo"].path.read_bytes(), PASSWORD)
    readiness = certificate_readiness(bundle, now=datetime.now(UTC))
    assert [(f.code, f.level) for f in readiness.findings] == [
        ("valid", "ok"), ("issuer_sandbox", "error"), ("holder_person", "ok"),
    ]


def test_a_company_as_holder_is_an_error() -> None:
    # open_pkcs12 refuses such a file too; readiness checks the facts on its own (stored records).
    bundle = dataclasses.replace(bundle_for(**ECERT), holder_rut="76086428-5")
    assert by_code(bundle)["holder_company"] == Finding(
        "holder_company", "error",
        "El titular del certificado es una empresa (RUT 76.086.428-5), y el SII exige el certificado de una "
        "persona natural. Use el certificado personal del representante legal o de un usuario administrador "
        "de la empresa.",
    )


def test_the_person_limit_is_fifty_million() -> None:
    person = dataclasses.replace(bundle_for(**ECERT), holder_rut="49999999-2")
    company = dataclasses.replace(person, holder_rut="50000000-7")
    assert by_code(person)["holder_person"].level == "ok"
    assert by_code(company)["holder_company"].level == "error"


def test_a_holder_rut_with_a_wrong_check_digit_is_an_error() -> None:
    bundle = dataclasses.replace(bundle_for(**ECERT), holder_rut="13322924-1")
    assert by_code(bundle)["holder_rut_invalid"].level == "error"


@pytest.mark.parametrize(
    ("issuer", "provider"),
    [
        ("E-CERTCHILE CA FIRMA ELECTRONICA SIMPLE (E-CERTCHILE)", "E-CERTCHILE"),
        ("e-certchile ca", "E-CERTCHILE"),
        ("AC ACÉPTA.COM (Acepta.com S.A.)", "Acepta"),
        ("E-Sign Class 2 CA (E-SIGN S.A.)", "E-Sign"),
        ("Certinet CA (Certinet S.A.)", "Certinet"),
        ("IDOK Firma Electrónica (BPO Advisors SpA)", "IDOK"),
        ("AC PAPERLESS", "Paperless"),
        ("AC Camerfirma Chile", "Camerfirma Chile"),
        ("Thomas Signe Chile CA", "Thomas Signe"),
        ("SIGNAPIS CA", "Signapis"),
        ("TOC S.A.", "TOC"),
    ],
)
def test_accepted_providers_match_without_case_accents_or_punctuation(issuer: str, provider: str) -> None:
    assert accepted_issuer(issuer) == provider


@pytest.mark.parametrize(
    "issuer",
    ["Test CA Firma Electronica (Acreditadora de Prueba S.A.)", "Design CA (Firmadesign Ltda.)", "Stock CA",
     "AC Camerfirma (España)", "Otra CA Desconocida (Entidad Desconocida)"],
)
def test_other_issuers_match_no_provider(issuer: str) -> None:
    assert accepted_issuer(issuer) is None


def test_the_sandbox_issuer_is_recognized_and_never_accepted() -> None:
    name = "Autoriza Sandbox Firma Electronica Avanzada CA (Autoriza Sandbox (pruebas, no es SII))"
    assert is_sandbox_issuer(name) and not is_sandbox_issuer("E-CERTCHILE")
    assert accepted_issuer(name) is None
    assert len({name for name, _ in ACCEPTED_ISSUERS}) == len(ACCEPTED_ISSUERS)


def test_a_naive_now_is_utc() -> None:
    bundle = bundle_for(not_after=NOW + timedelta(days=10), **ECERT)
    assert certificate_readiness(bundle, now=NOW.replace(tzinfo=None)) == certificate_readiness(bundle, now=NOW)
