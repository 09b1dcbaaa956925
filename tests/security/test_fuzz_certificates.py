"""Property-based fuzzing of the certificate parser (`sii_bot.certificates.open_pkcs12`) and of the
upload service around it (`services.client_certificate_open`): whatever the bytes and the password,
the only outcome is a bundle or a CertificateError, quickly.

tests/sii_bot/test_bot_certificates.py fuzzes random bytes and random byte flips; this adds
structure-aware mutations (DER lengths and tags rewritten at real element boundaries, random DER
after a valid PFX header), hostile passwords, and the service layer."""
from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sii_bot.certificates import CertificateError, open_pkcs12
from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

PASSWORD = "secreto"
PFX = make_pfx(CertSpec(), password=PASSWORD)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_SECONDS = 3.0  # one parse of a real file takes ~40 ms


def element_headers(data: bytes) -> list[int]:
    """Offsets of every DER element header in `data` (walking SEQUENCE/SET/[n] constructed ones)."""
    found: list[int] = []

    def walk(start: int, end: int, depth: int) -> None:
        pos = start
        while pos < end and depth < 12:
            found.append(pos)
            tag, first = data[pos], data[pos + 1]
            if first < 0x80:
                content, length = pos + 2, first
            else:
                count = first & 0x7F
                content, length = pos + 2 + count, int.from_bytes(data[pos + 2:pos + 2 + count], "big")
            if tag & 0x20:  # constructed
                walk(content, min(content + length, end), depth + 1)
            elif tag == 0x04 and length > 2 and data[content] == 0x30:  # OCTET STRING wrapping DER
                walk(content, content + length, depth + 1)
            pos = content + length

    walk(0, len(data), 0)
    return found


HEADERS = element_headers(PFX)


def refuse_quickly(data: bytes, password: str = PASSWORD) -> str:
    start = time.monotonic()
    try:
        open_pkcs12(data, password)
        outcome = "opened"
    except CertificateError as error:
        outcome = error.code
    assert time.monotonic() - start < SLOW_SECONDS, f"parse took {time.monotonic() - start:.1f} s"
    return outcome


def test_the_walker_sees_the_whole_structure() -> None:
    assert len(HEADERS) > 20 and refuse_quickly(PFX) == "opened"


@FUZZ
@given(st.sampled_from(HEADERS), st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x88, 0xFF]),
       st.binary(min_size=0, max_size=4))
def test_rewritten_lengths_are_refused_quickly(position: int, first: int, tail: bytes) -> None:
    mutated = PFX[: position + 1] + bytes([first]) + tail + PFX[position + 2 + len(tail):]
    refuse_quickly(mutated)


@FUZZ
@given(st.sampled_from(HEADERS), st.integers(0, 255))
def test_rewritten_tags_are_refused_quickly(position: int, tag: int) -> None:
    refuse_quickly(PFX[:position] + bytes([tag]) + PFX[position + 1:])


@FUZZ
@given(st.sampled_from(HEADERS), st.integers(1, 400))
def test_truncation_at_any_element_is_refused(position: int, extra: int) -> None:
    assert refuse_quickly(PFX[: position + extra]) in ("not_pkcs12", "wrong_password", "no_certificate",
                                                       "no_private_key", "key_mismatch", "opened")


der_leaf = st.one_of(
    st.binary(max_size=40).map(lambda b: b"\x04" + bytes([len(b)]) + b),
    st.integers(0, 2**62).map(lambda n: b"\x02\x08" + n.to_bytes(8, "big")),
    st.just(b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01"),  # the "data" OID
    st.just(b"\x05\x00"),
)
der_tree = st.recursive(der_leaf, lambda children: st.lists(children, max_size=4).map(
    lambda parts: (lambda body: b"\x30" + (bytes([len(body)]) if len(body) < 128 else b"\x82" + len(body).to_bytes(2, "big")) + body)(b"".join(parts))
), max_leaves=30)


@FUZZ
@given(der_tree)
def test_random_der_behind_a_valid_pfx_header_is_refused(content: bytes) -> None:
    """Gets past the structure check into OpenSSL's parser with attacker-shaped content."""
    inner = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01" + b"\xa0" + b"\x82" + len(content).to_bytes(2, "big") + content
    auth_safe = b"\x30\x82" + len(inner).to_bytes(2, "big") + inner
    body = b"\x02\x01\x03" + auth_safe
    assert refuse_quickly(b"\x30\x82" + len(body).to_bytes(2, "big") + body) != "opened"


@FUZZ
@given(st.text(max_size=64).filter(lambda p: "\x00" not in p and p != PASSWORD))
@example("secreto ")
@example("SECRETO")
@example("secret")
@example("")
def test_any_other_password_is_wrong(password: str) -> None:
    assert refuse_quickly(PFX, password) == "wrong_password"


def test_a_nul_byte_in_the_password_is_a_wrong_password_not_a_crash() -> None:
    assert refuse_quickly(PFX, PASSWORD + "\x00x") == "wrong_password"


@FUZZ
@given(st.binary(max_size=4096), st.text(max_size=32).filter(lambda p: "\x00" not in p))
@example(PFX[:-1], PASSWORD)
@example(b"\x30\x80" * 2000, PASSWORD)
def test_the_upload_service_only_ever_raises_certificate_error(data: bytes, password: str) -> None:
    from onboarding.services import client_certificate_open

    try:
        client_certificate_open(upload=SimpleUploadedFile("f.pfx", data), password=password)
    except CertificateError:
        pass
