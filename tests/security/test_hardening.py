"""Production hardening, observed rather than configured: the cookies and headers a real login gets
under production settings, and abuse of the password-reset form.

`manage.py check --deploy --fail-level WARNING` passing under production settings is proven by
tests/portal/test_settings.py::test_production_settings_pass_check_deploy_with_no_warnings; login
brute force by tests/onboarding/test_login_throttle.py."""
from __future__ import annotations

import json
import re

import pytest
from django.core import mail
from django.urls import reverse

from tests.fixtures.clock import shifted_clock
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
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == reverse("client:password_reset_done")
    assert [m.to for m in mail.outbox] == [["cliente@empresa.cl"]]


PROXY = "10.0.0.254"  # the TLS proxy: every request behind it arrives from this REMOTE_ADDR
ATTACKER, VICTIM = "203.0.113.7", "198.51.100.9"
SENT_PAGE = "le enviamos un enlace"  # registration/password_reset_done.html
TOO_MANY_FROM_ADDRESS = "Se han pedido demasiados restablecimientos desde esta conexión. Intente de nuevo en {}."
TOO_MANY_FOR_EMAIL = "Se pidieron varios restablecimientos para este correo hace muy poco."


@pytest.fixture
def reset_limits(settings, tmp_path):  # type: ignore[no-untyped-def]
    """Behind the proxy (DJANGO_BEHIND_PROXY=1), on the embedded default's file cache, with the
    default limits: 5 requests per address in 15 minutes, 3 per e-mail in 5 minutes."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": str(tmp_path / "cache")}}
    settings.AUTORIZA_TRUSTED_PROXY_COUNT = 1
    settings.AUTORIZA_RESET_MAX_PER_ADDRESS, settings.AUTORIZA_RESET_ADDRESS_WINDOW_SECONDS = 5, 900
    settings.AUTORIZA_RESET_MAX_PER_EMAIL, settings.AUTORIZA_RESET_EMAIL_WINDOW_SECONDS = 3, 300


def reset_from(client, address: str, email: str = "cliente@empresa.cl"):  # type: ignore[no-untyped-def]
    return client.post(reverse("client:password_reset"), {"email": email}, REMOTE_ADDR=PROXY,
                       HTTP_X_FORWARDED_FOR=f"{VICTIM}, {address}")  # the leftmost entry is the client's word


@pytest.mark.django_db
def test_a_reset_flood_holds_back_another_addresss_reset_only_for_the_short_email_window(client, cast, reset_limits, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clock = shifted_clock(monkeypatch)
    flood = [reset_from(client, ATTACKER) for _ in range(20)]
    assert [r.status_code for r in flood] == [302] * 3 + [429] * 17
    assert len(mail.outbox) == 3  # the e-mail's limit: no inbox flood
    assert all(TOO_MANY_FOR_EMAIL in r.content.decode() for r in flood[3:5])
    assert all(TOO_MANY_FROM_ADDRESS.format("15 minutos") in r.content.decode() for r in flood[5:])
    assert not any(SENT_PAGE in r.content.decode() for r in flood[3:])

    # The owner, from another address, right away: told to wait for the e-mail's window, never "sent".
    held = reset_from(client, VICTIM)
    assert held.status_code == 429 and "Location" not in held
    body = held.content.decode()
    assert TOO_MANY_FOR_EMAIL in body and "intente de nuevo en 5 minutos." in body and SENT_PAGE not in body
    assert len(mail.outbox) == 3

    clock.advance(301)  # past the e-mail's window, well inside the attacker address's
    sent = reset_from(client, VICTIM)
    assert sent.status_code == 302 and sent["Location"] == reverse("client:password_reset_done")
    assert len(mail.outbox) == 4 and mail.outbox[3].to == ["cliente@empresa.cl"]
    still = reset_from(client, ATTACKER)
    assert still.status_code == 429 and TOO_MANY_FROM_ADDRESS.format("10 minutos") in still.content.decode()
    assert len(mail.outbox) == 4


@pytest.mark.django_db
def test_a_throttled_reset_looks_the_same_for_a_known_and_an_unknown_email(client, cast, reset_limits) -> None:  # type: ignore[no-untyped-def]
    known = [reset_from(client, "192.0.2.1", "cliente@empresa.cl") for _ in range(7)]
    unknown = [reset_from(client, "192.0.2.2", "nadie@empresa.cl") for _ in range(7)]
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [302] * 3 + [429] * 4
    assert [r.get("Location") for r in known] == [r.get("Location") for r in unknown]
    def page(response, email: str) -> str:  # type: ignore[no-untyped-def]
        # The page, less what differs anyway: the e-mail typed and the form's CSRF token.
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode().replace(email, "X"))

    for k, u in zip(known[3:], unknown[3:], strict=True):
        assert page(k, "cliente@empresa.cl") == page(u, "nadie@empresa.cl")
    assert len(mail.outbox) == 3 and {m.to[0] for m in mail.outbox} == {"cliente@empresa.cl"}
