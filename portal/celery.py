"""The Celery application: configuration comes from Django settings (`CELERY_*`)."""
import os

from celery import Celery
from celery.signals import celeryd_after_setup, task_postrun, task_prerun

from portal.logging import job_context_clear, job_context_set

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("autoriza")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A worker logs what is printed to its stdout as `celery.redirected`, WARNING by default; the console
# e-mail backend (the default EMAIL_URL) prints every e-mail there, which then read as errors.
app.conf.worker_redirect_stdouts_level = "INFO"
app.autodiscover_tasks()

# The task whose log lines carry the job id and the firm's slug (portal.logging), by name so that this
# module imports nothing of the domain at start.
JOB_TASK_NAME = "onboarding.tasks.enrollment_job_run"


@task_prerun.connect
def _job_log_context_start(sender: object = None, args: object = None, kwargs: object = None, **_: object) -> None:
    """Stamp the job id (the task's only argument) and the firm's slug on every line logged while the
    job runs. Celery sends task_prerun and task_postrun in the thread (or process) that runs the task."""
    if getattr(sender, "name", None) != JOB_TASK_NAME:
        return
    job_id = str((kwargs or {}).get("job_id") or (args[0] if args else ""))  # type: ignore[union-attr,index]
    if not job_id:
        return
    try:
        # Imported on use: this module loads with the settings, before Django's apps are ready.
        from onboarding.models import EnrollmentJob

        tenant = EnrollmentJob.objects.filter(pk=job_id).values_list("tenant__slug", flat=True).first() or ""
    except Exception:  # noqa: BLE001 - a log label must never keep a job from running
        tenant = ""
    job_context_set(job_id=job_id, tenant=tenant)


@task_postrun.connect
def _job_log_context_end(sender: object = None, **_: object) -> None:
    """The lines a worker thread logs after its job carry no job."""
    if getattr(sender, "name", None) != JOB_TASK_NAME:
        return
    job_context_clear()

@celeryd_after_setup.connect
def _consume_background_lane(sender: str, instance: object, **kwargs: object) -> None:
    """A worker of the live browser queue serves its background lane too (same slots, after it).

    Every `-Q browser` worker (compose, the demo, the tests' workers) thus runs background jobs
    without naming their queue; the order between the two is the broker's (portal/broker.py).
    """
    # Imported on use: this module loads with the settings, before Django's apps are ready.
    from onboarding.services.jobs.lanes import background_queue, live_queue

    queues = instance.app.amqp.queues  # type: ignore[attr-defined]
    live = live_queue()
    if live in queues.consume_from:
        queues.select_add(background_queue(live))
