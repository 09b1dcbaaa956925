"""Login brute force is throttled per account and per client address; the right password does not
get through a lock; a success clears the account's count. Behind a proxy the client address is the
proxy's own X-Forwarded-For entry, never one the client wrote. The platform admin's login
(/plataforma/) is throttled the same way, on the same counters."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse

from tests.fixtures.clock import shifted_clock

PROXY = "10.0.0.254"  # the TLS proxy: every request behind it arrives from this REMOTE_ADDR
LOCKED = "Demasiados intentos fallidos"


@pytest.fixture(autouse=True)
def _fresh_cache(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}}
    settings.AUTORIZA_LOGIN_MAX_FAILURES = 3
    cache.clear()


def attempt(client, username: str, password: str, address: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def attempt_via_proxy(client, username: str, password: str, forwarded_for: str):  # type: ignore[no-untyped-def]
    """A login through the proxy: `forwarded_for` is the X-Forwarded-For it passes on (whatever the
    client sent, then the address the proxy saw, appended)."""
    return client.post(reverse("login"), {"username": username, "password": password},
                       REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)


def admin_attempt(client, username: str, password: str, address: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    return client.post("/plataforma/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def platform_admin(db):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("root@autoriza.cl", "root@autoriza.cl", "clave-de-plataforma-123")


def test_repeated_failures_lock_the_account_even_for_the_right_password(client, cast) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        response = attempt(client, "staff@a.cl", "wrong")
        assert response.status_code == 200
    locked = attempt(client, "staff@a.cl", cast.password, address="10.9.9.9")  # another address, same account
    assert locked.status_code == 429
    assert "Demasiados intentos fallidos" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_one_address_cannot_spray_many_accounts(client, cast) -> None:  # type: ignore[no-untyped-def]
    for name in ("a@x.cl", "b@x.cl", "c@x.cl"):
        attempt(client, name, "wrong", address="10.0.0.7")
    assert attempt(client, "staff@a.cl", cast.password, address="10.0.0.7").status_code == 429
    assert attempt(client, "staff@a.cl", cast.password, address="10.0.0.8").status_code == 302


def test_success_clears_the_accounts_failures(client, cast) -> None:  # type: ignore[no-untyped-def]
    attempt(client, "staff@a.cl", "wrong", address="10.0.0.2")
    attempt(client, "staff@a.cl", "wrong", address="10.0.0.3")
    assert attempt(client, "staff@a.cl", cast.password, address="10.0.0.4").status_code == 302
    client.logout()
    attempt(client, "staff@a.cl", "wrong", address="10.0.0.5")
    attempt(client, "staff@a.cl", "wrong", address="10.0.0.6")
    assert attempt(client, "staff@a.cl", cast.password, address="10.0.0.1").status_code == 302


def test_a_lock_lasts_its_whole_window_from_the_first_failure_and_then_ends(client, cast, settings, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The embedded default cache (files), whose incr() rewrites a key's expiry to the default 300 s.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": str(tmp_path / "cache")}}
    settings.AUTORIZA_LOGIN_WINDOW_SECONDS = 900
    clock = shifted_clock(monkeypatch)
    for _ in range(3):
        attempt(client, "staff@a.cl", "wrong")
        clock.advance(10)
    clock.advance(400)  # 430 s after the first failure
    assert attempt(client, "staff@a.cl", cast.password, address="10.0.0.9").status_code == 429
    clock.advance(471)  # 901 s after the first failure
    assert attempt(client, "staff@a.cl", cast.password, address="10.0.0.9").status_code == 302


def test_ipv6_clients_are_counted_per_64_block(client, cast) -> None:  # type: ignore[no-untyped-def]
    # One subscriber's /64 holds 2^64 addresses: counting each alone would let one machine rotate freely.
    for index, name in enumerate(("a@x.cl", "b@x.cl", "c@x.cl")):
        attempt(client, name, "wrong", address=f"2001:db8:1:2::{index + 1}")
    assert attempt(client, "staff@a.cl", cast.password, address="2001:db8:1:2:ffff::9").status_code == 429
    assert attempt(client, "staff@a.cl", cast.password, address="2001:db8:1:3::1").status_code == 302


# --- Behind the TLS proxy (DJANGO_BEHIND_PROXY=1: one trusted proxy) -----------------------------


def test_behind_a_proxy_one_clients_failures_do_not_lock_another(client, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_TRUSTED_PROXY_COUNT = 1
    for name in ("a@x.cl", "b@x.cl", "c@x.cl"):
        assert attempt_via_proxy(client, name, "wrong", forwarded_for="203.0.113.7").status_code == 200
    locked = attempt_via_proxy(client, "staff@a.cl", cast.password, forwarded_for="203.0.113.7")
    assert locked.status_code == 429 and LOCKED in locked.content.decode()
    assert attempt_via_proxy(client, "staff@a.cl", cast.password, forwarded_for="198.51.100.9").status_code == 302


def test_spoofed_leftmost_entries_neither_escape_the_lock_nor_frame_another_address(client, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_TRUSTED_PROXY_COUNT = 1
    # The attacker (203.0.113.7) writes its own X-Forwarded-For; the proxy appends what it saw.
    for index, name in enumerate(("a@x.cl", "b@x.cl", "c@x.cl")):
        spoofed = f"198.51.100.9, 192.0.2.{index + 1}, 203.0.113.7"
        assert attempt_via_proxy(client, name, "wrong", forwarded_for=spoofed).status_code == 200
    escape = attempt_via_proxy(client, "staff@a.cl", cast.password, forwarded_for="192.0.2.200, 203.0.113.7")
    assert escape.status_code == 429 and "_auth_user_id" not in client.session
    # The address the attacker named in every failure is not locked.
    assert attempt_via_proxy(client, "staff@a.cl", cast.password, forwarded_for="198.51.100.9").status_code == 302


def test_without_a_proxy_x_forwarded_for_is_ignored(client, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_TRUSTED_PROXY_COUNT = 0
    for index, name in enumerate(("a@x.cl", "b@x.cl", "c@x.cl")):
        client.post(reverse("login"), {"username": name, "password": "wrong"},
                    REMOTE_ADDR="10.0.0.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{index + 1}")
    locked = client.post(reverse("login"), {"username": "staff@a.cl", "password": cast.password},
                         REMOTE_ADDR="10.0.0.7", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert locked.status_code == 429


# --- The platform admin's login (/plataforma/) ----------------------------------------------------


def test_platform_login_locks_the_account_even_for_the_right_password(client, platform_admin) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        failed = admin_attempt(client, "root@autoriza.cl", "wrong")
        assert failed.status_code == 200 and LOCKED not in failed.content.decode()
    locked = admin_attempt(client, "root@autoriza.cl", "clave-de-plataforma-123", address="10.9.9.9")
    assert locked.status_code == 200
    assert "Demasiados intentos fallidos. Por seguridad, espere 15 minutos antes de volver a intentarlo." in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_platform_login_locks_an_address_that_sprays_accounts(client, platform_admin) -> None:  # type: ignore[no-untyped-def]
    for name in ("a@x.cl", "b@x.cl", "c@x.cl"):
        admin_attempt(client, name, "wrong", address="10.0.0.7")
    locked = admin_attempt(client, "root@autoriza.cl", "clave-de-plataforma-123", address="10.0.0.7")
    assert LOCKED in locked.content.decode() and "_auth_user_id" not in client.session
    assert admin_attempt(client, "root@autoriza.cl", "clave-de-plataforma-123", address="10.0.0.8").status_code == 302
    assert client.session["_auth_user_id"] == str(platform_admin.pk)


def test_the_platform_and_the_staff_login_share_one_budget_per_account(client, platform_admin) -> None:  # type: ignore[no-untyped-def]
    attempt(client, "root@autoriza.cl", "wrong", address="10.0.0.1")
    attempt(client, "root@autoriza.cl", "wrong", address="10.0.0.2")
    admin_attempt(client, "root@autoriza.cl", "wrong", address="10.0.0.3")
    assert LOCKED in admin_attempt(client, "root@autoriza.cl", "clave-de-plataforma-123", address="10.0.0.4").content.decode()
    assert attempt(client, "root@autoriza.cl", "clave-de-plataforma-123", address="10.0.0.5").status_code == 429


def test_the_lock_message_names_the_configured_wait(client, cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_LOGIN_WINDOW_SECONDS = 120
    for _ in range(3):
        attempt(client, "staff@a.cl", "wrong")
    locked = attempt(client, "staff@a.cl", cast.password)
    assert locked.status_code == 429
    assert "Por seguridad, espere 2 minutos antes de volver a intentarlo." in locked.content.decode()
