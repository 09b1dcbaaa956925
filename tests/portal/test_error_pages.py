"""Error pages as production shows them (DEBUG off): Spanish, styled, and never a technical page."""
from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views import defaults

pytestmark = pytest.mark.django_db


def test_404_outside_the_client_pages_is_spanish(client) -> None:  # type: ignore[no-untyped-def]
    """A mistyped signup link used to get Django's English "Not Found" page with lang="en"."""
    response = client.get("/registro/no-existe/")
    body = response.content.decode()
    assert response.status_code == 404
    assert 'lang="es-CL"' in body and "No encontramos esta página" in body
    assert "Not Found" not in body
    assert "next=/registro/no-existe/" in body.replace("%2F", "/")  # signed out: a way in, back here


def test_404_for_a_signed_in_user_offers_the_home_page(client, cast) -> None:  # type: ignore[no-untyped-def]
    client.force_login(cast.staff_a)
    body = client.get("/estudio/otra-firma/").content.decode()
    assert "No encontramos esta página" in body and "Ir al inicio" in body


def test_500_and_400_pages_render_without_a_request_context() -> None:
    """Django renders them with an empty context (no user, no session): they must still be Spanish."""
    request = RequestFactory().get("/")
    for view, status, title in ((defaults.server_error, 500, "Tuvimos un problema"),
                                (lambda r: defaults.bad_request(r, Exception()), 400, "No pudimos entender")):
        response = view(request)
        body = response.content.decode()
        assert response.status_code == status and title in body and 'lang="es-CL"' in body
        assert "Server Error" not in body and "Bad Request" not in body


def test_403_page_is_spanish() -> None:
    from django.contrib.auth.models import AnonymousUser
    from django.core.exceptions import PermissionDenied

    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    response = defaults.permission_denied(request, PermissionDenied())
    assert response.status_code == 403 and "No tiene permiso" in response.content.decode()


def test_a_form_sent_from_an_expired_page_says_nothing_was_saved_and_links_back(cast) -> None:  # type: ignore[no-untyped-def]
    """Before: Django's technical "Prohibido (403) … Estás viendo este mensaje porqué…"."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(cast.client_a)
    page = "http://testserver" + reverse("client:company", kwargs={"company_id": cast.company_a.pk})
    response = browser.post(reverse("logout"), HTTP_REFERER=page)
    body = response.content.decode()
    assert response.status_code == 403
    assert "La página caducó" in body and "no guardamos lo que envió" in body
    assert f'href="{page}"' in body
    # A Referer from elsewhere is not offered as the way back.
    body = browser.post(reverse("logout"), HTTP_REFERER="https://evil.example/phish").content.decode()
    assert "evil.example" not in body and 'href="/"' in body


def test_get_on_logout_asks_instead_of_a_blank_405(client, cast) -> None:  # type: ignore[no-untyped-def]
    url = reverse("logout")
    assert client.get(url)["Location"] == reverse("login")  # signed out: nothing to ask
    client.force_login(cast.staff_a)
    response = client.get(url)
    assert response.status_code == 200 and "¿Salir de Autoriza?" in response.content.decode()
    assert client.session.get("_auth_user_id")  # a GET never ends the session
    assert client.post(url)["Location"] == reverse("login")
    assert not client.session.get("_auth_user_id")


def test_login_errors_are_chilean_spanish(client, cast) -> None:  # type: ignore[no-untyped-def]
    body = client.post(reverse("login"), {"username": cast.staff_a.email, "password": "mala"}).content.decode()
    assert "El correo o la contraseña no son correctos" in body
    assert "introduzca" not in body.lower()
    body = client.post(reverse("login"), {"username": "", "password": ""}).content.decode()
    assert "Ingrese su correo electrónico." in body and "Ingrese su contraseña." in body


def test_password_reset_errors_are_chilean_spanish(client) -> None:  # type: ignore[no-untyped-def]
    body = client.post(reverse("client:password_reset"), {"email": "no-es-correo"}).content.decode()
    assert "Ingrese un correo válido" in body and "Introduzca" not in body


def test_head_on_the_signup_link_answers_like_get(client, cast) -> None:  # type: ignore[no-untyped-def]
    """Link previewers and uptime monitors send HEAD: it was a 405."""
    url = reverse("client:signup", kwargs={"tenant_slug": "pyme"})
    assert client.head(url).status_code == 200
