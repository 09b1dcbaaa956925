"""`manage.py demo_setup`: create or reuse the demo firm, its users and the demo platform administrator
(idempotent)."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from onboarding import services

# The demo's way into /plataforma/ (Django's admin); production creates its own with `createsuperuser`.
DEMO_PLATFORM_EMAIL = "plataforma@autoriza.demo"


def demo_platform_admin_ensure() -> None:
    """Create the demo platform administrator (a superuser, password DEMO_PASSWORD) if missing.

    An existing account is left as it is: a password changed during an evaluation stays changed.
    """
    User = get_user_model()
    if not User.objects.filter(username=DEMO_PLATFORM_EMAIL).exists():
        User.objects.create_superuser(
            username=DEMO_PLATFORM_EMAIL, email=DEMO_PLATFORM_EMAIL, password=services.DEMO_PASSWORD,
            first_name="Plataforma",
        )


class Command(BaseCommand):
    help = (
        "Crea (o reutiliza) el estudio de demostración PyME Contadores, sus usuarios y el administrador "
        "de la plataforma de demostración."
    )

    def handle(self, *args: object, **options: object) -> None:
        tenant = services.demo_tenant_ensure()
        demo_platform_admin_ensure()
        self.stdout.write(f"Estudio de demostración: {tenant.name} (/{tenant.slug}/)")
        self.stdout.write(f"Administración de la plataforma: {DEMO_PLATFORM_EMAIL} (/plataforma/)")
