"""Property-based fuzzing of RUT handling at every layer that sees one: the bot's normalizer, the
form field, the model validator, the sandbox's own parser (differential), and the display format.

tests/sii_bot/test_bot_rut.py covers round trips of valid bodies and that random text raises only
InvalidRut; this adds an independent Módulo 11, non-ASCII digits, and agreement between layers."""
from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from onboarding.domain.display import rut_display
from onboarding.forms.client import RutField, SignupForm
from onboarding.models import validate_rut
from sii_bot.rut import InvalidRut, normalize_rut
from sii_sandbox.rut import canonical as sandbox_canonical

CANONICAL = re.compile(r"^[1-9][0-9]{0,7}-[0-9K]$")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_digit(body: int) -> str:
    """Módulo 11, written here independently of cl-sii and of sii_bot."""
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(str(body))))
    return {11: "0", 10: "K"}.get(11 - total % 11, str(11 - total % 11))


rut_like = st.text(alphabet=st.sampled_from(list("0123456789kK.-– \u00a0\u200b\u202e\u2212٣７𝟳")), max_size=16)
bodies = st.integers(min_value=1, max_value=99_999_999)


@FUZZ
@given(st.one_of(st.text(max_size=40), rut_like))
@example("７６０８６４２８－５")
@example("76086428-5\u200b")
def test_normalize_returns_a_check_digit_valid_canonical_rut_or_raises_invalid_rut(text: str) -> None:
    try:
        rut = normalize_rut(text)
    except InvalidRut as exc:
        assert exc.message and isinstance(exc.message, str)
        return
    assert CANONICAL.match(rut), rut
    body, dv = rut.split("-")
    assert check_digit(int(body)) == dv
    assert normalize_rut(rut) == rut  # idempotent
    # Only ASCII digits can make a RUT (Python's int() would read Arabic-Indic or fullwidth ones).
    assert all(c.isascii() for c in text if c.isdigit())


@FUZZ
@given(bodies, st.sampled_from(["{b}-{d}", "{dotted}-{d}", "{b}{d}", " {dotted}-{dl} ", "00{b}-{d}", "{b}–{d}"]))
def test_every_layer_agrees_on_valid_ruts(body: int, shape: str) -> None:
    dv = check_digit(body)
    typed = shape.format(b=body, d=dv, dl=dv.lower(), dotted=f"{body:,}".replace(",", "."))
    expected = f"{body}-{dv}"
    assert normalize_rut(typed) == expected
    assert RutField().clean(typed) == expected
    validate_rut(expected)  # the model accepts the canonical form…
    assert sandbox_canonical(expected) == expected  # …the SII stand-in reads it the same way…
    assert normalize_rut(rut_display(expected)) == expected  # …and what we display reads back.


@FUZZ
@given(bodies, st.sampled_from(list("0123456789K")))
def test_a_wrong_check_digit_is_refused_by_every_layer(body: int, dv: str) -> None:
    if dv == check_digit(body):
        return
    rut = f"{body}-{dv}"
    with pytest.raises(InvalidRut):
        normalize_rut(rut)
    with pytest.raises(ValidationError):
        RutField().clean(rut)
    with pytest.raises(ValidationError):
        validate_rut(rut)


non_ascii_digit = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())


@FUZZ
@given(st.tuples(st.text(alphabet="0123456789.-k ", max_size=10), non_ascii_digit,
                 st.text(alphabet="0123456789.-k ", max_size=10)).map("".join))
@example("７６０８６４２８－５")
def test_non_ascii_digits_never_make_a_rut(text: str) -> None:
    with pytest.raises(InvalidRut):
        normalize_rut(text)


@FUZZ
@given(st.text(max_size=30))
def test_the_model_validator_accepts_only_the_canonical_spelling(text: str) -> None:
    try:
        validate_rut(text)
    except ValidationError:
        return
    assert CANONICAL.match(text) and normalize_rut(text) == text


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["email", "password", "company_rut", "legal_name", "owner_name", "junk"]),
                       st.text(max_size=300)))
def test_the_signup_form_never_raises_on_any_input(data: dict[str, str]) -> None:
    form = SignupForm(data)
    if form.is_valid():
        assert CANONICAL.match(form.cleaned_data["company_rut"])
        assert "\x00" not in "".join(str(v) for v in form.cleaned_data.values())
