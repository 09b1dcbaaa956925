"""RUT helpers for the sandbox, built on ``cl-sii`` (never hand-rolled Módulo 11).

Every function here accepts the forms SII pages and certificates use: ``"13322924-8"``,
``"13.322.924-8"`` and a lower-case ``k``.
"""

from __future__ import annotations

from cl_sii.rut import Rut

# SII's client-side rule: a user RUT body above this is a company, not a natural person.
PERSON_MAX_BODY = 49_999_999


def canonical(value: str) -> str:
    """Return the canonical ``"12345678-9"`` form (upper-case ``K``, no dots).

    Raises ``ValueError`` when the text is not a RUT or its check digit is wrong.
    """
    text = value.strip().replace(".", "").upper()
    if "-" not in text and len(text) >= 2:
        # cl-sii needs the dash; certificates and forms sometimes omit it.
        text = f"{text[:-1]}-{text[-1]}"
    return Rut(text, validate_dv=True).canonical


def try_canonical(value: str | None) -> str | None:
    """Return the canonical RUT, or ``None`` when ``value`` is empty or not a valid RUT."""
    if not value:
        return None
    try:
        return canonical(value)
    except (ValueError, TypeError):
        return None


def split(rut: str) -> tuple[str, str]:
    """Return ``(body, dv)`` of a RUT, e.g. ``("13322924", "8")``."""
    r = Rut(canonical(rut), validate_dv=True)
    return r.digits, r.dv


def join(body: str, dv: str) -> str | None:
    """Return the canonical RUT built from form fields ``body`` and ``dv``, or ``None`` if invalid."""
    return try_canonical(f"{body.strip()}-{dv.strip()}")


def calc_dv(body: str) -> str:
    """Return the Módulo 11 check digit (``"0"``–``"9"`` or ``"K"``) of a RUT body."""
    return Rut.calc_dv(body)


def is_person(rut: str) -> bool:
    """Return True when the RUT belongs to a natural person (body <= 49,999,999), as SII decides."""
    return int(split(rut)[0]) <= PERSON_MAX_BODY


def dotted(rut: str) -> str:
    """Return the RUT with thousands dots, e.g. ``"13.322.924-8"`` (how some SII lists print it)."""
    return Rut(canonical(rut), validate_dv=True).verbose


def company_rut(n: int) -> str:
    """Return the n-th synthetic company RUT (body 78,000,000 + n) with its correct check digit.

    Benchmarks use this to add hundreds of distinct, valid company RUTs.
    """
    body = str(78_000_000 + n)
    return f"{body}-{calc_dv(body)}"


def person_rut(n: int) -> str:
    """Return the n-th synthetic person RUT (body 20,000,000 + n) with its correct check digit."""
    body = str(20_000_000 + n)
    return f"{body}-{calc_dv(body)}"
