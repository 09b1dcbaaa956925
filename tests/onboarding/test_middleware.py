"""HtmxSessionEndedMiddleware: a live page's poll after the session ended sends the page to the login."""
from __future__ import annotations

import pytest
from django.urls import reverse

from tests.onboarding.staff_factories import job_make

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_a_dashboard_poll_without_a_session_redirects_the_page_to_login(client, cast) -> None:  # type: ignore[no-untyped-def]
    """Before: the XHR followed the 302 and htmx put the whole login page under the client table."""
    rows = reverse("staff:dashboard_rows", kwargs={"tenant_slug": "pyme"})
    page = reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"}) + "?estado=running"
    response = client.get(rows, {"ids": "1"}, HTTP_HX_CURRENT_URL=f"http://testserver{page}", **HTMX)
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/ingresar/?next=%2Festudio%2Fpyme%2F%3Festado%3Drunning"
    # The same URL without htmx still gets the ordinary redirect.
    assert client.get(rows, {"ids": "1"}).status_code == 302


def test_a_client_status_poll_without_a_session_redirects_the_page_to_login(client, cast) -> None:  # type: ignore[no-untyped-def]
    """Before: the client's page polled a 404 every 2 s for ever, showing stale progress."""
    job = job_make(cast.company_a)
    page = reverse("client:job", kwargs={"job_id": job.pk})
    response = client.get(
        reverse("client:job_status", kwargs={"job_id": job.pk}), HTTP_HX_CURRENT_URL=f"http://testserver{page}", **HTMX
    )
    assert response["HX-Redirect"] == f"/ingresar/?next={page.replace('/', '%2F')}"


def test_signed_in_users_and_other_answers_pass_unchanged(client, cast) -> None:  # type: ignore[no-untyped-def]
    job = job_make(cast.company_a)
    status_url = reverse("client:job_status", kwargs={"job_id": job.pk})
    # Someone else's job: a signed-in user gets the 404 itself (no login loop).
    client.force_login(cast.staff_b)
    response = client.get(status_url, **HTMX)
    assert response.status_code == 404 and "HX-Redirect" not in response
    client.logout()
    # A page polled from another origin gets no `next` outside this site.
    response = client.get(status_url, HTTP_HX_CURRENT_URL="https://evil.example/x", **HTMX)
    assert response["HX-Redirect"] == "/ingresar/?next=%2F"
    # A signed-out request that is not htmx: unchanged.
    assert client.get(status_url).status_code == 404


def test_live_pages_load_the_script_that_reports_failed_polls(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    body = client.get(reverse("staff:dashboard", kwargs={"tenant_slug": "pyme"})).content.decode()
    assert "js/live" in body
