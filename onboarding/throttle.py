"""Brute-force and abuse throttling, counted in the shared cache.

Logins: failures are counted per account and per client address; past the limit, attempts are
refused until the window ends (even with the right password, so guessing gains nothing). The staff
and client login and the platform admin's login share these counters: one budget per account.

Password resets: requests are counted per client address (the limit that stops a flood) and per
e-mail only briefly (a few in a short window, so a flood spread over many addresses still cannot
fill an inbox). A refused request is told so, with the wait: a third party flooding someone's e-mail
holds that person's reset back for the short window at most, and never silently.

The client address is `onboarding.client_address.client_address` (the trusted proxy's
X-Forwarded-For entry behind a proxy); IPv6 clients are counted per /64, the block one subscriber
gets, or one machine could change address at every attempt.

Each counter's window starts at its first count and its deadline is stored beside it; the count
lives under a key named after that deadline and its expiry is set to the deadline after every
increment. Django's file and database caches implement incr() as a set() with the default timeout,
which would otherwise end a lock early or prolong it for as long as the flood goes on.
"""
from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from onboarding.client_address import client_address


@dataclass(frozen=True)
class _Counter:
    key: str  # contains "-fail:" so tests/conftest.py can clear every throttle key and nothing else
    limit: int
    window_seconds: int

    @property
    def deadline_key(self) -> str:
        return f"{self.key}:until"

    def count_key(self, deadline: float) -> str:
        return f"{self.key}@{int(deadline * 1000)}"


def _account(value: str) -> str:
    # Hashed so the cache never holds e-mail addresses in clear.
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def _address(request: HttpRequest) -> str:
    address = client_address(request)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


def _wait_seconds(counters: list[_Counter]) -> int:
    """Seconds until every counter that reached its limit reopens; 0 when none has."""
    now = time.time()
    deadlines = cache.get_many([counter.deadline_key for counter in counters])
    live = [(c, deadlines[c.deadline_key]) for c in counters if deadlines.get(c.deadline_key, 0) > now]
    if not live:
        return 0
    counts = cache.get_many([counter.count_key(deadline) for counter, deadline in live])
    waits = [deadline - now for counter, deadline in live if counts.get(counter.count_key(deadline), 0) >= counter.limit]
    return math.ceil(max(waits)) if waits else 0


def _count(counter: _Counter) -> tuple[int, float]:
    """Count one event in the counter's current window (starting one if there is none): the count so
    far, this one included, and the window's deadline (a time.time() value)."""
    now = time.time()
    deadline = cache.get(counter.deadline_key)
    if deadline is None or deadline <= now:
        deadline = now + counter.window_seconds
        if not cache.add(counter.deadline_key, deadline, timeout=counter.window_seconds):
            deadline = cache.get(counter.deadline_key, deadline)  # another process started it first
    key = counter.count_key(deadline)
    remaining = max(1, math.ceil(deadline - now))
    if cache.add(key, 1, timeout=remaining):
        return 1, deadline
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, timeout=remaining)
        return 1, deadline
    cache.touch(key, timeout=remaining)
    return count, deadline


# --- Logins ---------------------------------------------------------------------------------------


def _login_counters(request: HttpRequest, username: str) -> list[_Counter]:
    limit, window = settings.AUTORIZA_LOGIN_MAX_FAILURES, settings.AUTORIZA_LOGIN_WINDOW_SECONDS
    return [
        _Counter(f"login-fail:account:{_account(username)}", limit, window),
        _Counter(f"login-fail:address:{_address(request)}", limit, window),
    ]


def login_locked_seconds(*, request: HttpRequest, username: str) -> int:
    """Seconds left in the lock of the account or the client address (the longer one); 0 when neither
    has reached AUTORIZA_LOGIN_MAX_FAILURES in its current window."""
    return _wait_seconds(_login_counters(request, username))


def login_failure_record(*, request: HttpRequest, username: str) -> None:
    """Count one failed attempt for the account and the client address."""
    for counter in _login_counters(request, username):
        _count(counter)


def login_success_record(*, request: HttpRequest, username: str) -> None:
    """Forget the account's failures after a successful login (the address keeps its count)."""
    cache.delete(_login_counters(request, username)[0].deadline_key)


def minutes_text(seconds: int) -> str:
    """A wait in whole minutes, rounded up, in Spanish: "1 minuto", "12 minutos"."""
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minuto" if minutes == 1 else f"{minutes} minutos"


# --- Password resets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResetRefusal:
    """Why a reset request was refused (`address`: this connection asked too often; `email`: this
    e-mail got several resets moments ago) and how long until it may be asked again."""

    reason: Literal["address", "email"]
    wait_seconds: int

    @property
    def message(self) -> str:
        """What the person who asked reads, in place of the "we sent you an e-mail" page."""
        wait = minutes_text(self.wait_seconds)
        if self.reason == "address":
            return f"Se han pedido demasiados restablecimientos desde esta conexión. Intente de nuevo en {wait}."
        return (
            "Se pidieron varios restablecimientos para este correo hace muy poco. Revise su correo "
            f"(también la carpeta de correo no deseado) o intente de nuevo en {wait}."
        )


def reset_request_admit(*, request: HttpRequest, email: str) -> ResetRefusal | None:
    """Count a reset request and say whether to send the e-mail: None to go ahead, else the refusal.

    Every request counts against the client address; only those the address limit lets through count
    against the e-mail, whose short window is then the longest a flood can hold anyone else's reset
    back. Known and unknown e-mails are counted alike: the answer never tells whether an account exists.
    """
    by_address = _Counter(
        f"reset-fail:address:{_address(request)}",
        settings.AUTORIZA_RESET_MAX_PER_ADDRESS,
        settings.AUTORIZA_RESET_ADDRESS_WINDOW_SECONDS,
    )
    by_email = _Counter(
        f"reset-fail:account:{_account(email)}",
        settings.AUTORIZA_RESET_MAX_PER_EMAIL,
        settings.AUTORIZA_RESET_EMAIL_WINDOW_SECONDS,
    )
    # Counted first and judged on the count incr() returns, so concurrent requests cannot all slip
    # under the limit (incr() is atomic on Redis).
    checks: tuple[tuple[Literal["address", "email"], _Counter], ...] = (("address", by_address), ("email", by_email))
    for reason, counter in checks:
        count, deadline = _count(counter)
        if count > counter.limit:
            return ResetRefusal(reason, max(1, math.ceil(deadline - time.time())))
    return None
