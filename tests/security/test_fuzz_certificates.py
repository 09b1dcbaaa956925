"""Property-based fuzzing of the certificate parser (`sii_bot.certificates.open_pkcs12`) and of the
upload service around it (`services.client_certificate_open`).

Every outcome is exact and typed: a bundle, or a CertificateError whose code is one of
CERTIFICATE_ERROR_CODES with its own Spanish message; any other exception fails the test. The work is
asserted, not only the time: cryptography's PKCS#12 loader (where OpenSSL derives keys) is spied, a
file refused before it is never handed to it, an over-budget file never reaches it, and no call of it
may cost more than LOADER_CPU_SECONDS.

tests/sii_bot/test_bot_certificates.py fuzzes random bytes and random byte flips; this adds
structure-aware mutations (DER lengths and tags rewritten at real element boundaries, random DER
after a valid PFX header), random mixes of BER encodings (indefinite lengths, long-form lengths with
leading zeros, constructed OCTET STRINGs) of honest and of over-budget files, hostile passwords, and
the service layer."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sii_bot.certificates import CERTIFICATE_ERROR_CODES, MAX_KDF_ITERATIONS, CertificateError, open_pkcs12
from tests.sii_bot import hostile_pfx as H
from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

PASSWORD = "secreto"
PFX = make_pfx(CertSpec(), password=PASSWORD)
MODERN = make_pfx(CertSpec(), password=PASSWORD, legacy=False)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LOADER_CPU_SECONDS = 0.5  # one honest load costs ~40 ms; the budget allows well under this
REFUSED_BEFORE_LOADING = {"not_pkcs12", "wrong_password", "empty", "too_large"}


class Loads:
    """Spy on cryptography's PKCS#12 loader: how many calls, and the CPU seconds of the slowest."""

    def __init__(self) -> None:
        self.calls = 0
        self.slowest = 0.0

    def reset(self) -> None:
        self.calls, self.slowest = 0, 0.0


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loads]:
    spy = Loads()
    real = pkcs12.load_pkcs12

    def load(data: bytes, password: bytes | None, *args: object, **kwargs: object) -> object:
        spy.calls += 1
        started = time.process_time()
        try:
            return real(data, password, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            spy.slowest = max(spy.slowest, time.process_time() - started)

    monkeypatch.setattr(pkcs12, "load_pkcs12", load)
    yield spy


def outcome(data: bytes, loads: Loads, password: str = PASSWORD) -> str:
    """"opened" or the refusal code; anything but a CertificateError propagates and fails the test."""
    loads.reset()
    try:
        open_pkcs12(data, password)
        result = "opened"
    except CertificateError as error:
        assert error.code in CERTIFICATE_ERROR_CODES and error.message == CERTIFICATE_ERROR_CODES[error.code]
        result = error.code
    assert loads.slowest < LOADER_CPU_SECONDS, f"the loader spent {loads.slowest:.2f} s of CPU"
    if loads.calls == 0:
        assert result in REFUSED_BEFORE_LOADING, result  # nothing opens without the loader
    return result


def refused_without_work(data: bytes, loads: Loads, password: str = PASSWORD) -> None:
    """Exactly not_pkcs12, decided before the loader was called."""
    assert outcome(data, loads, password) == "not_pkcs12"
    assert loads.calls == 0, "an over-budget file reached cryptography's loader"


# --- Structure-aware mutations of DER -------------------------------------------------------------------


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


def test_the_walker_sees_the_whole_structure(loads: Loads) -> None:
    assert len(HEADERS) > 20 and outcome(PFX, loads) == "opened" and loads.calls == 1


@FUZZ
@given(st.sampled_from(HEADERS), st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x88, 0xFF]),
       st.binary(min_size=0, max_size=4))
def test_rewritten_lengths_get_a_typed_answer_without_unbounded_work(loads: Loads, position: int, first: int,
                                                                      tail: bytes) -> None:
    mutated = PFX[: position + 1] + bytes([first]) + tail + PFX[position + 2 + len(tail):]
    outcome(mutated, loads)


@FUZZ
@given(st.sampled_from(HEADERS), st.integers(0, 255))
def test_rewritten_tags_get_a_typed_answer_without_unbounded_work(loads: Loads, position: int, tag: int) -> None:
    outcome(PFX[:position] + bytes([tag]) + PFX[position + 1:], loads)


@FUZZ
@given(st.sampled_from(HEADERS), st.integers(1, 400))
def test_truncation_at_any_element_is_refused_before_loading(loads: Loads, position: int, extra: int) -> None:
    cut = PFX[: position + extra]
    if len(cut) == len(PFX):
        assert outcome(cut, loads) == "opened"
    else:
        refused_without_work(cut, loads)


der_leaf = st.one_of(
    st.binary(max_size=40).map(lambda b: b"\x04" + bytes([len(b)]) + b),
    st.integers(0, 2**62).map(lambda n: b"\x02\x08" + n.to_bytes(8, "big")),
    st.just(b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01"),  # the "data" OID
    st.just(b"\x05\x00"),
)


def der_sequence(parts: list[bytes]) -> bytes:
    body = b"".join(parts)
    return b"\x30" + (bytes([len(body)]) if len(body) < 128 else b"\x82" + len(body).to_bytes(2, "big")) + body


der_tree = st.recursive(der_leaf, lambda children: st.lists(children, max_size=4).map(der_sequence), max_leaves=30)


@FUZZ
@given(der_tree)
def test_random_der_behind_a_valid_pfx_header_is_refused_before_loading(loads: Loads, content: bytes) -> None:
    """An authSafe whose [0] holds no OCTET STRING (a SEQUENCE here) is not a PFX the walk can read."""
    inner = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01" + b"\xa0" + b"\x82" + len(content).to_bytes(2, "big") + content
    auth_safe = b"\x30\x82" + len(inner).to_bytes(2, "big") + inner
    body = b"\x02\x01\x03" + auth_safe
    refused_without_work(b"\x30\x82" + len(body).to_bytes(2, "big") + body, loads)


@FUZZ
@given(der_tree)
def test_random_der_as_the_authenticated_safe_gets_a_typed_answer(loads: Loads, content: bytes) -> None:
    """Attacker-shaped DER where the AuthenticatedSafe goes (inside the OCTET STRING), with a valid MAC."""
    assert outcome(H.assemble([], PASSWORD, auth_safe=content), loads) != "opened"


# --- Random mixes of BER encodings ---------------------------------------------------------------------


def ber_length(n: int, rng: random.Random) -> bytes:
    """Minimal, or long form with up to three leading zero bytes (also for lengths under 128)."""
    if rng.random() < 0.4:
        return H.length_bytes(n, "der")
    raw = b"\x00" * rng.randint(0, 3) + n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    return bytes([0x80 | len(raw)]) + raw


def ber(node: H.Node, rng: random.Random, nesting: int = 0) -> bytes:
    """``node`` with an encoding drawn per element: indefinite or long-form lengths, OCTET STRINGs split
    into constructed ones (nested up to 6 levels, as deep as OpenSSL accepts)."""
    if not node.constructed:
        if node.tag == 0x04 and len(node.value) > 1 and nesting < 6 and rng.random() < 0.3:
            cuts = sorted(rng.sample(range(1, len(node.value)), min(3, len(node.value) - 1)))
            bounds = zip([0, *cuts], [*cuts, len(node.value)], strict=True)
            parts = b"".join(ber(H.Node(0x04, node.value[a:b]), rng, nesting + 1) for a, b in bounds)
            return wrap(0x24, parts, rng)
        return bytes([node.tag]) + ber_length(len(node.value), rng) + node.value
    return wrap(node.tag, b"".join(ber(child, rng) for child in node.children or []), rng)


def wrap(tag: int, body: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.4:
        return bytes([tag]) + b"\x80" + body + b"\x00\x00"
    return bytes([tag]) + ber_length(len(body), rng) + body


def ber_data_info(safe_contents: bytes, rng: random.Random) -> bytes:
    """A data ContentInfo holding ``safe_contents`` re-encoded, itself re-encoded."""
    inner = ber(H.parse_der(safe_contents), rng)
    return ber(H.Node(0x30, children=[H.Node(0x06, H.OID_DATA), H.Node(0xA0, children=[H.Node(0x04, inner)])]), rng)


def ber_pfx(content_infos: list[bytes], rng: random.Random, **assemble: object) -> bytes:
    """A PFX with BER in every layer: AuthenticatedSafe (the MAC is computed over it) and envelope."""
    auth_safe = wrap(0x30, b"".join(content_infos), rng)
    return ber(H.parse_der(H.assemble([], PASSWORD, auth_safe=auth_safe, **assemble)), rng)  # type: ignore[arg-type]


HONEST_PARTS = {"3des": H.split(PFX), "aes_pbes2": H.split(MODERN)}


@FUZZ
@given(st.sampled_from(sorted(HONEST_PARTS)), st.integers(0, 2**32))
def test_an_honest_file_opens_in_any_mix_of_ber_encodings(loads: Loads, kind: str, seed: int) -> None:
    rng = random.Random(seed)
    certs, keys = HONEST_PARTS[kind].content_infos
    data = ber_pfx([ber(certs, rng), ber_data_info(H.plain_safe_contents(keys), rng)], rng)
    assert outcome(data, loads) == "opened" and loads.calls == 1


OVER_BUDGET_ALGORITHMS = {
    "pkcs12_3des": lambda: H.pkcs12_pbe(300_000_000),
    "pbes1": lambda: H.pbes1(MAX_KDF_ITERATIONS + 1),
    "pbkdf2": lambda: H.pbes2(H.pbkdf2(2**31 - 1)),
    "scrypt": lambda: H.pbes2(H.scrypt(1 << 20, 8, 1)),
}
OVER_BUDGET_PLACES = ["mac", "pbmac1", "visible_key_bag", "key_bag_inside_encrypted_data", "encrypted_data"]


@FUZZ
@given(st.sampled_from(OVER_BUDGET_PLACES), st.sampled_from(sorted(OVER_BUDGET_ALGORITHMS)),
       st.integers(0, 2**32))
def test_an_over_budget_file_is_refused_without_the_work_in_any_mix_of_ber_encodings(
        loads: Loads, place: str, algorithm: str, seed: int) -> None:
    rng = random.Random(seed)
    certs, keys = HONEST_PARTS["3des"].content_infos
    key_contents = H.plain_safe_contents(keys)
    hostile_bag = H.safe_contents(H.shrouded_bag(OVER_BUDGET_ALGORITHMS[algorithm]()))
    assemble: dict[str, object] = {}
    infos = [ber(certs, rng), ber_data_info(key_contents, rng)]
    if place == "mac":
        assemble["mac_field"] = 300_000_000
    elif place == "pbmac1":
        assemble["mac_algorithm"] = H.pbmac1(300_000_000)
    elif place == "visible_key_bag":
        infos[1] = ber_data_info(hostile_bag, rng)
    elif place == "key_bag_inside_encrypted_data":
        plain = ber(H.parse_der(hostile_bag), rng)
        infos[1] = ber(H.parse_der(H.encrypted_content_info(plain, PASSWORD, iterations=2)), rng)
    else:
        encrypted = H.encrypted_content_info(key_contents, PASSWORD, algorithm=OVER_BUDGET_ALGORITHMS[algorithm]())
        infos[1] = ber(H.parse_der(encrypted), rng)
    refused_without_work(ber_pfx(infos, rng, **assemble), loads)


# --- Passwords ----------------------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=64).filter(lambda p: "\x00" not in p and p != PASSWORD))
@example("secreto ")
@example("SECRETO")
@example("secret")
@example("")
def test_any_other_password_is_wrong_and_derives_nothing_in_openssl(loads: Loads, password: str) -> None:
    """The certificates' EncryptedData does not open with it, so the loader is never called."""
    assert outcome(PFX, loads, password) == "wrong_password" and loads.calls == 0


def test_a_nul_byte_in_the_password_is_a_wrong_password_not_a_crash(loads: Loads) -> None:
    assert outcome(PFX, loads, PASSWORD + "\x00x") == "wrong_password" and loads.calls == 0


# --- The upload service ---------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096), st.text(max_size=32).filter(lambda p: "\x00" not in p))
@example(PFX[:-1], PASSWORD)
@example(PFX, PASSWORD)
@example(b"\x30\x80" * 2000, PASSWORD)
@example(H.reencode_outer(PFX, "indefinite"), PASSWORD)
def test_the_upload_service_gives_the_parsers_own_answer(loads: Loads, caplog: pytest.LogCaptureFixture,
                                                         data: bytes, password: str) -> None:
    """The service's catch-all (any other exception → not_pkcs12) must never be what answered."""
    from onboarding.services import client_certificate_open

    expected = outcome(data, loads, password)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="onboarding"):
        try:
            client_certificate_open(upload=SimpleUploadedFile("f.pfx", data), password=password)
            got = "opened"
        except CertificateError as error:
            got = error.code
    assert got == expected
    assert not [r for r in caplog.records if "instead of CertificateError" in r.getMessage()]
