"""The client's address: REMOTE_ADDR without a proxy; behind N trusted proxies the entry the outermost
one appended to X-Forwarded-For (the Nth from the right), never an entry the client wrote."""
from __future__ import annotations

import pytest
from django.test import RequestFactory

from onboarding.client_address import client_address


def address(proxies: int, settings, forwarded_for: str | None, remote: str = "10.0.0.254") -> str:  # type: ignore[no-untyped-def]
    settings.AUTORIZA_TRUSTED_PROXY_COUNT = proxies
    extra = {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


@pytest.mark.parametrize(
    "proxies, forwarded_for, expected",
    [
        (0, "203.0.113.7", "10.0.0.254"),  # not behind a proxy: the header is anyone's word
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "198.51.100.9, 192.0.2.1,203.0.113.7", "203.0.113.7"),  # the leftmost entries are the client's
        (2, "198.51.100.9, 203.0.113.7, 10.0.0.253", "203.0.113.7"),  # the outer proxy appended the client
        (2, "203.0.113.7", "10.0.0.254"),  # fewer entries than proxies: did not come through them all
        (1, None, "10.0.0.254"),
        (1, "", "10.0.0.254"),
        (1, "198.51.100.9, not-an-address", "10.0.0.254"),
        (1, "203.0.113.7:51234", "203.0.113.7"),
        (1, "[2001:DB8::1]:443", "2001:db8::1"),
        (1, "::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_client_address(settings, proxies: int, forwarded_for: str | None, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert address(proxies, settings, forwarded_for) == expected


def test_no_usable_address_at_all_is_unknown(settings) -> None:  # type: ignore[no-untyped-def]
    assert address(1, settings, None, remote="") == "unknown"
