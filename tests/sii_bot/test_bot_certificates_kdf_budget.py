"""The key-derivation budget of sii_bot.certificates: every key derivation a .pfx asks OpenSSL for (MAC,
EncryptedData, shrouded key bags, also inside EncryptedData; PKCS#12 PBEs, PBES1, PBES2 with PBKDF2 or
scrypt, PBMAC1) is priced by a strict BER walk before ``cryptography`` sees the file, in every encoding
OpenSSL accepts. Over-budget or unreadable files are refused as not_pkcs12 and never reach
``pkcs12.load_pkcs12`` (spied here); honest files still open in every encoding."""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import RC2
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.serialization import pkcs12

from sii_bot import asn1
from sii_bot.certificates import (
    CERTIFICATE_ERROR_CODES,
    MAX_KDF_ITERATIONS,
    CertificateError,
    open_pkcs12,
)
from sii_bot.certificates.rc2 import PITABLE as _RC2_PITABLE
from sii_bot.certificates.rc2 import cbc_decrypt as _rc2_cbc_decrypt
from sii_sandbox.pki import legacy_pfx
from tests.sii_bot import hostile_pfx as H
from tests.sii_bot.bot_pfx_factory import NOW, CertSpec, make_cert, make_pfx, make_rc2_pfx

PASSWORD = "p"
HOSTILE = 300_000_000  # ~18 s of CPU in OpenSSL for the MAC alone
ENCODINGS = ["der", "indefinite", "long", "indefinite_chunked", "long_chunked"]


def encoded(pfx: bytes, encoding: str) -> bytes:
    style, _, chunked = encoding.partition("_")
    return pfx if style == "der" else H.reencode_outer(pfx, style, chunk=100 if chunked else 0)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the files handed to cryptography's PKCS#12 loader (the only place keys are derived)."""
    calls: list[int] = []
    real = pkcs12.load_pkcs12

    def spy(data: bytes, password: bytes | None, *args: object, **kwargs: object) -> object:
        calls.append(len(data))
        return real(data, password, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pkcs12, "load_pkcs12", spy)
    return calls


def refused_without_work(data: bytes, loads: list[int], password: str = PASSWORD) -> CertificateError:
    """Assert ``data`` is refused as not_pkcs12, fast, without reaching the loader; return the error."""
    started = time.perf_counter()
    with pytest.raises(CertificateError) as refused:
        open_pkcs12(data, password, now=NOW)
    elapsed = time.perf_counter() - started
    assert (refused.value.code, refused.value.message) == ("not_pkcs12", CERTIFICATE_ERROR_CODES["not_pkcs12"])
    assert loads == [], "the file reached cryptography's loader"
    assert elapsed < 0.5, f"refusal took {elapsed:.2f} s"
    return refused.value


@pytest.fixture(scope="module")
def honest() -> bytes:
    return make_pfx(password=PASSWORD)


@pytest.fixture(scope="module")
def parts(honest: bytes) -> H.Pfx:
    return H.split(honest)


def certs_info(parts: H.Pfx) -> bytes:
    """The honest file's EncryptedData ContentInfo (its certificates)."""
    return H.encode(parts.content_infos[0])


# --- The MAC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_mac_asking_for_300_million_rounds_is_refused_in_every_encoding(parts: H.Pfx, loads: list[int],
                                                                         encoding: str) -> None:
    cis = [H.encode(info) for info in parts.content_infos]
    hostile = encoded(H.assemble(cis, PASSWORD, mac_field=HOSTILE), encoding)
    assert refused_without_work(hostile, loads).detail.endswith(f"({HOSTILE} rounds)")


def test_the_same_file_with_an_honest_count_reaches_the_loader(parts: H.Pfx, loads: list[int]) -> None:
    """The control: only the count differs, and then the file is opened (the refusal is the count's)."""
    cis = [H.encode(info) for info in parts.content_infos]
    for encoding in ENCODINGS:
        assert open_pkcs12(encoded(H.assemble(cis, PASSWORD), encoding), PASSWORD, now=NOW).holder_rut == "13322924-8"
    assert len(loads) == len(ENCODINGS)


def test_a_pbmac1_mac_asking_for_300_million_pbkdf2_rounds_is_refused(parts: H.Pfx, loads: list[int]) -> None:
    cis = [H.encode(info) for info in parts.content_infos]
    hostile = H.assemble(cis, PASSWORD, mac_algorithm=H.pbmac1(HOSTILE))
    assert "PBMAC1" in refused_without_work(hostile, loads).detail


# --- Shrouded key bags and EncryptedData, visible or inside an EncryptedData ---------------------------

ALGORITHMS: dict[str, Callable[[int], bytes]] = {
    "pkcs12_3des": H.pkcs12_pbe,
    "pbes1_md5_des": H.pbes1,
    "pbes2_pbkdf2": lambda n: H.pbes2(H.pbkdf2(n)),
}
OVER_BUDGET: dict[str, bytes] = {
    "pkcs12_3des_300M": H.pkcs12_pbe(HOSTILE),
    "pbes1_300M": H.pbes1(HOSTILE),
    "pbkdf2_300M": H.pbes2(H.pbkdf2(HOSTILE)),
    "pbkdf2_just_over": H.pbes2(H.pbkdf2(MAX_KDF_ITERATIONS + 1)),
    "pbkdf2_1GB_key": H.pbes2(H.pbkdf2(2048, key_length=1 << 30)),
    "scrypt_1GB_memory": H.pbes2(H.scrypt(1 << 20, 8, 1)),
    "scrypt_parallel_2e20": H.pbes2(H.scrypt(1 << 10, 8, 1 << 20)),
}


@pytest.mark.parametrize("where", ["data", "data_ber", "inside_encrypted_data"])
@pytest.mark.parametrize("case", list(OVER_BUDGET))
def test_an_over_budget_shrouded_key_bag_is_refused_wherever_it_is(parts: H.Pfx, loads: list[int], case: str,
                                                                    where: str) -> None:
    contents = H.safe_contents(H.shrouded_bag(OVER_BUDGET[case]))
    if where == "inside_encrypted_data":
        # Out of sight until decrypted: OpenSSL decrypts the container, then derives the bag's key.
        info = H.encrypted_content_info(contents, PASSWORD, iterations=2)
    else:
        info = H.data_content_info(H.encode(H.parse_der(contents), "indefinite", chunk=8) if where == "data_ber"
                                   else contents)
    hostile = H.assemble([certs_info(parts), info], PASSWORD)
    assert "work" in refused_without_work(hostile, loads).detail


@pytest.mark.parametrize("case", list(OVER_BUDGET))
def test_an_over_budget_encrypted_data_is_refused(parts: H.Pfx, loads: list[int], case: str) -> None:
    key_contents = H.plain_safe_contents(parts.content_infos[1])
    encrypted = H.encrypted_content_info(key_contents, PASSWORD, algorithm=OVER_BUDGET[case])
    hostile = H.assemble([encrypted, H.encode(parts.content_infos[1])], PASSWORD)
    for encoding in ("der", "indefinite", "long"):
        assert "work" in refused_without_work(encoded(hostile, encoding), loads).detail


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_bags_with_honest_counts_reach_the_loader(parts: H.Pfx, loads: list[int], algorithm: str) -> None:
    """The control of the two tests above: 2,048 rounds pass the walk (the random key then fails to open)."""
    contents = H.safe_contents(H.shrouded_bag(ALGORITHMS[algorithm](2048)))
    for info in (H.data_content_info(contents), H.encrypted_content_info(contents, PASSWORD, iterations=2)):
        with pytest.raises(CertificateError) as refused:
            open_pkcs12(H.assemble([certs_info(parts), info], PASSWORD), PASSWORD, now=NOW)
        assert refused.value.code == "wrong_password"
    assert len(loads) == 2


def test_many_bags_within_the_per_count_cap_exceed_the_total_budget(parts: H.Pfx, loads: list[int]) -> None:
    """Each bag asks for 900,000 PBKDF2 rounds (allowed alone); together they ask for too much."""
    bags = [H.shrouded_bag(H.pbes2(H.pbkdf2(900_000))) for _ in range(8)]
    hostile = H.assemble([certs_info(parts), H.data_content_info(H.safe_contents(*bags))], PASSWORD)
    assert "unreasonable amount of key-derivation work" in refused_without_work(hostile, loads).detail


def test_a_bag_nested_in_safe_contents_bags_is_seen(parts: H.Pfx, loads: list[int]) -> None:
    inner = H.safe_contents(H.shrouded_bag(H.pkcs12_pbe(HOSTILE)))
    for _ in range(5):
        inner = H.safe_contents(H.tlv(0x30, H.tlv(0x06, H.OID_SAFE_CONTENTS_BAG) + H.tlv(0xA0, inner)))
    hostile = H.assemble([certs_info(parts), H.encrypted_content_info(inner, PASSWORD, iterations=2)], PASSWORD)
    assert "work" in refused_without_work(hostile, loads).detail


# --- What the walk cannot read or price is refused -------------------------------------------------------


def test_unreadable_or_unpriceable_structures_are_refused_before_the_loader(honest: bytes, parts: H.Pfx,
                                                                            loads: list[int]) -> None:
    certs = certs_info(parts)
    signed_data = bytes.fromhex("2a864886f70d010702")
    unknown_algorithm = H.tlv(0x30, H.tlv(0x06, bytes.fromhex("2a864886f70d010c01ff")) + b"\x05\x00")
    cases = {
        "signedData authSafe": H.tlv(0x30, H.integer(3) + H.tlv(0x30, H.tlv(0x06, signed_data) + H.tlv(0xA0, b"\x05\x00"))),
        "unknown ContentInfo type": H.assemble([certs, H.tlv(0x30, H.tlv(0x06, signed_data) + H.tlv(0xA0, b"\x05\x00"))],
                                               PASSWORD),
        "unknown PBE": H.assemble([certs, H.data_content_info(H.safe_contents(H.shrouded_bag(unknown_algorithm)))],
                                  PASSWORD),
        "indefinite length on a primitive": honest[:4] + b"\x02\x80\x03\x00\x00" + honest[7:],
        "missing end-of-contents": H.reencode_outer(honest, "indefinite")[:-2],
        "PFX version 2": honest[:6] + b"\x02" + honest[7:],
    }
    for name, data in cases.items():
        assert refused_without_work(data, loads).code == "not_pkcs12", name


def test_a_check_that_cannot_finish_refuses_the_file(honest: bytes, loads: list[int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: whatever breaks inside the walk, the file is not handed to cryptography."""
    def broken(*args: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr("sii_bot.certificates.kdf_budget._pbe_decryptions", broken)
    assert refused_without_work(honest, loads).detail == "structure check failed: RuntimeError"


def test_a_wrong_password_is_refused_before_the_loader_when_certificates_are_encrypted(honest: bytes,
                                                                                       loads: list[int]) -> None:
    with pytest.raises(CertificateError) as refused:
        open_pkcs12(honest, "otra", now=NOW)
    assert refused.value.code == "wrong_password" and loads == []


# --- Honest files open, in every encoding ----------------------------------------------------------------


def _sandbox_legacy() -> bytes:
    key, cert, ca = make_cert(CertSpec())
    return legacy_pfx(key, cert, [ca], PASSWORD, "firma")  # type: ignore[arg-type]


HONEST: dict[str, Callable[[], bytes | None]] = {
    "factory_3des": lambda: make_pfx(password=PASSWORD),
    "factory_aes_pbes2": lambda: make_pfx(password=PASSWORD, legacy=False),
    "factory_rc2_40_openssl": lambda: make_rc2_pfx(password=PASSWORD),
    "sandbox_legacy_pfx": _sandbox_legacy,
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("kind", list(HONEST))
def test_honest_files_open_in_every_encoding(kind: str, encoding: str, loads: list[int]) -> None:
    data = HONEST[kind]()
    if data is None:
        pytest.skip("openssl CLI cannot produce RC2-40 here")
    assert open_pkcs12(encoded(data, encoding), PASSWORD, now=NOW).holder_rut == "13322924-8"
    assert len(loads) == 1


@pytest.mark.parametrize("style", ["indefinite", "long"])
def test_honest_files_open_with_ber_in_every_layer_the_mac_covers(parts: H.Pfx, style: str) -> None:
    """AuthenticatedSafe and SafeContents in BER too (the MAC is recomputed over the new bytes)."""
    key_contents = H.plain_safe_contents(parts.content_infos[1])
    ber_contents = H.encode(H.parse_der(key_contents), style, chunk=32)
    infos = [H.encode(parts.content_infos[0], style, chunk=50), H.encode(H.parse_der(H.data_content_info(ber_contents)),
                                                                         style, chunk=64)]
    data = H.reencode_outer(H.assemble(infos, PASSWORD), style, chunk=100)
    assert open_pkcs12(data, PASSWORD, now=NOW).holder_rut == "13322924-8"


def test_an_honest_key_bag_inside_encrypted_data_opens(parts: H.Pfx) -> None:
    key_contents = H.plain_safe_contents(parts.content_infos[1])
    data = H.assemble([certs_info(parts), H.encrypted_content_info(key_contents, PASSWORD)], PASSWORD)
    assert open_pkcs12(data, PASSWORD, now=NOW).holder_rut == "13322924-8"


# --- The pieces --------------------------------------------------------------------------------------------


def test_rc2_matches_cryptography_for_128_bit_keys() -> None:
    assert sorted(_RC2_PITABLE) == list(range(256))
    key, iv, plain = os.urandom(16), os.urandom(8), os.urandom(64)
    encryptor = Cipher(RC2(key), modes.CBC(iv)).encryptor()
    assert _rc2_cbc_decrypt(key, iv, encryptor.update(plain) + encryptor.finalize()) == plain


def test_the_ber_reader() -> None:
    budget = asn1.Budget()
    # Indefinite SEQUENCE holding a constructed OCTET STRING of two segments and a long-form INTEGER.
    data = b"\x30\x80" + b"\x24\x80\x04\x02ab\x04\x81\x01c\x00\x00" + b"\x02\x84\x00\x00\x00\x01\x05" + b"\x00\x00"
    octets, number = asn1.parse_all(data, budget).sequence(minimum=2, maximum=2)
    assert octets.octets() == b"abc" and number.integer() == 5
    assert asn1.parse_all(b"\x9f\x81\x00\x00", budget).number == 128  # a high tag number
    for bad in (b"\x04\x80ab\x00\x00", b"\x30\x80\x02\x01\x05", b"\x30\x03\x02\x01", b"\x30\x02\x00\x00",
                b"\x02\x89\x01" + b"\x00" * 8, b"\x30\x00\x00", b"\x06\x01\x80", b"\x24\x03\x02\x01\x05"):
        with pytest.raises(asn1.Asn1Error):
            element = asn1.parse_all(bad, asn1.Budget())
            element.octets()
    with pytest.raises(asn1.Asn1Error, match="too deep"):
        asn1.parse_all(b"\x30\x80" * 100 + b"\x00\x00" * 100, asn1.Budget())
    with pytest.raises(asn1.Asn1Error, match="too many"):
        asn1.parse_all(b"\x30\x80" + b"\x05\x00" * 60_000 + b"\x00\x00", asn1.Budget())
