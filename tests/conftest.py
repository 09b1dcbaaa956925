"""Shared fixtures: a cast of users across two tenants, fixed master keys, and the sandbox plugin.

The cast (healthchecks-style): in tenant A ("PyME Contadores") an owner, an admin, a staff member and
a client who owns a company; in tenant B ("Otro Estudio") a staff member who must never see A's data.
"""
from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

# The sandbox's pytest fixtures (`sandbox_pki_dir`, `sandbox`, `sandbox_client`),
# and the real-worker fixtures (`plain_http`, `broker`, `start_worker`, `worker`).
pytest_plugins = ["sii_sandbox.testing", "tests.fixtures.worker"]

TEST_MASTER_KEYS = "t1:" + base64.b64encode(b"\x11" * 32).decode() + ",t0:" + base64.b64encode(b"\x22" * 32).decode()


@pytest.fixture(autouse=True)
def _fixed_master_keys(settings):  # type: ignore[no-untyped-def]
    """Every test seals with known keys (t1 active, t0 old), whatever the developer's .env holds."""
    settings.AUTORIZA_MASTER_KEYS = TEST_MASTER_KEYS
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # PBKDF2 at production strength costs ~0.3 s a user; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_throttle_counts_carried_over() -> None:
    """Each test starts with no login or reset failures counted.

    The counters live in the shared cache, which outlives a test and a whole run (Redis in CI, a file
    cache in the run's folder otherwise): five resets from 127.0.0.1 in one run locked the address for
    the next run within 15 minutes, and a test that expected an e-mail got none. Only the throttle's
    keys are deleted: with Redis the cache's database also holds the broker's queues.
    """
    from django.core.cache import cache

    client_getter = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client_getter is None:  # the file cache of a run without Redis: nothing else lives in it
        cache.clear()
        return
    redis = client_getter(write=True)
    keys = list(redis.scan_iter(match=cache.make_key("*-fail:*"), count=1000))
    if keys:
        redis.delete(*keys)


@dataclass
class Cast:
    tenant_a: object
    tenant_b: object
    owner_a: object
    admin_a: object
    staff_a: object
    client_a: object
    company_a: object
    staff_b: object
    company_b: object
    password: str = "contraseña-de-prueba-123"


@pytest.fixture
def cast(db) -> Cast:  # type: ignore[no-untyped-def]
    """Two tenants and their people (see module docstring)."""
    from django.contrib.auth import get_user_model

    from onboarding import services
    from onboarding.models import Role, SiiEnvironment

    User = get_user_model()
    password = Cast.password

    def user(email: str) -> object:
        return User.objects.create_user(username=email, email=email, password=password)

    tenant_a = services.tenant_create(name="PyME Contadores", slug="pyme", sii_environment=SiiEnvironment.SANDBOX)
    services.representative_add(tenant=tenant_a, rut="13.322.924-8", name="Alex Brito Mardones")
    tenant_b = services.tenant_create(name="Otro Estudio", slug="otro", sii_environment=SiiEnvironment.SANDBOX)
    services.representative_add(tenant=tenant_b, rut="12.531.909-2", name="Bea Rivas")
    owner_a, admin_a, staff_a = user("dueno@a.cl"), user("admin@a.cl"), user("staff@a.cl")
    services.membership_add(tenant=tenant_a, user=owner_a, role=Role.OWNER)
    services.membership_add(tenant=tenant_a, user=admin_a, role=Role.ADMIN)
    services.membership_add(tenant=tenant_a, user=staff_a, role=Role.STAFF)
    client_a = user("cliente@empresa.cl")
    company_a = services.client_company_create(
        tenant=tenant_a, rut="76.086.428-5", legal_name="Comercial Demo SpA", owner=client_a,
        owner_name="María Soto", owner_email="cliente@empresa.cl",
    )
    staff_b = user("staff@b.cl")
    services.membership_add(tenant=tenant_b, user=staff_b, role=Role.STAFF)
    company_b = services.client_company_create(tenant=tenant_b, rut="77.879.240-0", legal_name="Ferretería B Ltda.")
    return Cast(tenant_a, tenant_b, owner_a, admin_a, staff_a, client_a, company_a, staff_b, company_b)


@pytest.fixture(scope="session")
def certificate_bundle():  # type: ignore[no-untyped-def]
    """An opened, valid, legacy-encrypted test certificate (holder 13.322.924-8), made once."""
    from sii_bot.certificates import open_pkcs12
    from tests.sii_bot.bot_pfx_factory import CertSpec, make_pfx

    return open_pkcs12(make_pfx(CertSpec(cn="MARIA JOSE SOTO", san_rut="12531909-2"), password="secreto"), "secreto")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """In a parallel run narrowed by the caller (`make test PYTEST_ARGS=…`; the whole suite runs the
    `faults` tests in a part of their own, scripts/test.sh), the `faults` tests share one xdist group:
    they run one after another in one process (marked before xdist reads the groups), and last (after
    pytest-django's own ordering), so their timings are taken once the rest is done."""
    for item in items:
        if item.get_closest_marker("faults") is not None:
            item.add_marker(pytest.mark.xdist_group("faults"))
    yield
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)  # stable: the rest keep their order
