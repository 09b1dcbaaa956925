"""Launching Chromium and creating one browser context per job, with real TLS verification.

How certificates and trust work (measured with Playwright 1.65 and Debian's Chromium 156):

1. The client certificate is not presented by Chromium but by a proxy inside Playwright's Node
   driver, for the origins listed in ``client_certificates``. That proxy verifies the *server's*
   certificate with Node's trust store (Mozilla's roots) plus ``NODE_EXTRA_CA_CERTS``, and refuses
   the connection otherwise ("Playwright client-certificate error: …" page).
2. Any context created with ``client_certificates`` gets ``Security.setIgnoreCertificateErrors``
   from Playwright for *every* origin (the browser has to accept the proxy's self-signed
   certificate). So Chromium's own verification is off in our job contexts whatever flags we pass;
   ``--ignore-certificate-errors-spki-list`` would not matter (and it matches only the server's leaf
   key, not its CA: a CA's SPKI did not help when the server sent leaf + CA).
3. Therefore every origin the flow navigates (enrolment page, login entry/logout host, certificate
   host) is listed in ``client_certificates`` so that all of them go through the verifying proxy;
   the certificate is only *sent* to servers that ask for one in the TLS handshake. Documents and
   scripts from any other origin are blocked by a route (they would not be verified).
4. With ``SII_CA_BUNDLE`` set (the sandbox), ``NODE_EXTRA_CA_CERTS`` must point to it *before*
   ``async_playwright().start()`` spawns the driver: see ``driver_environment``. The bundle must hold
   the CA certificates (root and/or intermediates, PEM) that issued the servers' certificates; server
   leaf certificates are not needed (Node does not accept a leaf as a trust anchor anyway).
   ``ignore_https_errors`` is never used, for the sandbox or production.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .certificates import CertificateMaterial
from .errors import BrowserUnavailable
from .settings import SiiSettings

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Playwright, Route

__all__ = [
    "CHROMIUM_ARGS",
    "launch_browser",
    "driver_environment",
    "verified_origins",
    "new_job_context",
    "origin_of",
]

CHROMIUM_ARGS: tuple[str, ...] = (
    # Containers run as root without user namespaces: Chromium's sandbox cannot start there.
    "--no-sandbox",
    "--disable-gpu",
    # No background traffic to Google: every request the browser makes should be the job's.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # QUIC would bypass Playwright's TCP proxy (and its server verification).
    "--disable-quic",
    "--no-first-run",
    # Docker's default 64 MB /dev/shm makes Chromium crash on larger pages.
    "--disable-dev-shm-usage",
)

_INSTALL_HINT = (
    "Chromium is not available. Install it with `apt-get install -y chromium` (Debian/Ubuntu; then "
    "SII_CHROMIUM_PATH=/usr/bin/chromium or leave it unset) or `playwright install chromium`."
)

# os.environ is process-wide: serialize the brief window in which NODE_EXTRA_CA_CERTS is swapped.
_ENV_LOCK = threading.Lock()
_NODELAY_PRELOAD = str(Path(__file__).with_name("nodelay.cjs"))


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (default ports dropped), as Playwright compares origins."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


def verified_origins(settings: SiiSettings) -> tuple[str, ...]:
    """Every origin the flow may navigate, in the order: certificate hosts, enrolment, login/logout.

    For the real SII, ``https://www.sii.cl`` is added (SII pages may load scripts from it).
    """
    origins: list[str] = list(settings.cert_origins)
    for url in (settings.enroll_url, settings.logout_url):
        origin = origin_of(url)
        if origin not in origins:
            origins.append(origin)
    if settings.is_real_sii and "https://www.sii.cl" not in origins:
        origins.append("https://www.sii.cl")
    return tuple(origins)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def driver_environment(settings: SiiSettings) -> Iterator[None]:
    """Set ``NODE_EXTRA_CA_CERTS`` and ``NODE_OPTIONS`` for the Playwright driver about to be started,
    then restore them.

    Must wrap ``async_playwright().start()``: Node reads the variable once, at process start. When
    the operator already set one, both bundles are concatenated into a temporary file (Node takes a
    single file). Raises ``BrowserUnavailable`` when the configured bundle does not exist.
    """
    bundle = Path(settings.ca_bundle) if settings.ca_bundle else None
    if bundle is not None and not bundle.is_file():
        raise BrowserUnavailable(f"SII_CA_BUNDLE {settings.ca_bundle!r} is not a readable file")
    with _ENV_LOCK:
        saved = {name: os.environ.get(name) for name in ("NODE_EXTRA_CA_CERTS", "NODE_OPTIONS")}
        if bundle is not None:
            previous = saved["NODE_EXTRA_CA_CERTS"]
            path = str(bundle)
            if previous and Path(previous).is_file() and Path(previous).resolve() != bundle.resolve():
                fd, path = tempfile.mkstemp(prefix="sii-bot-ca-", suffix=".pem")
                with os.fdopen(fd, "wb") as out:
                    out.write(Path(previous).read_bytes().rstrip(b"\n") + b"\n" + bundle.read_bytes())
                # Node reads it lazily (at its first TLS connection), so it stays until this process ends.
                atexit.register(_unlink_quietly, path)
            os.environ["NODE_EXTRA_CA_CERTS"] = path
        # Playwright's client-certificate proxy connects to the SII with Nagle's algorithm on: the body
        # of every POST then waits for the server's delayed ACK (40 ms on Linux, more on real links).
        # This preload turns on TCP_NODELAY for the driver's outgoing sockets.
        # A 1 MB young generation (V8's default grows to 16 MB per semi-space): the driver only relays
        # small messages, and this keeps it ~25 MB smaller per slot, no slower (docs/performance.md).
        os.environ["NODE_OPTIONS"] = (
            f"{saved['NODE_OPTIONS'] or ''} --max-semi-space-size=1 --require {_NODELAY_PRELOAD}".strip()
        )
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    # A combined temporary copy (public CA certificates, no secret) is removed when this process exits.


async def launch_browser(playwright: Playwright, settings: SiiSettings) -> Browser:
    """Launch Chromium with ``CHROMIUM_ARGS`` from ``settings.chromium_path`` (or Playwright's own).

    Raises ``BrowserUnavailable`` with installation instructions when no Chromium can start.
    """
    # Loaded on use: the web process imports sii_bot, never Playwright; the browser thread does.
    from playwright.async_api import Error as PlaywrightError

    executable = settings.chromium_path
    if executable and not os.path.exists(executable):
        raise BrowserUnavailable(f"{_INSTALL_HINT} (SII_CHROMIUM_PATH={executable!r} does not exist)")
    kwargs: dict[str, Any] = {"headless": settings.headless, "args": list(CHROMIUM_ARGS), "timeout": 60_000}
    if executable:
        kwargs["executable_path"] = executable
    try:
        return await playwright.chromium.launch(**kwargs)
    except PlaywrightError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrowserUnavailable(f"{_INSTALL_HINT} Launch failed: {first_line}") from None


async def new_job_context(
    browser: Browser,
    settings: SiiSettings,
    certificate: CertificateMaterial,
    *,
    on_blocked: Callable[[str], None] | None = None,
) -> BrowserContext:
    """A fresh context presenting ``certificate`` (leaf + chain) through the verifying proxy.

    Navigations and scripts to origins outside ``verified_origins(settings)`` are aborted (their TLS
    would not be verified); ``on_blocked`` receives each blocked URL (for the job's diagnostics).
    """
    origins = verified_origins(settings)
    cert_pem = certificate.full_chain_pem
    context = await browser.new_context(
        client_certificates=[{"origin": origin, "cert": cert_pem, "key": certificate.key_pem} for origin in origins],
        locale="es-CL",
        timezone_id="America/Santiago",
        accept_downloads=False,
        service_workers="block",
        viewport={"width": 1024, "height": 900},
    )
    allowed = set(origins)

    def outside(url: str) -> bool:
        return url.startswith(("http://", "https://")) and origin_of(url) not in allowed

    async def guard(route: Route) -> None:
        request = route.request
        if request.resource_type in ("document", "script", "xhr", "fetch", "websocket", "eventsource"):
            if on_blocked is not None:
                on_blocked(request.url)
            await route.abort("blockedbyclient")
        else:
            await route.continue_()

    await context.route(outside, guard)
    return context
