"""Tests for sii_bot.rut."""

from __future__ import annotations

import pytest
from cl_sii.rut import Rut
from hypothesis import given
from hypothesis import strategies as st

from sii_bot.rut import InvalidRut, display_rut, is_person_rut, normalize_rut, split_rut

VECTORS = ["96874030-K", "76086428-5", "60803000-K", "12531909-2", "77879240-0", "76369187-K", "11111111-1",
           "7880442-4"]


@pytest.mark.parametrize("rut", VECTORS)
def test_reference_vectors(rut: str) -> None:
    assert normalize_rut(rut) == rut
    assert normalize_rut(rut.lower()) == rut
    assert normalize_rut(rut.replace("-", "")) == rut
    body, dv = rut.split("-")
    dotted = f"{int(body):,}".replace(",", ".") + "-" + dv
    assert normalize_rut(dotted) == rut
    assert normalize_rut(f"  {dotted.lower()} ") == rut
    assert split_rut(dotted) == (body, dv)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13.322.924-8", "13322924-8"),
        ("13 322 924 - 8", "13322924-8"),
        ("133229248", "13322924-8"),
        ("0013322924-8", "13322924-8"),
        ("13322924\u20138", "13322924-8"),  # en dash from a word processor
        ("96874030k", "96874030-K"),
    ],
)
def test_lenient_inputs(text: str, expected: str) -> None:
    assert normalize_rut(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "8", "13322924-9", "-8", "13322924-", "abc", "1-2-3", "0-0",
                                  "123456789-0", "13322924-X", "\u0661\u0663-8", "13,322,924-8"])
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidRut) as info:
        normalize_rut(text)
    assert isinstance(info.value, ValueError)
    assert "RUT" in str(info.value)  # Spanish message for the user


def test_non_string() -> None:
    with pytest.raises(InvalidRut):
        normalize_rut(13322924)  # type: ignore[arg-type]


def test_is_person_rut() -> None:
    assert is_person_rut("13322924-8")
    assert is_person_rut("7880442-4")
    assert not is_person_rut("76086428-5")
    assert not is_person_rut("96874030-K")
    assert is_person_rut(f"49999999-{Rut.calc_dv('49999999')}")
    assert not is_person_rut(f"50000000-{Rut.calc_dv('50000000')}")
    with pytest.raises(InvalidRut):
        is_person_rut("13322924-9")


@given(st.integers(min_value=1, max_value=99_999_999))
def test_round_trip_any_valid_body(body: int) -> None:
    dv = Rut.calc_dv(str(body))
    canonical = f"{body}-{dv}"
    assert normalize_rut(canonical) == canonical
    assert normalize_rut(f"{body:,}".replace(",", ".") + dv.lower()) == canonical
    assert split_rut(canonical) == (str(body), dv)
    assert is_person_rut(canonical) == (body < 50_000_000)


@given(st.integers(min_value=1, max_value=99_999_999), st.sampled_from("0123456789K"))
def test_wrong_dv_rejected(body: int, dv: str) -> None:
    if Rut.calc_dv(str(body)) == dv:
        assert normalize_rut(f"{body}-{dv}") == f"{body}-{dv}"
    else:
        with pytest.raises(InvalidRut):
            normalize_rut(f"{body}-{dv}")


@given(st.text(max_size=30))
def test_random_text_only_raises_invalid_rut(text: str) -> None:
    try:
        result = normalize_rut(text)
    except InvalidRut:
        return
    assert normalize_rut(result) == result  # idempotent
    assert Rut(result, validate_dv=True).canonical == result


@given(st.text(alphabet="0123456789kK.- ", max_size=14))
def test_rut_like_text_is_idempotent(text: str) -> None:
    try:
        result = normalize_rut(text)
    except InvalidRut:
        return
    assert normalize_rut(result) == result


@pytest.mark.parametrize(
    ("text", "shown"),
    [("76086428-5", "76.086.428-5"), ("7880442-4", "7.880.442-4"), ("15000005-k", "15.000.005-K"),
     ("1-9", "1-9"), ("no es rut", "no es rut")],
)
def test_display_rut_adds_dots_for_messages_people_read(text: str, shown: str) -> None:
    assert display_rut(text) == shown
