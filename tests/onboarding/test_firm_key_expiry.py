"""Expiry warnings of firm keys: the tenant's owners and admins are e-mailed 30 and 7 days before a
key expires, each warning once, in Spanish, with the greeting of every other e-mail."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from onboarding import services, tasks
from onboarding.models import FirmKey, Representative
from onboarding.services.firm_keys import firm_key_destroy, firm_key_store
from tests.onboarding.test_firm_keys import bundle_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def firm_key(cast, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    representative = Representative.objects.get(tenant=cast.tenant_a)
    key = firm_key_store(representative=representative, bundle=bundle_for("13322924-8"), uploaded_by=None)
    cast.admin_a.first_name = "Carla"
    cast.admin_a.save()
    return key


def run(now, capture):  # type: ignore[no-untyped-def]
    with capture(execute=True):
        return services.firm_keys_expiry_warn(now=now)


def test_admins_are_warned_30_then_7_days_before_each_once(cast, firm_key, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    expires = firm_key.not_after
    # 40 days before: nothing yet.
    assert run(expires - timedelta(days=40), django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []
    # 30 days before: the owner and the admin (never staff), once.
    assert run(expires - timedelta(days=29, hours=23), django_capture_on_commit_callbacks) == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@a.cl", "dueno@a.cl"]
    first = next(m for m in mail.outbox if m.to == ["admin@a.cl"])
    assert first.body.startswith("Hola Carla:\n")
    assert "vence en 30 días" in first.subject and "ALEX BRITO MARDONES" in first.body
    assert "/estudio/pyme/llaves/" in first.body
    assert run(expires - timedelta(days=20), django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 2
    # 7 days before: the second warning, once.
    assert run(expires - timedelta(days=6, hours=12), django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 4 and "vence en 7 días" in mail.outbox[-1].subject
    assert run(expires - timedelta(days=2), django_capture_on_commit_callbacks) == 0
    # Expired: nothing more.
    assert run(expires + timedelta(days=1), django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 4
    firm_key.refresh_from_db()
    assert firm_key.expiry_warned_days == 7


def test_a_key_first_seen_within_7_days_gets_only_the_7_day_warning(cast, firm_key, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    assert run(firm_key.not_after - timedelta(days=5), django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 2 and all("vence en 5 días" in m.subject for m in mail.outbox)
    assert run(firm_key.not_after - timedelta(days=4), django_capture_on_commit_callbacks) == 0


def test_deleted_keys_and_other_tenants_admins_get_nothing(cast, firm_key, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    firm_key_destroy(firm_key=firm_key, reason="deleted", actor=None)
    assert run(firm_key.not_after - timedelta(days=10), django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []


def test_a_renewed_key_is_warned_again_when_it_nears_its_own_expiry(cast, firm_key, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    run(firm_key.not_after - timedelta(days=6), django_capture_on_commit_callbacks)
    renewed = firm_key_store(
        representative=firm_key.representative, bundle=bundle_for("13322924-8", "CD"), uploaded_by=None
    )
    assert renewed.expiry_warned_days is None
    outbox = len(mail.outbox)
    assert run(renewed.not_after - timedelta(days=25), django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == outbox + 2
    assert FirmKey.objects.get(pk=renewed.pk).expiry_warned_days == 30


def test_the_task_is_scheduled_daily(settings) -> None:  # type: ignore[no-untyped-def]
    entry = settings.CELERY_BEAT_SCHEDULE["warn-expiring-firm-keys"]
    assert entry["task"] == "onboarding.tasks.firm_keys_expiry_warn" and entry["schedule"] == 86400.0
    assert tasks.firm_keys_expiry_warn.name == entry["task"]
