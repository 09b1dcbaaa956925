"""TLS behaviour of the three origins: who must present a certificate, and how failures look."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from sii_sandbox.server import Sandbox


def _handshake(sb: Sandbox, origin: str, cert: str | None) -> ssl.SSLSocket:
    """Open a TLS connection to an origin (verifying its server certificate); return the socket."""
    ctx = ssl.create_default_context(cafile=str(sb.pki.ca_bundle))
    if cert is not None:
        ctx.load_cert_chain(str(sb.pki[cert].cert_pem), str(sb.pki[cert].key_pem))
    url = urllib.parse.urlsplit(sb.origins[origin])
    raw = socket.create_connection((url.hostname, url.port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=url.hostname)


def _handshake_error(sb: Sandbox, cert: str | None) -> str:
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as info:
        s = _handshake(sb, "hercules", cert)
        # TLS 1.3 would only report the rejection here; the sandbox caps hercules at 1.2.
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(10)
    return str(info.value).lower()


def test_hercules_without_client_certificate_fails_handshake(sandbox: Sandbox) -> None:
    msg = _handshake_error(sandbox, None)
    assert "handshake failure" in msg or "certificate required" in msg


def test_hercules_with_unknown_ca_fails_handshake(sandbox: Sandbox) -> None:
    assert "unknown ca" in _handshake_error(sandbox, "unknown_ca")


@pytest.mark.parametrize("cert,reason", [("expired", "certificate expired"), ("not_yet_valid", "")])
def test_hercules_rejects_certificates_out_of_validity(sandbox: Sandbox, cert: str, reason: str) -> None:
    assert reason in _handshake_error(sandbox, cert)


def test_hercules_accepts_the_demo_certificate(sandbox: Sandbox) -> None:
    with _handshake(sandbox, "hercules", "demo") as s:
        assert s.version() == "TLSv1.2"
        peer = s.getpeercert()
        assert peer and peer["subject"]  # the server certificate verified against SII_CA_BUNDLE


@pytest.mark.parametrize("origin", ["zeus", "palena"])
def test_other_origins_need_no_client_certificate(sandbox: Sandbox, origin: str) -> None:
    url = sandbox.origins[origin] + ("/portal/" if origin == "zeus" else "/cvc_cgi/dte/eu_enrola_usuarios")
    r = httpx.get(url, verify=ssl.create_default_context(cafile=str(sandbox.pki.ca_bundle)))
    assert r.status_code in (200, 302)


def test_each_origin_has_its_own_server_certificate(sandbox: Sandbox) -> None:
    seen = set()
    for origin in ("zeus", "hercules", "palena"):
        with _handshake(sandbox, origin, "demo") as s:
            seen.add(s.getpeercert(binary_form=True))
    assert len(seen) == 3


def test_require_client_chain_switch(sandbox: Sandbox, tmp_path: Path) -> None:
    # Leaf only (no intermediate): accepted by default, refused when the chain is required.
    leaf_only = tmp_path / "leaf.pem"
    chain_pem = sandbox.pki["demo"].cert_pem
    assert chain_pem is not None
    leaf_only.write_bytes(chain_pem.read_bytes().split(b"-----END CERTIFICATE-----")[0]
                          + b"-----END CERTIFICATE-----\n")

    def connect() -> None:
        # Trust only the root: with the intermediate in its store OpenSSL would send it anyway.
        ctx = ssl.create_default_context(cafile=str(sandbox.pki.root_ca))
        ctx.load_cert_chain(str(leaf_only), str(sandbox.pki["demo"].key_pem))
        url = urllib.parse.urlsplit(sandbox.origins["hercules"])
        with ctx.wrap_socket(socket.create_connection((url.hostname, url.port), timeout=5),
                             server_hostname=url.hostname) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(20).startswith(b"HTTP/1.1")

    connect()
    sandbox.configure(require_client_chain=True)
    with pytest.raises(ssl.SSLError):
        connect()
    # The full chain (leaf + intermediate, as in the .pfx) still works.
    with _handshake(sandbox, "hercules", "demo"):
        pass


def test_keep_alive_is_fast(sandbox: Sandbox) -> None:
    """HTTP/1.1 keep-alive with Content-Length and TCP_NODELAY: many small answers per connection."""
    ctx = ssl.create_default_context(cafile=str(sandbox.pki.ca_bundle))
    with httpx.Client(verify=ctx) as client:
        url = sandbox.origins["zeus"] + "/portal/"
        client.get(url)
        start = time.perf_counter()
        for _ in range(30):
            r = client.get(url)
            assert r.headers["content-length"] == str(len(r.content))
        elapsed = time.perf_counter() - start
    # Delayed-ACK stalls would cost ~40 ms each (1.2 s); allow generous slack for a loaded CI box.
    assert elapsed < 0.6, elapsed


def test_slow_handshake_does_not_block_others(sandbox: Sandbox) -> None:
    """A client that connects and says nothing must not stop other clients (handshake per thread)."""
    url = urllib.parse.urlsplit(sandbox.origins["palena"])
    idle = socket.create_connection((url.hostname, url.port))
    try:
        ctx = ssl.create_default_context(cafile=str(sandbox.pki.ca_bundle))
        r = httpx.get(sandbox.origins["palena"] + "/cvc_cgi/dte/eu_enrola_usuarios", verify=ctx, timeout=3)
        assert r.status_code == 302
    finally:
        idle.close()
