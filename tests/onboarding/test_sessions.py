"""The session engines (onboarding.sessions): Django's database sessions read with one precompiled
statement, alone (`db`) or behind the cache (`cached_db`); same table and format as Django's."""
from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
from django.contrib.sessions.backends.db import SessionStore as DjangoDbStore
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.utils import timezone

ENGINES = ["onboarding.sessions.db", "onboarding.sessions.cached_db"]


def store_class(engine: str) -> type:
    return import_module(engine).SessionStore


def forget_cached(session_key: str) -> None:
    """Drop a session's cached copy only (never `cache.clear()`: with Redis that flushes a shared db)."""
    cache.delete(store_class("onboarding.sessions.cached_db")(session_key).cache_key)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_saved_session_loads_back(engine: str) -> None:
    Store = store_class(engine)
    session = Store()
    session["answer"] = 42
    session.save()
    loaded = Store(session.session_key)
    assert loaded["answer"] == 42 and loaded.session_key == session.session_key


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_and_expired_sessions_are_empty_and_lose_their_key(engine: str) -> None:
    Store = store_class(engine)
    unknown = Store("x" * 32)
    assert unknown.load() == {} and unknown.session_key is None
    session = Store()
    session["answer"] = 42
    session.save()
    Session.objects.filter(session_key=session.session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    forget_cached(session.session_key)  # cached_db: the cached copy would live until its own expiry
    expired = Store(session.session_key)
    assert expired.load() == {} and expired.session_key is None


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ENGINES)
def test_sessions_written_by_djangos_engine_still_load(engine: str) -> None:
    """Switching engines logs nobody out: the table and the encoding are Django's."""
    django_session = DjangoDbStore()
    django_session["_auth_user_id"] = "7"
    django_session.save()
    assert store_class(engine)(django_session.session_key)["_auth_user_id"] == "7"
    ours = store_class(engine)()
    ours["x"] = "y"
    ours.save()
    assert DjangoDbStore(ours.session_key)["x"] == "y"


@pytest.mark.django_db
def test_cached_session_survives_a_cache_flush_with_its_expiry() -> None:
    Store = store_class("onboarding.sessions.cached_db")
    session = Store()
    session["answer"] = 42
    session.set_expiry(3600)
    session.save()
    forget_cached(session.session_key)
    loaded = Store(session.session_key)
    assert loaded["answer"] == 42
    # Re-cached from the row: its expiry came back as an aware datetime (SQLite gives naive ones).
    assert 3500 < loaded.get_expiry_age() <= 3600
    assert cache.get(loaded.cache_key) == {"answer": 42, "_session_expiry": 3600}


@pytest.mark.django_db
def test_db_load_builds_no_orm_query(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The point of the engine: the row is read by a precompiled statement, not `Session.objects`."""
    Store = store_class("onboarding.sessions.db")
    session = Store()
    session["answer"] = 42
    session.save()

    def orm_used(*args: object, **kwargs: object) -> None:
        raise AssertionError("the session was loaded through the ORM")

    monkeypatch.setattr(type(Session.objects), "get", orm_used)
    monkeypatch.setattr(type(Session.objects), "get_queryset", orm_used)
    assert Store(session.session_key)["answer"] == 42
