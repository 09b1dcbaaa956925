"""Login brute-force throttling: failures are counted per account and per client address in the
shared cache; past the limit, attempts are refused until the window ends (even with the right
password, so guessing gains nothing)."""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def _keys(request: HttpRequest, username: str, scope: str = "login") -> list[str]:
    # Hashed so the cache never holds e-mail addresses in clear.
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    address = request.META.get("REMOTE_ADDR", "unknown")
    return [f"{scope}-fail:account:{account}", f"{scope}-fail:address:{address}"]


def login_is_locked(*, request: HttpRequest, username: str, scope: str = "login") -> bool:
    """True when the account or the address has reached the limit in the current window.

    `scope` keeps separate counters per kind of attempt ("login", "reset").
    """
    counts = cache.get_many(_keys(request, username, scope))
    return any(count >= settings.AUTORIZA_LOGIN_MAX_FAILURES for count in counts.values())


def login_failure_record(*, request: HttpRequest, username: str, scope: str = "login") -> None:
    """Count one attempt for the account and the address (the window starts at the first)."""
    for key in _keys(request, username, scope):
        if cache.add(key, 1, timeout=settings.AUTORIZA_LOGIN_WINDOW_SECONDS):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, timeout=settings.AUTORIZA_LOGIN_WINDOW_SECONDS)


def login_success_record(*, request: HttpRequest, username: str) -> None:
    """Forget the account's failures after a successful login (the address keeps its count)."""
    cache.delete(_keys(request, username)[0])
