"""`manage.py demo_setup`: create or reuse the demo firm and its users (idempotent)."""
from django.core.management.base import BaseCommand

from onboarding import services


class Command(BaseCommand):
    help = "Crea (o reutiliza) el estudio de demostración PyME Contadores y sus usuarios."

    def handle(self, *args: object, **options: object) -> None:
        tenant = services.demo_tenant_ensure()
        self.stdout.write(f"Estudio de demostración: {tenant.name} (/{tenant.slug}/)")
