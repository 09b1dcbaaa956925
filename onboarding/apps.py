"""App config: validates the master keys at start so a bad key fails before serving anything, and
registers the Celery tasks (services send jobs to them by name)."""
from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "onboarding"
    verbose_name = "Autoriza"

    def ready(self) -> None:
        # Imported here, not at the top: Django loads this module before the app registry is ready,
        # and `tasks` imports the services, which import the models.
        from onboarding import crypto

        # Raises ImproperlyConfigured for a missing or malformed AUTORIZA_MASTER_KEYS: web server,
        # worker and management commands all refuse to start rather than fail at the first upload.
        crypto.get_keyring()
        # Registers the tasks with the Celery app in every process (web, worker, commands):
        # `services.jobs` looks the job task up by name instead of importing the tasks module, which
        # imports the services.
        from onboarding import tasks  # noqa: F401
