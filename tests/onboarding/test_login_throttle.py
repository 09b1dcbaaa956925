"""Login brute force is throttled per account and per address; the right password does not get
through a lock; a success clears the account's count."""
from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse


@pytest.fixture(autouse=True)
def _fresh_cache(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}}
    settings.AUTORIZA_LOGIN_MAX_FAILURES = 3
    cache.clear()


def attempt(client, username: str, password: str, address: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


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
