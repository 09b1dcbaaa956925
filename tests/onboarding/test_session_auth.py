"""The status poll's check of who is logged in without loading the user (onboarding.session_auth):
it answers only what Django's `request.user` would answer, and leaves every doubtful session to
Django — a password change, an inactive user, a rotated SECRET_KEY, another backend."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from onboarding import services, session_auth
from onboarding.models import EnrollmentJob, JobEvent, JobStatus
from onboarding.selectors import status as client_selectors
from tests.onboarding.test_client_status import store_certificate

OLD_SECRET_KEY = "an-old-secret-key-still-listed-in-the-fallbacks-0123456789"


@pytest.fixture
def job(cast):  # type: ignore[no-untyped-def]
    """A running job of client_a's company, with a heartbeat and one event."""
    certificate = store_certificate(cast.company_a, cast.client_a)
    job = services.enrollment_job_create(company=cast.company_a, certificate=certificate, created_by=cast.client_a)
    job = services.enrollment_job_claim(job_id=str(job.pk), worker="test")
    EnrollmentJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    JobEvent.objects.create(tenant_id=job.tenant_id, job=job, step="open_page", status="started")
    return EnrollmentJob.objects.get(pk=job.pk)


def poll_url(job) -> str:  # type: ignore[no-untyped-def]
    return reverse("client:job_status", kwargs={"job_id": job.pk})


def user_queries(queries: CaptureQueriesContext) -> list[str]:
    """The statements that load a user by itself (what `request.user` costs)."""
    return [q["sql"] for q in queries.captured_queries if re.match(r'SELECT .* FROM "auth_user" WHERE', q["sql"])]


# --- The owner's poll: answered without loading the user -------------------------------------------


def test_owners_poll_is_two_statements_and_never_loads_the_user(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    first = client.get(poll_url(job))
    assert first.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        again = client.get(poll_url(job), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    # The session (none with a cached session engine) and the job's ETag with the owner's credentials.
    assert len(queries.captured_queries) <= 2, [q["sql"] for q in queries.captured_queries]
    assert user_queries(queries) == []


def test_the_poll_etag_is_the_pages_etag(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    """The one statement's ETag and the model's (`job_status_etag`, on the page) are the same value,
    also for the datetimes the database hands back (naive on SQLite): else every first poll is a 200."""
    client.force_login(cast.client_a)
    page = client.get(reverse("client:job", kwargs={"job_id": job.pk}))
    page_etag = re.search(r'data-etag="([^"]+)"', page.content.decode()).group(1).replace("&quot;", '"')
    assert page_etag == client_selectors.job_status_etag(job=job)
    assert client.get(poll_url(job))["ETag"] == page_etag
    EnrollmentJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    job.refresh_from_db()
    assert client.get(poll_url(job))["ETag"] == client_selectors.job_status_etag(job=job)


# --- Every doubtful session is Django's to judge ---------------------------------------------------


def test_a_password_change_ends_the_session_on_the_next_poll(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    etag = client.get(poll_url(job))["ETag"]
    cast.client_a.set_password("otra-clave-muy-distinta-456")
    cast.client_a.save()
    response = client.get(poll_url(job), HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 404
    # Django flushed the session, as it does on any page: the next poll is anonymous.
    assert SESSION_KEY not in client.session


def test_an_inactive_owner_gets_404(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    etag = client.get(poll_url(job))["ETag"]
    type(cast.client_a).objects.filter(pk=cast.client_a.pk).update(is_active=False)
    assert client.get(poll_url(job), HTTP_IF_NONE_MATCH=etag).status_code == 404


def test_another_users_session_gets_404_even_with_the_right_etag(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    etag = client.get(poll_url(job))["ETag"]
    for intruder in (cast.owner_a, cast.staff_b):
        client.force_login(intruder)
        assert client.get(poll_url(job), HTTP_IF_NONE_MATCH=etag).status_code == 404
        assert client.get(poll_url(job)).status_code == 404


def test_a_session_naming_another_user_with_the_owners_hash_gets_404(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    """The owner's id is taken from the session, never from the job: a session of user B that somehow
    carried A's hash still is B's (and B's hash check fails)."""
    client.force_login(cast.client_a)
    owner_hash = client.session[HASH_SESSION_KEY]
    client.force_login(cast.staff_b)
    session = client.session
    session[HASH_SESSION_KEY] = owner_hash
    session.save()
    assert client.get(poll_url(job)).status_code == 404


def test_a_session_from_an_old_secret_key_is_rotated_by_django(client, cast, job, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECRET_KEY = OLD_SECRET_KEY
    client.force_login(cast.client_a)
    old_hash = client.session[HASH_SESSION_KEY]
    settings.SECRET_KEY_FALLBACKS = [OLD_SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-" + "z" * 40
    response = client.get(poll_url(job))
    assert response.status_code == 200
    # Django's own handling ran (the fast path cannot confirm an old key): the hash was renewed.
    new_hash = client.session[HASH_SESSION_KEY]
    assert new_hash != old_hash and new_hash == cast.client_a.get_session_auth_hash()


def test_a_backend_no_longer_configured_is_anonymous(client, cast, job, settings) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    assert client.get(poll_url(job)).status_code == 404


def test_a_session_without_a_hash_is_anonymous(client, cast, job) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.client_a)
    session = client.session
    del session[HASH_SESSION_KEY]
    session.save()
    assert client.get(poll_url(job)).status_code == 404


# --- The two functions --------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, session: dict[str, object]) -> None:
        self.session = session


def test_claim_needs_user_backend_and_hash(settings) -> None:
    full = {SESSION_KEY: "7", BACKEND_SESSION_KEY: session_auth.MODEL_BACKEND, HASH_SESSION_KEY: "abc"}
    claim = session_auth.session_claim(FakeRequest(full))  # type: ignore[arg-type]
    assert claim == session_auth.SessionClaim(user_id=7, session_hash="abc")
    for missing in full:
        assert session_auth.session_claim(FakeRequest({k: v for k, v in full.items() if k != missing})) is None  # type: ignore[arg-type]
    assert session_auth.session_claim(FakeRequest({**full, SESSION_KEY: "siete"})) is None  # type: ignore[arg-type]
    assert session_auth.session_claim(FakeRequest({**full, HASH_SESSION_KEY: ""})) is None  # type: ignore[arg-type]
    other = "django.contrib.auth.backends.AllowAllUsersModelBackend"
    settings.AUTHENTICATION_BACKENDS = [other, session_auth.MODEL_BACKEND]
    assert session_auth.session_claim(FakeRequest({**full, BACKEND_SESSION_KEY: other})) is None  # type: ignore[arg-type]


def test_claim_verified_only_for_the_current_hash_of_an_active_user(cast) -> None:  # type: ignore[no-untyped-def]
    user = cast.client_a
    good = session_auth.SessionClaim(user_id=user.pk, session_hash=user.get_session_auth_hash())
    assert session_auth.session_claim_verified(good, password=user.password, is_active=True)
    assert not session_auth.session_claim_verified(good, password=user.password, is_active=False)
    assert not session_auth.session_claim_verified(good, password=user.password + "x", is_active=True)
    flipped = "1" if good.session_hash[-1] == "0" else "0"  # a different last digit, whatever the hash
    bad = session_auth.SessionClaim(user_id=user.pk, session_hash=good.session_hash[:-1] + flipped)
    assert not session_auth.session_claim_verified(bad, password=user.password, is_active=True)
