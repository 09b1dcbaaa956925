"""The one settings module: embedded defaults, switching to real services, production hardening.

Each case runs Django in a subprocess with a controlled environment, as a deployment would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = "k1:" + "A" * 43 + "="
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-key-for-checks-" + "y" * 20,
    "DJANGO_ALLOWED_HOSTS": "autoriza.example.cl",
    "AUTORIZA_MASTER_KEYS": KEYS,
}
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'db_name': str(s.DATABASES['default']['NAME']), "
    "'db_options': s.DATABASES['default'].get('OPTIONS', {}), 'broker': s.CELERY_BROKER_URL, "
    "'acks_late': s.CELERY_TASK_ACKS_LATE, 'prefetch': s.CELERY_WORKER_PREFETCH_MULTIPLIER, "
    "'reject_lost': s.CELERY_TASK_REJECT_ON_WORKER_LOST, 'secure_cookie': s.SESSION_COOKIE_SECURE}))"
)


def run(code_or_args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment (no developer .env values leak in: every variable the test cares about is
    # set explicitly, and the .env in the checkout is read with overwrite=False).
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUTORIZA_", "DATABASE_", "REDIS_"))}
    full = {**base, "AUTORIZA_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "portal.settings", **env}
    return subprocess.run([sys.executable, *code_or_args], check=False, cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)


def probe(env: dict[str, str], tmp_path: Path) -> dict[str, object]:
    result = run(["-c", PROBE], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_embedded_default_needs_no_server(tmp_path: Path) -> None:
    values = probe({**PRODUCTION, "DATABASE_URL": "", "REDIS_URL": ""}, tmp_path)
    assert values["db"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "autoriza.sqlite3")
    options = values["db_options"]
    assert "journal_mode=WAL" in options["init_command"]
    assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] >= 5
    assert values["broker"] == "filesystem://localhost/"
    assert values["acks_late"] and values["reject_lost"] and values["prefetch"] == 1


def test_database_url_and_redis_url_switch_to_real_services(tmp_path: Path) -> None:
    values = probe(
        {**PRODUCTION, "DATABASE_URL": "postgres://u@db.example:5432/autoriza", "REDIS_URL": "redis://cache:6379/0"},
        tmp_path,
    )
    assert values["db"] == "django.db.backends.postgresql" and values["db_name"] == "autoriza"
    assert values["broker"] == "redis://cache:6379/0"


def test_production_settings_pass_check_deploy_with_no_warnings(tmp_path: Path) -> None:
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert probe(PRODUCTION, tmp_path)["secure_cookie"] is True


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, 0),
        ({"DJANGO_BEHIND_PROXY": "1"}, 1),
        ({"DJANGO_BEHIND_PROXY": "1", "DJANGO_TRUSTED_PROXY_COUNT": "2"}, 2),
        ({"DJANGO_TRUSTED_PROXY_COUNT": "2"}, 0),  # X-Forwarded-For is trusted only behind a proxy
    ],
    ids=["no-proxy", "behind-proxy", "two-proxies", "count-without-proxy"],
)
def test_trusted_proxy_count_follows_behind_proxy(env: dict[str, str], expected: int, tmp_path: Path) -> None:
    code = "import django; django.setup(); from django.conf import settings as s; print(s.AUTORIZA_TRUSTED_PROXY_COUNT)"
    result = run(["-c", code], {**PRODUCTION, **env}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(expected)


def test_a_negative_trusted_proxy_count_fails_at_start(tmp_path: Path) -> None:
    result = run(["manage.py", "check"], {**PRODUCTION, "DJANGO_BEHIND_PROXY": "1", "DJANGO_TRUSTED_PROXY_COUNT": "-1"}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_TRUSTED_PROXY_COUNT must be 0 or more." in result.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ({"AUTORIZA_MASTER_KEYS": ""}, "AUTORIZA_MASTER_KEYS is empty"),
        ({"AUTORIZA_MASTER_KEYS": "k1:short"}, "AUTORIZA_MASTER_KEYS"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set"),
    ],
    ids=["missing-master-key", "malformed-master-key", "missing-secret-key"],
)
def test_missing_or_wrong_secrets_fail_loudly_at_start(tmp_path: Path, override: dict[str, str], message: str) -> None:
    result = run(["manage.py", "check"], {**PRODUCTION, **override}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


@pytest.mark.parametrize(
    ("redis_url", "engine", "cache_backend"),
    [
        ("", "onboarding.sessions.db", "django.core.cache.backends.filebased.FileBasedCache"),
        ("redis://cache:6379/0", "onboarding.sessions.cached_db", "onboarding.cache.RedisCache"),
    ],
    ids=["embedded", "redis"],
)
def test_sessions_and_cache_follow_redis_url(tmp_path: Path, redis_url: str, engine: str, cache_backend: str) -> None:
    """Sessions are read from the cache only when the cache is Redis (with the file cache it was no
    faster); both engines keep Django's session table, and the Redis backend is Django's."""
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "from importlib import import_module; import_module(s.SESSION_ENGINE).SessionStore; "
        "from django.core.cache import caches; cache = caches['default']; "
        "print(json.dumps({'engine': s.SESSION_ENGINE, 'cache': s.CACHES['default']['BACKEND'], "
        "'cache_class': type(cache).__module__ + '.' + type(cache).__name__}))"
    )
    result = run(["-c", code], {**PRODUCTION, "DATABASE_URL": "", "REDIS_URL": redis_url}, tmp_path)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == engine
    assert values["cache"] == values["cache_class"] == cache_backend
