"""The demo firm "PyME Contadores": its representative and its users, for `manage.py demo` and the
test suite."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from onboarding.models import AuditAction, Membership, Role, SiiEnvironment, Tenant
from onboarding.services.audit import audit_record
from onboarding.services.tenants import membership_add, representative_add

__all__ = ["DEMO_PASSWORD", "DEMO_TENANT_SLUG", "DEMO_USERS", "demo_tenant_ensure"]

DEMO_TENANT_SLUG = "pyme-contadores"
DEMO_PASSWORD = "autoriza-demo"
DEMO_USERS = (
    ("dueno@pymecontadores.cl", "Dueña", Role.OWNER),
    ("admin@pymecontadores.cl", "Administrador", Role.ADMIN),
    ("personal@pymecontadores.cl", "Personal", Role.STAFF),
)


def demo_tenant_ensure(*, sii_environment: str = SiiEnvironment.SANDBOX) -> Tenant:
    """Create (or reuse) the demo firm "PyME Contadores" with its representative and its users.

    Representative ALEX BRITO MARDONES 13.322.924-8 with Usuario Administrador, Firmar Documentos and
    Registro, as in SII's guide. Users (password DEMO_PASSWORD): an owner, an admin and a staff
    member. Running it again changes nothing that exists.
    """
    User = get_user_model()
    with transaction.atomic():
        tenant, created = Tenant.objects.get_or_create(
            slug=DEMO_TENANT_SLUG,
            defaults={
                "name": "PyME Contadores",
                "sii_environment": sii_environment,
                "grant_admin": True,
                "grant_sign": True,
                "grant_registry": True,
                "notification_emails": "avisos@pymecontadores.cl",
            },
        )
        if not tenant.representatives.exists():
            representative_add(tenant=tenant, rut="13.322.924-8", name="ALEX BRITO MARDONES")
        for email, first_name, role in DEMO_USERS:
            user = User.objects.filter(username=email).first()
            if user is None:
                user = User.objects.create_user(username=email, email=email, password=DEMO_PASSWORD, first_name=first_name)
            if not Membership.objects.filter(tenant=tenant, user=user).exists():
                membership_add(tenant=tenant, user=user, role=role)
        if created:
            audit_record(tenant=tenant, actor=None, action=AuditAction.SETTINGS, summary="Estudio de demostración creado")
    return tenant
