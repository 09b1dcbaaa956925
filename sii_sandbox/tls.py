"""TLS for the three HTTPS origins: server contexts, mTLS on the herculesr-like origin, and the
HTTPS server whose handshake runs in the connection's own thread.

The herculesr-like origin requires a client certificate (``CERT_REQUIRED``) and is capped at
TLS 1.2, so a missing or untrusted certificate fails *the handshake* itself, as SII's older
AUT2000 hosts do (with TLS 1.3 the client would only learn it on its first read).
"""

from __future__ import annotations

import ssl
from typing import Any

from .handlers import QuietServer
from .pki import Pki


class TLSServer(QuietServer):
    """HTTPS server whose TLS handshake runs in the connection's own thread.

    The accept loop never handshakes, so a slow or broken client cannot block other connections.
    """

    ssl_context: ssl.SSLContext
    handshake_timeout = 15.0

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.handshake_timeout)
        self.track(request, True)  # so stop() can cut a client stuck in the handshake
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            if self.runtime.verbose:
                print(f"[{self.origin}] TLS handshake failed from {client_address}: {e}", flush=True)
            return
        finally:
            self.track(request, False)
        self.track(tls, True)
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            self.track(tls, False)
            try:
                tls.close()
            except OSError:
                pass


def server_context(pki: Pki, name: str) -> ssl.SSLContext:
    """Server-side context presenting the PKI's server certificate ``name``; no client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.servers[name].cert), str(pki.servers[name].key))
    return ctx


def hercules_context(pki: Pki, require_chain: bool) -> ssl.SSLContext:
    """The herculesr-like origin's context: client certificate required, TLS 1.2 at most."""
    ctx = server_context(pki, "hercules")
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Trusting the intermediate too accepts clients that send only their leaf; require_client_chain
    # trusts only the root, so the client must send the intermediate like some real CAs need.
    ctx.load_verify_locations(str(pki.root_ca if require_chain else pki.ca_bundle))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx
