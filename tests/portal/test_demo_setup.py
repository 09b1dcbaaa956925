"""`manage.py demo_setup` (run by `manage.py demo`): the demo firm and a demo platform administrator."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_demo_setup_creates_a_platform_administrator_who_reaches_the_platform_admin() -> None:
    call_command("demo_setup")
    call_command("demo_setup")  # again: reuses everything
    admins = get_user_model().objects.filter(username="plataforma@autoriza.demo")
    assert admins.count() == 1
    admin = admins.get()
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert admin.email == "plataforma@autoriza.demo" and admin.check_password("autoriza-demo")

    browser = Client()
    response = browser.post("/plataforma/login/?next=/plataforma/",
                            {"username": "plataforma@autoriza.demo", "password": "autoriza-demo", "next": "/plataforma/"})
    assert response.status_code == 302 and response["Location"] == "/plataforma/"
    page = browser.get("/plataforma/")
    assert page.status_code == 200 and "Autoriza — administración de la plataforma" in page.content.decode()


def test_demo_setup_leaves_a_changed_platform_password_alone() -> None:
    call_command("demo_setup")
    admin = get_user_model().objects.get(username="plataforma@autoriza.demo")
    admin.set_password("otra-clave-elegida")
    admin.save()
    call_command("demo_setup")
    admin.refresh_from_db()
    assert admin.check_password("otra-clave-elegida")

