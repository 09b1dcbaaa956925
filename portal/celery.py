"""The Celery application: configuration comes from Django settings (`CELERY_*`)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("autoriza")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A worker logs what is printed to its stdout as `celery.redirected`, WARNING by default; the console
# e-mail backend (the default EMAIL_URL) prints every e-mail there, which then read as errors.
app.conf.worker_redirect_stdouts_level = "INFO"
app.autodiscover_tasks()
