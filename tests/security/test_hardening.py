"""Production hardening, observed rather than configured: the cookies and headers a real login gets
under production settings, and abuse of the password-reset form.

`manage.py check --deploy --fail-level WARNING` passing under production settings is proven by
tests/portal/test_settings.py::test_production_settings_pass_check_deploy_with_no_warnings; login
brute force by tests/onboarding/test_login_throttle.py."""
from __future__ import annotations

import json

import pytest
from django.core import mail
from django.urls import reverse

from tests.portal.test_settings import PRODUCTION, run

LOGIN_UNDER_PRODUCTION = r"""
import json, django
django.setup()
from django.conf import settings
# No collectstatic here: plain static storage for {% static %}; every security setting stays production's.
settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.test import Client
get_user_model().objects.create_user("duena@empresa.cl", password="Clave-Larga-De-Prueba-1")
host = {"HTTP_HOST": "autoriza.example.cl"}
plain = Client(**host).get("/ingresar/")
browser = Client(enforce_csrf_checks=True, **host)
form = browser.get("/ingresar/", secure=True)
token = browser.cookies["csrftoken"].value
login = browser.post("/ingresar/", {"username": "duena@empresa.cl", "password": "Clave-Larga-De-Prueba-1",
                                    "csrfmiddlewaretoken": token}, secure=True,
                    HTTP_REFERER="https://autoriza.example.cl/ingresar/")  # HTTPS POSTs need a same-origin referer
def cookies(response):
    return {name: {"secure": bool(m["secure"]), "httponly": bool(m["httponly"]), "samesite": m["samesite"]}
            for name, m in response.cookies.items()}
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location", ""),
    "form_cookies": cookies(form), "login_status": login.status_code, "login_cookies": cookies(login),
    "headers": {h: login.get(h) for h in ("Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy",
                                          "X-Frame-Options", "Content-Security-Policy")},
}))
"""


def test_a_real_login_under_production_settings_gets_secure_httponly_cookies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}", "REDIS_URL": ""}
    result = run(["-c", LOGIN_UNDER_PRODUCTION], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain_status"] == 301 and seen["plain_location"].startswith("https://autoriza.example.cl/")
    assert seen["login_status"] == 302, seen
    session = seen["login_cookies"]["sessionid"]
    assert session == {"secure": True, "httponly": True, "samesite": "Lax"}
    csrf = seen["form_cookies"]["csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax"  # readable by JS on purpose (htmx sends it)
    headers = seen["headers"]
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "includeSubDomains" in headers["Strict-Transport-Security"] and "preload" in headers["Strict-Transport-Security"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]


@pytest.mark.django_db
def test_password_reset_never_reveals_whether_an_account_exists(client, cast) -> None:  # type: ignore[no-untyped-def]
    url = reverse("client:password_reset")
    known = client.post(url, {"email": "cliente@empresa.cl"})
    unknown = client.post(url, {"email": "nadie@empresa.cl"})
    assert known.status_code == unknown.status_code == 302 and known["Location"] == unknown["Location"]


@pytest.mark.django_db
def test_password_reset_requests_are_throttled(client, cast, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": str(tmp_path / "cache")}}
    url = reverse("client:password_reset")
    for _ in range(20):
        client.post(url, {"email": "cliente@empresa.cl"}, REMOTE_ADDR="10.9.9.9")
    assert len(mail.outbox) <= settings.AUTORIZA_LOGIN_MAX_FAILURES
