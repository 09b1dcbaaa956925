"""The home page of a client with several companies."""
from __future__ import annotations

import pytest
from django.urls import reverse

from onboarding.models import ClientCompany
from tests.onboarding.staff_factories import company_make

pytestmark = pytest.mark.django_db


def test_a_client_with_two_companies_sees_each_rut_with_dots(client, cast) -> None:  # type: ignore[no-untyped-def]
    second = company_make(cast.tenant_a, "76555555-8", "Segunda Empresa SpA")
    ClientCompany.objects.filter(pk=second.pk).update(owner=cast.client_a)
    client.force_login(cast.client_a)
    body = client.get(reverse("home")).content.decode()
    assert "Segunda Empresa SpA" in body and 'RUT <span class="rut">76.555.555-8</span>' in body and "RUT 76555555-8" not in body
