"""Every URL of the project, probed: cross-tenant access with every role, CSRF on every POST, a
Content-Security-Policy on every page.

The URL list is walked from `get_resolver()` (every include, every namespace, the admin included),
so a URL added anywhere is probed without anyone remembering to. Each URL is filled with tenant A's
real object ids, built from its route string, and classified by what it serves:
- "tenant": it names a firm or one of its objects: the other tenant's owner, admin, staff and client
  must get 404 (never 403: existence is not revealed), anonymous visitors 404 or the login page;
- "platform": the platform admin (/plataforma/): nobody of any firm is platform staff: the admin's
  login page, whatever the id;
- "public" / "no object": listed by name below, each with the reason; a new URL that names no object
  fails `test_every_url_is_classified` until it is listed.
tests/onboarding/test_tenant_isolation.py checks the firm side in depth (roles inside a tenant,
ids of B through B's own URLs); this file is the exhaustive, all-URL net.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.reliability.support import figures_record

pytestmark = pytest.mark.django_db

# kwargs that name a tenant or one of its objects.
OBJECT_KWARGS = {"tenant_slug", "company_id", "certificate_id", "job_id", "artifact_id", "invitation_id",
                 "representative_id", "membership_id"}
PUBLIC: dict[str, str] = {
    "client:signup": "a firm's public signup page, by design: shows the firm's name and representative only",
    "client:password_reset_confirm": "authenticated by the emailed one-time token, not by the session",
    "staff:password_set": "authenticated by the emailed one-time token, not by the session",
}
NO_OBJECT: dict[str, str] = {
    "home": "redirects each user to their own firm or company; names nothing",
    "healthz": "liveness probe: {'status': 'ok'} and nothing else",
    "metrics": "Prometheus figures with no names, RUTs or ids (firm slugs only); 404 unless a token is set, "
               "then bearer token and allowed networks (tests/portal/test_metrics.py)",
    "login": "the login form",
    "logout": "logs the requester out (POST only)",
    "client:password_reset": "asks for an email; same answer whether it exists or not",
    "client:password_reset_done": "static confirmation page",
    "client:password_reset_complete": "static confirmation page",
}
LEAK_MARKERS = ("Comercial Demo SpA", "76.086.428-5", "76086428-5")  # tenant A's client company


@dataclass
class Route:
    name: str  # "namespace:name", or the route when unnamed
    route: str  # the full route, e.g. "estudio/<slug:tenant_slug>/trabajos/<uuid:job_id>/"
    kwargs: tuple[str, ...]

    @property
    def kind(self) -> str:
        if self.route.startswith("plataforma/"):
            return "platform"
        if self.name in PUBLIC:
            return "public"
        if set(self.kwargs) & OBJECT_KWARGS:
            return "tenant"
        return "no_object"


def _walk(resolver: URLResolver, namespace: str = "", prefix: str = "") -> list[Route]:
    routes = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = namespace + (f"{entry.namespace}:" if entry.namespace else "")
            routes += _walk(entry, inner, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            names = re.findall(r"<(?:\w+:)?(\w+)>", route) + re.findall(r"\(\?P<(\w+)>", route)
            routes.append(Route(namespace + entry.name if entry.name else route, route, tuple(names)))
    return routes


ROUTES = _walk(get_resolver())
TENANT_ROUTES = [r for r in ROUTES if r.kind == "tenant"]
PLATFORM_ROUTES = [r for r in ROUTES if r.kind == "platform"]


def build(route: Route, values: dict[str, Any]) -> str:
    """The URL of `route` with its kwargs filled from `values` (regex groups included)."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route.route)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), path)
    return "/" + path.replace("^", "").replace("$", "")


@dataclass
class World:
    values: dict[str, Any]  # tenant A's ids by kwarg name
    users: dict[str, Any]


@pytest.fixture
def world(cast, certificate_bundle) -> World:  # type: ignore[no-untyped-def]
    """Tenant A with one of each object; tenant B with an owner, an admin, a staff member and a
    client of its own (the prober roles); a platform superuser."""
    from django.contrib.auth.tokens import default_token_generator
    from django.contrib.contenttypes.models import ContentType
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from onboarding import services
    from onboarding.models import (
        ArtifactKind,
        AuditEntry,
        ClientCompany,
        EnrollmentJob,
        JobStatus,
        Membership,
        Role,
    )

    User = get_user_model()
    certificate = services.certificate_store(company=cast.company_a, bundle=certificate_bundle, uploaded_by=cast.client_a)
    job = services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)
    EnrollmentJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    artifact = services.job_artifact_store(job=job, kind=ArtifactKind.SCREENSHOT, step="login", content=b"\x89PNG")
    invitation = services.invitation_create(tenant=cast.tenant_a, rut="96874030-K", legal_name="Invitada SpA",
                                            contact_name="Contacto", email="invitada@a.cl", actor=cast.owner_a)

    def user(email: str) -> Any:
        return User.objects.create_user(username=email, email=email, password=cast.password)

    owner_b, admin_b, client_b = user("dueno@b.cl"), user("admin@b.cl"), user("cliente@b.cl")
    services.membership_add(tenant=cast.tenant_b, user=owner_b, role=Role.OWNER)
    services.membership_add(tenant=cast.tenant_b, user=admin_b, role=Role.ADMIN)
    ClientCompany.objects.filter(pk=cast.company_b.pk).update(owner=client_b)
    root = User.objects.create_superuser(username="root@plataforma.cl", email="root@plataforma.cl", password=cast.password)
    values = {
        "tenant_slug": cast.tenant_a.slug, "company_id": cast.company_a.pk, "certificate_id": certificate.pk,
        "job_id": job.pk, "artifact_id": artifact.pk, "invitation_id": invitation.pk,
        "representative_id": cast.tenant_a.representatives.get().pk,
        "membership_id": Membership.objects.get(tenant=cast.tenant_a, user=cast.staff_a).pk,
        "uidb64": urlsafe_base64_encode(force_bytes(cast.owner_a.pk)),
        "token": default_token_generator.make_token(cast.owner_a),
        # The platform admin: ids of A's rows (any model; the admin refuses non-staff before any lookup).
        "object_id": cast.company_a.pk, "id": cast.owner_a.pk, "app_label": "onboarding",
        "content_type_id": ContentType.objects.get_for_model(ClientCompany).pk, "url": "onboarding/no-existe/",
    }
    assert AuditEntry.objects.filter(tenant=cast.tenant_a).exists()
    users = {"owner_b": owner_b, "admin_b": admin_b, "staff_b": cast.staff_b, "client_b": client_b,
             "owner_a": cast.owner_a, "client_a": cast.client_a, "root": root}
    return World(values, users)


def _client(user: Any = None, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def test_every_url_is_classified() -> None:
    """A URL naming no tenant object must be listed (PUBLIC / NO_OBJECT) with the reason it is safe;
    every kwarg must be one this file knows how to fill."""
    fillable = OBJECT_KWARGS | {"uidb64", "token", "object_id", "id", "app_label", "content_type_id", "url"}
    names = {r.name for r in ROUTES}
    for route in ROUTES:
        assert set(route.kwargs) <= fillable, f"{route.name}: teach this test how to fill {set(route.kwargs) - fillable}"
        if route.kind == "no_object":
            assert route.name in NO_OBJECT, f"{route.name} ({route.route}) names no object: classify it in NO_OBJECT or PUBLIC"
    assert set(PUBLIC) <= names and set(NO_OBJECT) <= names, "remove the classifications of URLs that are gone"
    assert len(TENANT_ROUTES) >= 25 and len(PLATFORM_ROUTES) >= 40  # the walk found the includes


@pytest.mark.parametrize("who", ["owner_b", "admin_b", "staff_b", "client_b", "anonymous"])
def test_the_other_tenants_people_get_404_on_every_url_of_tenant_a(world, who: str) -> None:  # type: ignore[no-untyped-def]
    client = _client(world.users.get(who))
    refused: list[str] = []
    probes = 0
    for route in TENANT_ROUTES:
        url = build(route, world.values)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            probes += 1
            body = response.content.decode(errors="replace")
            ok = response.status_code == 404 or (
                who == "anonymous" and response.status_code == 302 and response["Location"].startswith("/ingresar/?next=")
            )
            if response.status_code == 405:
                # A method the URL never accepts is refused before any lookup, whoever asks and for any
                # id: it reveals nothing. Prove it: A's own user gets the same 405.
                ok = getattr(_authorized_client(route, world), method)(url).status_code == 405
            if not ok or any(marker in body for marker in LEAK_MARKERS):
                refused.append(f"{method.upper()} {url} ({route.name}) → {response.status_code}")
    assert not refused, f"{who} reached tenant A:\n" + "\n".join(refused)
    _count("cross_tenant_probes", probes)


@pytest.mark.parametrize("who", ["owner_b", "admin_b", "staff_b", "client_b", "owner_a", "anonymous"])
def test_nobody_of_any_firm_reaches_the_platform_admin(world, who: str) -> None:  # type: ignore[no-untyped-def]
    client = _client(world.users.get(who))
    reached: list[str] = []
    probes = 0
    for route in PLATFORM_ROUTES:
        url = build(route, world.values)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            probes += 1
            location = response.get("Location", "")
            if route.name in ("admin:login", "admin:logout") and response.status_code in (200, 302, 405):
                continue  # the login form itself; logging oneself out
            if not (response.status_code == 302 and location.startswith("/plataforma/login/")):
                reached.append(f"{method.upper()} {url} ({route.name}) → {response.status_code} {location}")
    assert not reached, f"{who} reached the platform admin:\n" + "\n".join(reached)
    _count("platform_probes", probes)


def _authorized_client(route: Route, world: World, **kwargs: Any) -> Client:
    """A client with the right to use `route` (so a refusal is about CSRF, not about access)."""
    if route.kind == "platform":
        return _client(world.users["root"], **kwargs)
    if route.name.startswith("staff:"):
        return _client(world.users["owner_a"], **kwargs)
    if route.name.startswith("client:") and route.kind == "tenant":
        return _client(world.users["client_a"], **kwargs)
    return _client(None, **kwargs)


def test_every_post_without_a_csrf_token_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    """On every URL, by someone allowed to use it: a POST without the token is a 403 before the view
    runs (no csrf_exempt view anywhere; the upload's in-memory handler swap keeps csrf_protect)."""
    allowed: list[str] = []
    for route in ROUTES:
        client = _authorized_client(route, world, enforce_csrf_checks=True)
        response = client.post(build(route, world.values), {"x": "1"})
        if response.status_code != 403:
            allowed.append(f"POST {route.name} → {response.status_code}")
    assert not allowed, "\n".join(allowed)
    _count("csrf_probes", len(ROUTES))


FORBIDDEN_SOURCES = ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:")


def _assert_strict_csp(response, where: str) -> None:  # type: ignore[no-untyped-def]
    policy = response.get("Content-Security-Policy")
    assert policy, f"{where}: no Content-Security-Policy header"
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, f"{where}: {policy}"
    for name in ("script-src", "style-src", "default-src"):
        assert not set(directives.get(name, [])) & set(FORBIDDEN_SOURCES), f"{where}: {name} {directives.get(name)}"
    sandboxed = "sandbox" in directives and directives.get("default-src") == ["'none'"]  # served evidence
    # Framing: frame-ancestors does not fall back to default-src; X-Frame-Options DENY covers old browsers.
    assert directives.get("frame-ancestors") == ["'none'"] or (sandboxed and response.get("X-Frame-Options") == "DENY"), where
    assert response.get("X-Frame-Options") == "DENY", where
    assert directives.get("object-src") == ["'none'"] or sandboxed, where
    assert directives.get("base-uri") == ["'none'"] or sandboxed, where


def test_every_page_has_a_strict_content_security_policy(world, settings) -> None:  # type: ignore[no-untyped-def]
    """GET of every URL (as someone allowed to see it), and the error pages: the header is there and
    allows no inline script or style, no eval, no foreign origin, no framing."""
    settings.DEBUG = False
    for route in ROUTES:
        response = _authorized_client(route, world).get(build(route, world.values))
        _assert_strict_csp(response, f"GET {route.name} ({response.status_code})")
    anonymous = Client(enforce_csrf_checks=True)
    _assert_strict_csp(anonymous.get("/no-existe/"), "404 page")
    _assert_strict_csp(anonymous.post("/ingresar/", {}), "CSRF 403 page")
    _count("csp_pages", len(ROUTES) + 2)


_COUNTS: dict[str, int] = {}


def _count(kind: str, n: int) -> None:
    _COUNTS[kind] = _COUNTS.get(kind, 0) + n


@pytest.fixture(scope="module", autouse=True)
def _record_figures():  # type: ignore[no-untyped-def]
    yield
    if _COUNTS:
        figures_record("url_probes", {
            "urls": len(ROUTES), "tenant_urls": len(TENANT_ROUTES), "platform_urls": len(PLATFORM_ROUTES),
            "public_urls": sorted(PUBLIC), "no_object_urls": sorted(NO_OBJECT), "requests": dict(_COUNTS),
        })
