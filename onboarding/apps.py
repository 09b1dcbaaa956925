"""App config: validates the master keys at start so a bad key fails before serving anything."""
from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "onboarding"
    verbose_name = "Autoriza"

    def ready(self) -> None:
        from onboarding import crypto

        # Raises ImproperlyConfigured for a missing or malformed AUTORIZA_MASTER_KEYS: web server,
        # worker and management commands all refuse to start rather than fail at the first upload.
        crypto.get_keyring()
