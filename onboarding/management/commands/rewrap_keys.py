"""`manage.py rewrap_keys`: after adding a new master key first in AUTORIZA_MASTER_KEYS, re-wrap
every stored data key with it, so the old master key can then be removed."""
from typing import Any

from django.core.management.base import BaseCommand

from onboarding import crypto, services
from onboarding.services.firm_keys import firm_keys_rewrap


class Command(BaseCommand):
    help = "Re-cifra las claves de datos guardadas con la clave maestra activa (rotación de claves)."

    def handle(self, *args: Any, **options: Any) -> None:
        ring = crypto.get_keyring()
        changed = services.certificates_rewrap() + firm_keys_rewrap()
        self.stdout.write(f"{changed} registro(s) re-cifrado(s) con la clave maestra «{ring.active_id}».")
