"""The Celery application: configuration comes from Django settings (`CELERY_*`)."""
import os

from celery import Celery
from celery.signals import celeryd_after_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("autoriza")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A worker logs what is printed to its stdout as `celery.redirected`, WARNING by default; the console
# e-mail backend (the default EMAIL_URL) prints every e-mail there, which then read as errors.
app.conf.worker_redirect_stdouts_level = "INFO"
app.autodiscover_tasks()


@celeryd_after_setup.connect
def _consume_background_lane(sender: str, instance: object, **kwargs: object) -> None:
    """A worker of the live browser queue serves its background lane too (same slots, after it).

    Every `-Q browser` worker (compose, the demo, the tests' workers) thus runs background jobs
    without naming their queue; the order between the two is the broker's (portal/broker.py).
    """
    from onboarding.services.jobs.lanes import background_queue, live_queue

    queues = instance.app.amqp.queues  # type: ignore[attr-defined]
    live = live_queue()
    if live in queues.consume_from:
        queues.select_add(background_queue(live))
