"""Which lane a job takes (live or background) and the broker queue of each lane.

A new kind of job only declares its lane in `JOB_KIND_LANES`: LIVE when someone watches it happen
(a client's authorization), BACKGROUND when nobody does (e.g. scheduled access checks). A creator
may still choose: staff re-runs and bulk changes are BACKGROUND whatever their kind, and an automatic
retry moves its job to BACKGROUND (lifecycle). The dispatcher treats the lanes differently
(`dispatch.enrollment_jobs_dispatch`; docs/architecture.md, "Fair scheduling").
"""
from __future__ import annotations

from celery import current_app
from django.conf import settings

from onboarding.models import JobKind, JobLane

__all__ = [
    "BACKGROUND_SUFFIX",
    "ENROLLMENT_JOB_RUN_TASK",
    "JOB_KIND_LANES",
    "background_queue",
    "enrollment_job_send",
    "job_lane_for",
    "live_queue",
]

# The Celery task that runs one job. `onboarding.tasks` registers it (imported by the app config) and
# calls these services; services find it by name instead of importing the tasks module back.
ENROLLMENT_JOB_RUN_TASK = "onboarding.tasks.enrollment_job_run"
BACKGROUND_SUFFIX = "-background"

JOB_KIND_LANES: dict[str, str] = {
    JobKind.AUTHORIZE: JobLane.LIVE,
    JobKind.REVOKE: JobLane.LIVE,
    JobKind.REPLACE: JobLane.LIVE,
}


def job_lane_for(*, kind: str, lane: str | None = None) -> str:
    """The lane of a new job: `lane` when its creator chose one, else its kind's."""
    return lane or JOB_KIND_LANES.get(kind, JobLane.BACKGROUND)


def live_queue() -> str:
    """The queue live jobs are routed to (the browser queue; the tests route it to a queue of their own)."""
    routes = current_app.conf.task_routes
    if isinstance(routes, dict):
        route = routes.get(ENROLLMENT_JOB_RUN_TASK) or {}
        if route.get("queue"):
            return str(route["queue"])
    return settings.AUTORIZA_BROWSER_QUEUE


def background_queue(live: str | None = None) -> str:
    """The background lane's queue: the live queue's name + "-background". It sorts right after the
    live queue, which is the order the broker serves a worker's queues in (portal/broker.py)."""
    return (live or live_queue()) + BACKGROUND_SUFFIX


def enrollment_job_send(*, job_id: str, lane: str = JobLane.LIVE) -> None:
    """Send a job's id (never anything secret) to its lane's queue now: the browser queue for a live
    job, its background lane for a background one."""
    task = current_app.tasks[ENROLLMENT_JOB_RUN_TASK]
    if lane == JobLane.BACKGROUND:
        task.apply_async((job_id,), queue=background_queue())
    else:
        task.delay(job_id)
