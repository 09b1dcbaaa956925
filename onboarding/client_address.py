"""The address of the client behind a request: the one place that reads REMOTE_ADDR and
X-Forwarded-For. Everything that throttles, logs or records a client's address uses it."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's IP address, normalized (e.g. "203.0.113.7", "2001:db8::1"); "unknown" if none.

    Behind N trusted proxies (settings.AUTORIZA_TRUSTED_PROXY_COUNT, from DJANGO_TRUSTED_PROXY_COUNT),
    each proxy appends the address of its peer to X-Forwarded-For, so the Nth entry from the right is
    the client as the outermost trusted proxy saw it. Entries further left are whatever the client
    sent and are never used: trusting them would let anyone pick the address their attempts count
    against. With no trusted proxies, or a header with fewer entries than proxies (a request that did
    not pass through them all), or an entry that is not an address, REMOTE_ADDR is the answer.
    """
    proxies: int = settings.AUTORIZA_TRUSTED_PROXY_COUNT
    if proxies > 0:
        header = request.META.get("HTTP_X_FORWARDED_FOR", "")
        # Repeated headers reach Django joined with commas, in order: still one list.
        entries = header.split(",") if header.strip() else []
        if len(entries) >= proxies:
            forwarded = _normalized(entries[-proxies])
            if forwarded is not None:
                return forwarded
    return _normalized(request.META.get("REMOTE_ADDR", "")) or "unknown"


def _normalized(value: str) -> str | None:
    """The address in `value` (an IP, "1.2.3.4:port" or "[v6]:port"), in canonical form; None if none."""
    value = value.strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two colons
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
