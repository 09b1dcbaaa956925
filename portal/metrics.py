"""The Prometheus endpoint (`/metrics`) and the web request latency middleware.

What is exported:
- job figures, read from the database at scrape time (onboarding.metrics.JobsCollector): the same
  platform-wide numbers from whichever web process answers;
- `autoriza_http_request_duration_seconds`, a histogram of this web server's requests by route name,
  method and status class. It lives in process memory: with several gunicorn workers set
  PROMETHEUS_MULTIPROC_DIR (an empty folder per server start; gunicorn.conf.py empties it and removes
  the files of dead workers) and prometheus_client's multiprocess mode adds up every worker's
  observations; without it each scrape sees only the process that answered.

Access: the endpoint exists only when AUTORIZA_METRICS_TOKEN is set (404 otherwise), answers only
clients whose address is in AUTORIZA_METRICS_ALLOWED_NETS (403; loopback only by default) and only
with `Authorization: Bearer <token>` (401), compared in constant time. The address is the TCP peer's
(REMOTE_ADDR), never a forwarded header: scrape the web service directly, not through the proxy.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from onboarding.metrics import JobsCollector

# Web requests take milliseconds; the CSV export of 10,000 clients about a second; GUNICORN_TIMEOUT 30 s.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# The process-local registry of the request histogram. In multiprocess mode prometheus_client writes
# each observation to a file in PROMETHEUS_MULTIPROC_DIR instead, and the view reads them all.
_LOCAL_REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_DURATION = Histogram(
    "autoriza_http_request_duration_seconds",
    "Web request duration, by route name (the URL pattern's name, never the path), method and status class.",
    labelnames=["route", "method", "status"],
    buckets=REQUEST_BUCKETS,
    registry=_LOCAL_REGISTRY,
)


def _route_name(request: HttpRequest) -> str:
    """The resolved URL pattern's name ("staff:dashboard"): bounded, unlike the path, which holds ids
    and slugs. "unresolved" for a 404 on no pattern or a redirect answered before URL resolution."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unresolved"
    return match.view_name or "unnamed"


class RequestLatencyMiddleware:
    """Observes every request's duration in REQUEST_DURATION. First in MIDDLEWARE, so that it times
    the whole response, redirects and errors of the other middleware included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        REQUEST_DURATION.labels(
            route=_route_name(request), method=method, status=f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - started)
        return response


class _Registered(Collector):
    """Yields what another registry holds (the process-local request histogram)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return self.registry.collect()


def _scrape_registry() -> CollectorRegistry:
    """A registry built for one scrape: the database's job figures and the request histogram (every
    gunicorn worker's in multiprocess mode, this process's otherwise)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Registered(_LOCAL_REGISTRY))
    return registry


def _parse_networks(values: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _parse_networks(settings.AUTORIZA_METRICS_ALLOWED_NETS))


def _token_matches(request: HttpRequest, expected: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Constant time: how much of the token matched is not told by how long the comparison took.
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of every metric above; 404 when no token is configured (for
    every method: a disabled endpoint does not exist), 403 from an address outside
    AUTORIZA_METRICS_ALLOWED_NETS, 401 without the right bearer token, 405 for anything but GET."""
    token = settings.AUTORIZA_METRICS_TOKEN
    if not token:
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    if not _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse("Acceso denegado.\n", status=403, content_type="text/plain; charset=utf-8")
    if not _token_matches(request, token):
        response = HttpResponse("Se requiere autorización.\n", status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_scrape_registry()), content_type=CONTENT_TYPE_LATEST)
