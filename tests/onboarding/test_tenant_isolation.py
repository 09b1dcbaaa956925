"""Tenant isolation of the firm's side, URL by URL.

The URL list is read from `onboarding.urls.staff.urlpatterns`, so a URL added there is checked here
without anyone remembering to: it must name only known kwargs and be classified in ACCESS below, or
`test_every_staff_url_is_classified` fails. Then, for every URL and every method:
- tenant B's staff, the client user and anonymous visitors never reach tenant A's pages (404, or a
  redirect to the login page for anonymous visitors);
- tenant B's staff asking for tenant A's objects through tenant B's own URLs get 404;
- roles: owner-only pages are 404 for admins and staff, re-runs are 404 for staff;
- and the members who may use a page do reach it (so the 404s above are not vacuous).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import reverse

from onboarding.models import ArtifactKind, JobStatus, Membership
from onboarding.urls.staff import urlpatterns
from tests.onboarding.staff_factories import (
    artifact_make,
    certificate_make,
    company_make,
    invitation_make,
    job_make,
)

pytestmark = pytest.mark.django_db

# Who may use each URL: "member" (any role), "rerun" (owner, admin), "owner", or "public" (not
# tenant-scoped). A new URL must be added here, deliberately.
ACCESS: dict[str, str] = {
    "password_set": "public",
    "dashboard": "member",
    "dashboard_rows": "member",
    "dashboard_export": "member",
    "rerun_bulk": "rerun",
    "access_check_all": "rerun",
    "access_check_company": "rerun",
    "access_check_schedule": "owner",
    "job_detail": "member",
    "job_rerun": "rerun",
    "job_retry_now": "rerun",
    "job_artifact": "member",
    "invitations": "member",
    "invitations_import": "member",
    "invitation_resend": "member",
    "invitation_revoke": "member",
    "settings": "owner",
    "representative_add": "owner",
    "representative_deactivate": "owner",
    "representative_reactivate": "owner",
    "company_detail": "member",
    "company_permissions": "rerun",
    "company_permissions_sync": "rerun",
    "company_end": "rerun",
    "company_certificate_request": "rerun",
    "representative_replace": "owner",
    "permissions_sync": "owner",
    "team": "owner",
    "member_role": "owner",
    "member_remove": "owner",
    "audit": "owner",
    "firm_keys": "member",
    "firm_key_upload": "rerun",
    "firm_key_delete": "rerun",
}
KNOWN_KWARGS = {"tenant_slug", "job_id", "artifact_id", "invitation_id", "representative_id", "membership_id", "company_id"}
TENANT_PATTERNS = [p for p in urlpatterns if ACCESS.get(p.name) != "public"]
PATTERN_IDS = [p.name for p in TENANT_PATTERNS]


@dataclass
class TenantObjects:
    slug: str
    job_id: Any
    artifact_id: Any
    invitation_id: int
    representative_id: int
    membership_id: int
    company_id: int = 0

    def kwargs(self, pattern: Any, **override: Any) -> dict[str, Any]:
        values = {
            "tenant_slug": self.slug,
            "job_id": self.job_id,
            "artifact_id": self.artifact_id,
            "invitation_id": self.invitation_id,
            "representative_id": self.representative_id,
            "membership_id": self.membership_id,
            "company_id": self.company_id,
        }
        values.update(override)
        return {name: values[name] for name in pattern.pattern.converters}


@pytest.fixture
def world(cast, certificate_bundle):  # type: ignore[no-untyped-def]
    """Tenant A and tenant B, each with a failed job (certificate kept), evidence, an invitation,
    a representative and a staff membership."""

    def objects(tenant: Any, company: Any, staff_user: Any) -> TenantObjects:
        job = job_make(company, status=JobStatus.FAILED, certificate=certificate_make(company, certificate_bundle))
        artifact = artifact_make(job, kind=ArtifactKind.SCREENSHOT)
        invitation = invitation_make(tenant, "96874030-K", "Invitada de " + tenant.slug)
        representative = tenant.representatives.get()
        membership = Membership.objects.get(tenant=tenant, user=staff_user)
        return TenantObjects(tenant.slug, job.pk, artifact.pk, invitation.pk, representative.pk, membership.pk, company.pk)

    return {"a": objects(cast.tenant_a, cast.company_a, cast.staff_a), "b": objects(cast.tenant_b, cast.company_b, cast.staff_b)}


def url_for(pattern: Any, objects: TenantObjects, **override: Any) -> str:
    return reverse(f"staff:{pattern.name}", kwargs=objects.kwargs(pattern, **override))


def test_every_staff_url_is_classified() -> None:
    names = [p.name for p in urlpatterns]
    assert len(names) == len(set(names)), "URL names must be unique"
    assert set(names) == set(ACCESS), "classify every staff URL in ACCESS (and remove the ones that are gone)"
    for pattern in urlpatterns:
        unknown = set(pattern.pattern.converters) - KNOWN_KWARGS - {"uidb64", "token"}
        assert not unknown, f"{pattern.name}: teach this test how to build {unknown}"
        if ACCESS[pattern.name] != "public":
            assert "tenant_slug" in pattern.pattern.converters, f"{pattern.name} must be under <tenant_slug>"


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=PATTERN_IDS)
@pytest.mark.parametrize("who", ["staff_b", "client_a"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_outsiders_get_404_on_every_url_and_method(client, cast, world, pattern, who, method) -> None:  # type: ignore[no-untyped-def]
    client.force_login(getattr(cast, who))
    response = getattr(client, method)(url_for(pattern, world["a"]))
    assert response.status_code == 404, f"{who} {method.upper()} {pattern.name} → {response.status_code}"


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=PATTERN_IDS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_visitors_are_sent_to_login(client, world, pattern, method) -> None:  # type: ignore[no-untyped-def]
    url = url_for(pattern, world["a"])
    response = getattr(client, method)(url)
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("pattern", [p for p in TENANT_PATTERNS if set(p.pattern.converters) - {"tenant_slug"}], ids=lambda p: p.name)
@pytest.mark.parametrize("method", ["get", "post"])
def test_other_tenants_objects_are_404_through_ones_own_urls(client, cast, world, pattern, method) -> None:  # type: ignore[no-untyped-def]
    """Tenant B's owner-equivalent access (B's staff made owner) with tenant A's ids, one id at a time."""
    Membership.objects.filter(tenant=cast.tenant_b, user=cast.staff_b).update(role="owner")
    client.force_login(cast.staff_b)
    own, foreign = world["b"], world["a"]
    for name in set(pattern.pattern.converters) - {"tenant_slug"}:
        url = url_for(pattern, own, **{name: getattr(foreign, name)})
        response = getattr(client, method)(url)
        if response.status_code == 405:
            # A method the URL never accepts is refused before any lookup, for any id: it says
            # nothing about the object. Prove it: one's own object gets the same 405.
            assert getattr(client, method)(url_for(pattern, own)).status_code == 405
            continue
        assert response.status_code == 404, f"{method.upper()} {pattern.name} with A's {name} → {response.status_code}"


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=PATTERN_IDS)
@pytest.mark.parametrize("who", ["owner_a", "admin_a", "staff_a"])
def test_roles(client, cast, world, pattern, who) -> None:  # type: ignore[no-untyped-def]
    """Owner-only pages are 404 for admin and staff; re-runs are 404 for staff; the rest open.

    Allowed roles are checked with GET only (200, or 405/302 for POST-only URLs), so nothing changes;
    refused roles are checked with GET and POST.
    """
    needed = ACCESS[pattern.name]
    role = {"owner_a": "owner", "admin_a": "admin", "staff_a": "staff"}[who]
    allowed = needed == "member" or (needed == "rerun" and role in ("owner", "admin")) or (needed == "owner" and role == "owner")
    client.force_login(getattr(cast, who))
    url = url_for(pattern, world["a"])
    if allowed:
        response = client.get(url)
        assert response.status_code in (200, 302, 405), f"{who} GET {pattern.name} → {response.status_code}"
    else:
        assert client.get(url).status_code == 404, f"{who} GET {pattern.name} should be 404"
        assert client.post(url).status_code == 404, f"{who} POST {pattern.name} should be 404"


def test_malformed_and_unknown_ids_are_404(client, cast, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.owner_a)
    base = reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"})
    for path in (
        "trabajos/no-es-un-uuid/",
        "trabajos/00000000-0000-0000-0000-000000000000/",
        f"trabajos/{world['a'].job_id}/evidencia/00000000-0000-0000-0000-000000000000/",
    ):
        assert client.get(base + path).status_code == 404, path
    for path in (
        "trabajos/00000000-0000-0000-0000-000000000000/reejecutar/",
        "invitaciones/999999/reenviar/",
        "equipo/999999/rol/",
        "configuracion/representantes/999999/desactivar/",
    ):
        assert client.post(base + path).status_code == 404, path
    assert client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "no-existe"})).status_code == 404


def test_a_members_own_artifact_of_another_job_is_404(client, cast, world, certificate_bundle) -> None:  # type: ignore[no-untyped-def]
    """An artifact id is only valid under its own job, even inside the same tenant."""
    other = company_make(cast.tenant_a, "60803000-K", "Otra del mismo estudio")
    other_job = job_make(other, status=JobStatus.FAILED)
    client.force_login(cast.owner_a)
    url = reverse(
        "staff:job_artifact",
        kwargs={"tenant_slug": "pyme", "job_id": other_job.pk, "artifact_id": world["a"].artifact_id},
    )
    assert client.get(url).status_code == 404


def test_live_rows_ignore_other_tenants_company_ids(client, cast, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    url = reverse("staff:dashboard_rows", kwargs={"tenant_slug": "pyme"})
    response = client.get(url, {"ids": f"{cast.company_b.pk},{cast.company_a.pk}"})
    body = response.content.decode()
    assert response.status_code == 200
    assert f'id="company-{cast.company_a.pk}"' in body
    assert f'id="company-{cast.company_b.pk}"' not in body and "Ferretería B" not in body


def test_bulk_rerun_ignores_other_tenants_job_ids(client, cast, world) -> None:  # type: ignore[no-untyped-def]
    from onboarding.models import EnrollmentJob

    client.force_login(cast.admin_a)
    response = client.post(reverse("staff:rerun_bulk", kwargs={"tenant_slug": "pyme"}), {"job": [str(world["b"].job_id)]})
    assert response.status_code == 200
    assert "Trabajo no encontrado" in response.content.decode()
    assert not EnrollmentJob.objects.filter(rerun_of_id=world["b"].job_id).exists()


@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=PATTERN_IDS)
def test_every_post_needs_the_csrf_token(cast, world, pattern) -> None:  # type: ignore[no-untyped-def]
    """With CSRF checks on (the test client skips them by default), a POST without the token is
    refused for the tenant's own owner, on every URL, before the view runs."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.owner_a)
    response = client.post(url_for(pattern, world["a"]))
    assert response.status_code == 403, f"POST {pattern.name} without CSRF token → {response.status_code}"
