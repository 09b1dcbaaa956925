"""Hostile input through the real HTTP endpoints (Django's test client, the whole middleware stack):
every hostile upload and every hostile text is refused with ITS OWN message, never a 500, and stores
nothing (row counts of every table before and after); what is accepted is rendered escaped.

Complements tests/onboarding/test_client_wizard.py (one self-made file per refusal code) and
test_client_signup.py (a few invalid RUTs): here the files come from the SII sandbox's PKI (the same
certificates the sandbox's TLS accepts or rejects) and from attack tools (bombs, malformed DER,
oversized fields), and the text from every trick we know.
"""
from __future__ import annotations

import base64
import gzip
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from sii_bot.certificates import CERTIFICATE_ERROR_CODES
from tests.reliability.support import figures_record
from tests.security.support import field_error, row_counts

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SIGNUP_PASSWORD = "Una-Clave-Bien-Larga-2026"
INVALID_FORMAT = (
    "El RUT no tiene un formato válido: use solo números y el dígito verificador (0 a 9 o K), por ejemplo 12.345.678-5."
)
WRONG_DV = "El dígito verificador no corresponde al RUT ingresado: revise que esté bien escrito."
NUL = "Los caracteres nulos no están permitidos."
_TRIED: dict[str, int] = {}


def _tried(kind: str) -> None:
    _TRIED[kind] = _TRIED.get(kind, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _record_inputs_tried():  # type: ignore[no-untyped-def]
    yield
    if _TRIED:
        figures_record("hostile_input", {"inputs_tried": dict(_TRIED), "total": sum(_TRIED.values())})


# --- Hostile uploads ----------------------------------------------------------------------------------


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("certificado.pfx", b"\x00" * (40 * 1024 * 1024))  # 40 MB of zeros, ~40 KB zipped
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus(sandbox_pki_dir) -> dict[str, tuple[bytes, str, str]]:  # type: ignore[no-untyped-def]
    """name → (file bytes, password, expected refusal code)."""
    from sii_sandbox.pki import load_pki

    pki = load_pki(sandbox_pki_dir)
    demo = pki["demo"].path.read_bytes()
    password = pki["demo"].password or ""
    tampered_mac = demo[:-30] + bytes([demo[-30] ^ 0xFF]) + demo[-29:]
    return {
        "sandbox_pem_not_pkcs12": (pki["pem"].path.read_bytes(), password, "not_pkcs12"),
        "sandbox_garbage": (pki["garbage"].path.read_bytes(), password, "not_pkcs12"),
        "sandbox_expired": (pki["expired"].path.read_bytes(), password, "expired"),
        "sandbox_not_yet_valid": (pki["not_yet_valid"].path.read_bytes(), password, "not_yet_valid"),
        "sandbox_no_rut": (pki["no_rut"].path.read_bytes(), password, "no_rut"),
        "sandbox_company_holder": (pki["company_holder"].path.read_bytes(), password, "not_a_person"),
        "demo_wrong_password": (demo, password + "x", "wrong_password"),
        "demo_password_case": (demo, password.upper(), "wrong_password"),
        "demo_truncated_half": (demo[: len(demo) // 2], password, "not_pkcs12"),
        "demo_mac_tampered": (tampered_mac, password, "wrong_password"),
        "demo_base64_armoured": (b"-----BEGIN PKCS12-----\n" + base64.encodebytes(demo) + b"-----END PKCS12-----\n",
                                 password, "not_pkcs12"),
        "demo_base64_bare": (base64.b64encode(demo), password, "not_pkcs12"),
        "zip_bomb": (_zip_bomb(), password, "not_pkcs12"),
        "gzip_bomb": (gzip.compress(b"\x00" * (40 * 1024 * 1024), compresslevel=9), password, "not_pkcs12"),
        "asn1_depth_bomb": (b"\x30\x80" * 30000, password, "not_pkcs12"),
        "asn1_declares_2gb": (b"\x30\x84\x7f\xff\xff\xff" + b"\x02\x01\x03" + b"\x00" * 200, password, "not_pkcs12"),
        "der_certificate_only": (_der_certificate(pki["demo"].cert_pem), password, "not_pkcs12"),
        "utf16_text": ("Esto es un certificado, créame.".encode("utf-16"), password, "not_pkcs12"),
        "just_over_the_cap": (b"\x30\x83\x01\x00\x01" + b"\x00" * (64 * 1024), password, "too_large"),
        "empty": (b"", password, "empty"),
    }


def _der_certificate(pem: Path | None) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    assert pem is not None
    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)


CORPUS = [
    "sandbox_pem_not_pkcs12", "sandbox_garbage", "sandbox_expired", "sandbox_not_yet_valid", "sandbox_no_rut",
    "sandbox_company_holder", "demo_wrong_password", "demo_password_case", "demo_truncated_half", "demo_mac_tampered",
    "demo_base64_armoured", "demo_base64_bare", "zip_bomb", "gzip_bomb", "asn1_depth_bomb", "asn1_declares_2gb",
    "der_certificate_only", "utf16_text", "just_over_the_cap", "empty",
]


def upload(client, company, data: bytes, password: str, name: str = "firma.pfx"):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("client:certificate_upload", kwargs={"company_id": company.pk}),
        {"certificate": SimpleUploadedFile(name, data, content_type="application/x-pkcs12"), "password": password},
    )


@pytest.fixture
def owner(client, cast):  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    return cast


@pytest.mark.parametrize("case", CORPUS)
def test_hostile_upload_is_refused_with_its_own_message_and_stores_nothing(client, owner, corpus, case: str) -> None:  # type: ignore[no-untyped-def]
    data, password, code = corpus[case]
    before = row_counts()
    response = upload(client, owner.company_a, data, password)
    _tried("upload")
    assert response.status_code == 200
    field = "password" if code == "wrong_password" else "certificate"
    assert field_error(response, field) == CERTIFICATE_ERROR_CODES[code], (case, field_error(response, field))
    assert row_counts() == before
    if password:
        assert password not in response.content.decode()


@pytest.mark.parametrize("name", ["../../../etc/passwd", "<img src=x onerror=alert(1)>.pfx", "firma\x00.pfx",
                                  "a" * 5000 + ".pfx", "\u202exfp.exe"])
def test_hostile_file_names_are_neither_stored_nor_reflected(client, owner, corpus, name: str) -> None:  # type: ignore[no-untyped-def]
    data, password, _ = corpus["sandbox_garbage"]
    before = row_counts()
    response = upload(client, owner.company_a, data, password, name=name)
    _tried("upload_file_name")
    assert response.status_code == 200
    assert field_error(response, "certificate") == CERTIFICATE_ERROR_CODES["not_pkcs12"]
    assert "<img src=x" not in response.content.decode() and "etc/passwd" not in response.content.decode()
    assert row_counts() == before


@pytest.mark.parametrize("flood", ["password_over_data_upload_max", "too_many_fields", "too_many_files"])
def test_oversized_requests_are_a_400_not_a_500_and_store_nothing(client, owner, corpus, settings, flood: str) -> None:  # type: ignore[no-untyped-def]
    """Beyond DATA_UPLOAD_MAX_MEMORY_SIZE (non-file fields), DATA_UPLOAD_MAX_NUMBER_FIELDS and
    _FILES Django refuses the request before any view code: a 400, never a 500."""
    demo, password, _ = corpus["demo_wrong_password"]
    url = reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk})
    data: dict[str, object] = {"certificate": SimpleUploadedFile("f.pfx", demo), "password": password}
    if flood == "password_over_data_upload_max":
        data["password"] = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
    elif flood == "too_many_fields":
        data.update({f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 10)})
    else:
        data["extra"] = [SimpleUploadedFile(f"{i}.pfx", b"x") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 5)]
    before = row_counts()
    response = client.post(url, data)
    _tried("oversized_request")
    assert response.status_code == 400
    assert row_counts() == before


def test_two_files_in_one_field_store_at_most_the_last_valid_one(client, owner, corpus, sandbox_pki_dir) -> None:  # type: ignore[no-untyped-def]
    from onboarding.models import Certificate
    from sii_sandbox.pki import load_pki

    demo = load_pki(sandbox_pki_dir)["demo"]
    url = reverse("client:certificate_upload", kwargs={"company_id": owner.company_a.pk})
    response = client.post(url, {"certificate": [SimpleUploadedFile("a.pfx", corpus["zip_bomb"][0]),
                                                 SimpleUploadedFile("b.pfx", demo.path.read_bytes())],
                                 "password": demo.password})
    _tried("upload")
    assert response.status_code in (200, 302)
    assert Certificate.objects.filter(company=owner.company_a).count() <= 1


def test_markup_in_a_certificate_holder_name_is_rendered_escaped(client, owner) -> None:  # type: ignore[no-untyped-def]
    """A certificate is attacker-made too: its subject is stored as text and never rendered as markup."""
    from onboarding.models import Certificate
    from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

    payload = '<img src=x onerror=alert(1)> & "ROJAS"'
    response = upload(client, owner.company_a, make_pfx(CertSpec(cn=payload, san_rut="12531909-2"), password="s3creto"), "s3creto")
    _tried("upload")
    assert response.status_code == 302
    certificate = Certificate.objects.get(company=owner.company_a)
    assert "<img" in certificate.holder_name  # stored as the certificate says…
    for page in (response["Location"], reverse("client:company", kwargs={"company_id": owner.company_a.pk})):
        body = client.get(page).content.decode()
        assert "<img src=x" not in body  # …and shown as text
        assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_a_pfx_demanding_billions_of_key_derivation_rounds_is_refused_fast(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Parsed in a subprocess killed after 5 s (a parse cannot be interrupted in-process)."""
    from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

    hostile = tmp_path / "billions.pfx"
    hostile.write_bytes(with_mac_iterations(make_pfx(CertSpec(), password="p"), 2**31 - 1))
    code = (
        "import sys\nfrom sii_bot.certificates import open_pkcs12, CertificateError\n"
        "try:\n    open_pkcs12(open(sys.argv[1], 'rb').read(), 'p')\nexcept CertificateError as e:\n    print(e.code)\n"
    )
    _tried("upload")
    try:
        result = subprocess.run([sys.executable, "-c", code, str(hostile)], check=False, cwd=ROOT, capture_output=True, text=True,
                                timeout=5, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        pytest.fail("parsing a PKCS#12 file with 2^31 MAC iterations took more than 5 s")
    assert result.stdout.strip() == "not_pkcs12", result.stdout + result.stderr


ENCODINGS_300M = ["der", "indefinite", "long"]


def _mac_300m(encoding: str) -> bytes:
    """A .pfx whose MAC asks for 300,000,000 rounds (~18 s of OpenSSL CPU), in DER, with BER indefinite
    lengths, or with long-form (non-minimal) lengths everywhere in its envelope."""
    from tests.sii_bot import hostile_pfx
    from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

    der = with_mac_iterations(make_pfx(CertSpec(), password="p"), 300_000_000)
    return der if encoding == "der" else hostile_pfx.reencode_outer(der, encoding)


@pytest.fixture
def pkcs12_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Calls of cryptography's PKCS#12 loader (where OpenSSL derives the keys)."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    calls: list[int] = []
    real = pkcs12.load_pkcs12
    monkeypatch.setattr(pkcs12, "load_pkcs12", lambda data, password, *a, **k: calls.append(1) or real(data, password, *a, **k))
    return calls


@pytest.mark.parametrize("encoding", ENCODINGS_300M)
def test_the_upload_form_refuses_a_300_million_round_pfx_in_any_encoding_without_the_work(  # type: ignore[no-untyped-def]
        client, owner, pkcs12_loads, encoding: str) -> None:
    hostile = _mac_300m(encoding)
    before = row_counts()
    started = time.perf_counter()
    response = upload(client, owner.company_a, hostile, "p")
    elapsed = time.perf_counter() - started
    _tried("upload")
    assert response.status_code == 200
    assert field_error(response, "certificate") == CERTIFICATE_ERROR_CODES["not_pkcs12"]
    assert row_counts() == before
    assert pkcs12_loads == [], "the file reached cryptography's loader"
    assert elapsed < 1, f"the upload took {elapsed:.2f} s"


@pytest.mark.parametrize("encoding", ENCODINGS_300M)
def test_sii_certificate_info_refuses_a_300_million_round_pfx_in_any_encoding_without_the_work(  # type: ignore[no-untyped-def]
        tmp_path, monkeypatch, capsys, pkcs12_loads, encoding: str) -> None:
    from django.core.management import call_command

    path = tmp_path / "firma.pfx"
    path.write_bytes(_mac_300m(encoding))
    monkeypatch.setenv("SII_PFX_PASSWORD", "p")
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exited:
        call_command("sii_certificate_info", "--pfx", str(path))
    elapsed = time.perf_counter() - started
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"Error: {CERTIFICATE_ERROR_CODES['not_pkcs12']}\n"
    assert pkcs12_loads == [], "the file reached cryptography's loader"
    assert elapsed < 1, f"the command took {elapsed:.2f} s"


def test_manage_py_sii_certificate_info_exits_2_at_once_on_the_indefinite_length_300_million_round_pfx(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real command line (manage.py in a subprocess): ~18 s of CPU without the budget check."""
    import os

    path = tmp_path / "firma.pfx"
    path.write_bytes(_mac_300m("indefinite"))
    env = {**os.environ, "DJANGO_DEBUG": "1", "SII_PFX_PASSWORD": "p"}
    try:
        result = subprocess.run([sys.executable, "manage.py", "sii_certificate_info", "--pfx", str(path)], check=False, cwd=ROOT,
                                env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("sii_certificate_info spent more than 10 s on the file")
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"Error: {CERTIFICATE_ERROR_CODES['not_pkcs12']}\n"


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(data: bytes, pos: int) -> tuple[int, int]:
    """(content start, end) of the DER element at `pos` (definite lengths only)."""
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    count = first & 0x7F
    start = pos + 2 + count
    return start, start + int.from_bytes(data[pos + 2:start], "big")


def with_mac_iterations(pfx: bytes, iterations: int) -> bytes:
    """The same PFX with its MacData iteration count replaced (lengths re-encoded)."""
    start, end = _tlv(pfx, 0)
    elements, pos = [], start
    while pos < end:
        _, stop = _tlv(pfx, pos)
        elements.append(pfx[pos:stop])
        pos = stop
    version, auth_safe, mac_data = elements
    mstart, mend = _tlv(mac_data, 0)
    parts, pos = [], mstart
    while pos < mend:
        _, stop = _tlv(mac_data, pos)
        parts.append(mac_data[pos:stop])
        pos = stop
    count = iterations.to_bytes((iterations.bit_length() + 8) // 8, "big")
    body = parts[0] + parts[1] + b"\x02" + _der_length(len(count)) + count
    mac_data = b"\x30" + _der_length(len(body)) + body
    body = version + auth_safe + mac_data
    return b"\x30" + _der_length(len(body)) + body


# --- Hostile text -----------------------------------------------------------------------------------

RUT_CASES: dict[str, tuple[str, str]] = {
    # name: (typed company RUT, expected message)
    "empty": ("", "Ingrese el RUT de la empresa, por ejemplo 76.086.428-5."),
    "blank": ("   ", "Ingrese el RUT de la empresa, por ejemplo 76.086.428-5."),
    "zero": ("0-0", INVALID_FORMAT),
    "wrong_check_digit": ("76.086.428-4", WRONG_DV),
    "no_dash_wrong_dv": ("76086428", WRONG_DV),
    "nine_digit_body": ("123456789-0", INVALID_FORMAT),
    "only_check_digit": ("-5", INVALID_FORMAT),
    "no_check_digit": ("76.086.428-", INVALID_FORMAT),
    "k_body": ("K-K", INVALID_FORMAT),
    "letter_o_for_zero": ("76O86428-5", INVALID_FORMAT),
    "negative": ("-76086428-5", INVALID_FORMAT),
    "scientific": ("7.6086428e7-5", INVALID_FORMAT),
    "fullwidth_digits": ("７６０８６４２８－５", INVALID_FORMAT),
    "arabic_indic_digits": ("٧٦٠٨٦٤٢٨-٥", INVALID_FORMAT),
    "devanagari_digits": ("७६०८६४२८-५", INVALID_FORMAT),
    "mathematical_digits": ("𝟳𝟲𝟬𝟴𝟲𝟰𝟮𝟴-𝟱", INVALID_FORMAT),
    "one_homoglyph_digit": ("76086428-٥", INVALID_FORMAT),
    "zero_width_space": ("76086\u200b428-5", INVALID_FORMAT),
    "rtl_override": ("\u202e5-82468067", INVALID_FORMAT),
    "trailing_rtl_override": ("76086428-5\u202e", INVALID_FORMAT),
    "nul_byte": ("76086428-5\x00", NUL),
    "markup": ("<script>1</script>", "Asegúrese de que este valor tenga menos de 16 caracteres (tiene 18)."),
    "sql": ("1-9'; DROP--", INVALID_FORMAT),
    "very_long": ("7" * 10_000, "Asegúrese de que este valor tenga menos de 16 caracteres (tiene 10000)."),
}


def signup(client, **fields: str):  # type: ignore[no-untyped-def]
    data = {"email": "hostil@empresa.cl", "password": SIGNUP_PASSWORD, "company_rut": "96.874.030-K",
            "legal_name": "Empresa Hostil SpA", "owner_name": "Ana Pérez"}
    data.update(fields)
    return client.post(reverse("client:signup", kwargs={"tenant_slug": "pyme"}), data)


@pytest.mark.parametrize("case", list(RUT_CASES))
def test_every_invalid_rut_shape_is_refused_with_its_message(client, cast, case: str) -> None:  # type: ignore[no-untyped-def]
    typed, message = RUT_CASES[case]
    before = row_counts()
    response = signup(client, company_rut=typed)
    _tried("rut")
    assert response.status_code == 200
    assert field_error(response, "company_rut") == message
    assert row_counts() == before


TEXT_REFUSALS: dict[str, tuple[dict[str, str], str, str]] = {
    # name: (fields, field with the error, message)
    "nul_in_legal_name": ({"legal_name": "Empresa\x00 SpA"}, "legal_name", NUL),
    "nul_in_owner_name": ({"owner_name": "Ana\x00"}, "owner_name", NUL),
    "legal_name_201_chars": ({"legal_name": "x" * 201}, "legal_name", "Asegúrese de que este valor tenga menos de 200 caracteres (tiene 201)."),
    "owner_name_100k_chars": ({"owner_name": "x" * 100_000}, "owner_name", "Asegúrese de que este valor tenga menos de 200 caracteres (tiene 100000)."),
    "blank_legal_name": ({"legal_name": " \t "}, "legal_name", "Ingrese la razón social de la empresa."),
    "email_header_injection": ({"email": "a@b.cl\r\nBcc: victima@x.cl"}, "email", "Ingrese un correo electrónico válido."),
    "email_markup": ({"email": "<script>@x.cl"}, "email", "Ingrese un correo electrónico válido."),
    "email_nul": ({"email": "a\x00@b.cl"}, "email", "Ingrese un correo electrónico válido. | " + NUL),
    "email_too_long": ({"email": "a" * 150 + "@b.cl"}, "email", "Asegúrese de que este valor tenga menos de 150 caracteres (tiene 155)."),
}


@pytest.mark.parametrize("case", list(TEXT_REFUSALS))
def test_hostile_text_is_refused_with_its_message_and_stores_nothing(client, cast, case: str) -> None:  # type: ignore[no-untyped-def]
    fields, field, message = TEXT_REFUSALS[case]
    before = row_counts()
    response = signup(client, **fields)
    _tried("text")
    assert response.status_code == 200
    assert field_error(response, field) == message
    assert row_counts() == before


MARKUP = "<script>alert('xss')</script><img src=x onerror=alert(1)>"
ACCEPTED_NAMES = {
    "markup": MARKUP + " SpA",
    "template_syntax": "{{ request.user.password }} {% debug %} Ltda",
    "quotes_and_ampersand": "Pérez & Hijos \"La 'Única'\" Ltda.",
    "csv_formula": "=HYPERLINK(\"http://x\",\"clic\") SpA",
    "cyrillic_homoglyphs": "Сомеrсiаl Dеmо SpA",
}


@pytest.mark.parametrize("case", list(ACCEPTED_NAMES))
def test_accepted_hostile_names_are_rendered_escaped_everywhere(client, cast, case: str) -> None:  # type: ignore[no-untyped-def]
    """Legitimate names contain &, quotes and non-Latin letters, so they are accepted; every page that
    shows them (the client's and the firm's) escapes them, and the CSV export defuses formulas."""
    from django.test import Client
    from django.utils.html import escape

    from onboarding.models import ClientCompany

    name = ACCEPTED_NAMES[case]
    response = signup(client, legal_name=name, owner_name=name)
    _tried("text")
    assert response.status_code == 302
    company = ClientCompany.objects.get(rut="96874030-K", tenant=cast.tenant_a)
    assert company.legal_name == name
    pages = [(client, reverse("client:company", kwargs={"company_id": company.pk})),
             (client, reverse("client:certificate_upload", kwargs={"company_id": company.pk}))]
    staff, owner = Client(), Client()
    staff.force_login(cast.staff_a)
    owner.force_login(cast.owner_a)
    pages += [(staff, reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"})),
              (owner, reverse("staff:audit", kwargs={"tenant_slug": "pyme"}))]
    for who, url in pages:
        body = who.get(url).content.decode()
        assert escape(name) in body, url  # shown literally: "{{ … }}" is text, never evaluated
        if any(c in name for c in "<>\"'&"):
            assert name not in body, f"{url} renders the name unescaped"
    export = staff.get(reverse("staff:dashboard_export", kwargs={"tenant_slug": "pyme"}))
    csv_text = b"".join(export.streaming_content).decode("utf-8-sig")
    if name.startswith("="):
        assert "'" + name.replace('"', '""') in csv_text and ";" + name not in csv_text


@pytest.mark.parametrize("trick", ["\u202eadtL otirédeM", "Comercial\u200b Demo SpA", "\ufeffComercial Demo SpA"])
def test_invisible_format_characters_in_names_are_refused(client, cast, trick: str) -> None:  # type: ignore[no-untyped-def]
    response = signup(client, legal_name=trick)
    _tried("text")
    assert response.status_code == 200 and field_error(response, "legal_name")


@pytest.mark.browser
@pytest.mark.sandbox
def test_a_certificate_from_a_foreign_ca_never_gets_past_the_sii_handshake(  # type: ignore[no-untyped-def]
    client, owner, sandbox, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """A certificate issued by a CA the SII does not accept cannot be told apart at upload (we do not
    ship the list of accredited Chilean CAs; see docs/reliability.md): it is accepted there, with its
    issuer shown for review, and the SII's TLS handshake refuses it. The job then fails at once, as
    final: no retry is wasted on it, no SII session is opened, nothing is saved."""
    from unittest import mock

    from onboarding import services, tasks
    from onboarding.models import Certificate, JobStatus

    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tasks.enrollment_job_run, "delay", mock.Mock())
    foreign = sandbox.pki["unknown_ca"]
    response = upload(client, owner.company_a, foreign.path.read_bytes(), foreign.password or "")
    _tried("upload")
    assert response.status_code == 302
    assert "Otra CA Desconocida" in client.get(response["Location"]).content.decode()
    certificate = Certificate.objects.get(company=owner.company_a)
    users_before = sandbox.users(owner.company_a.rut)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.enrollment_job_create(company=owner.company_a, certificate=certificate, created_by=owner.client_a)
    done = services.enrollment_job_execute(job_id=str(job.pk))
    assert done.status == JobStatus.FAILED and done.failure_code == "certificate_rejected", done.failure_detail
    assert not done.failure_retryable and done.retry_count == 0
    sessions = sandbox.state()["sessions"].get(foreign.holder_rut, {"logins": 0})
    assert sessions["logins"] == 0
    assert sandbox.users(owner.company_a.rut) == users_before


@pytest.mark.parametrize("algorithm", ["PBESv1SHA1And3KeyTripleDESCBC", "PBESv2SHA256AndAES256CBC"])
def test_a_pfx_whose_key_bags_demand_millions_of_rounds_is_refused_fast(algorithm: str) -> None:
    """The MAC's count is capped on its own; here only the key and certificate encryption ask for the work."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from sii_bot.certificates import CertificateError, open_pkcs12
    from tests.sii_bot.bot_pfx_factory import CertSpec, make_cert

    key, cert, ca = make_cert(CertSpec())
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(65536)
        .key_cert_algorithm(getattr(pkcs12.PBES, algorithm))
        .hmac_hash(hashes.SHA256())
        .build(b"p")
    )
    honest = pkcs12.serialize_key_and_certificates(b"t", key, cert, [ca], encryption)
    assert open_pkcs12(honest, "p").holder_rut == "13322924-8"  # untouched, it opens
    # 65,536 is INTEGER 02 03 01 00 00; 0x7fffff (8,388,607) has the same length, so the counts of the
    # key bag and of the certificates' EncryptedData can be raised in place (the MAC keeps its 2,048).
    needle, raised = b"\x02\x03\x01\x00\x00", b"\x02\x03\x7f\xff\xff"
    assert honest.count(needle) == 2 and honest.endswith(b"\x02\x02\x08\x00")
    hostile = honest.replace(needle, raised)
    started = time.monotonic()
    with pytest.raises(CertificateError) as refused:
        open_pkcs12(hostile, "p")
    # Refused by the structure check, before any key derivation (a wrong MAC would say wrong_password).
    assert refused.value.code == "not_pkcs12" and "work" in refused.value.detail
    assert time.monotonic() - started < 1
