"""Enrollment jobs, for every kind (authorize, revoke, replace):

- `lifecycle`: create, claim, progress, succeed, fail (retry or for good): each one compare-and-set;
- `outcomes`: what a success writes per kind (`JOB_KIND_OUTCOMES`), and `JobFailure`;
- `execute`: `enrollment_job_execute`, what a worker runs for one job;
- `bot`: which `sii_bot` call and request per kind, and what its failures mean;
- `lanes`: live or background, each lane's broker queue, and sending a job's id to it;
- `leases`: the cluster-wide SII session limits (per SII host, per certificate holder);
- `dispatch`: which QUEUED jobs are sent, and when (live first, background fed fairly by tenant);
- `recovery`: reap, take over and recover jobs of dead workers, worker identity;
- `emails`: the emails about a finished job.
"""
from onboarding.services.jobs.bot import (
    BOT_CALLS,
    BotCall,
    job_bot_call,
    job_failure_from_bot,
    sii_settings_for,
)
from onboarding.services.jobs.dispatch import enrollment_jobs_dispatch, enrollment_jobs_feed
from onboarding.services.jobs.emails import FinishedEmail, change_job_finished_emails, job_finished_emails
from onboarding.services.jobs.execute import enrollment_job_execute
from onboarding.services.jobs.lanes import ENROLLMENT_JOB_RUN_TASK, enrollment_job_send
from onboarding.services.jobs.lifecycle import (
    enrollment_job_claim,
    enrollment_job_create,
    enrollment_job_enqueue,
    enrollment_job_fail,
    enrollment_job_fail_lost,
    enrollment_job_progress,
    enrollment_job_rerun,
    enrollment_job_succeed,
    enrollment_job_wait,
)
from onboarding.services.jobs.outcomes import JOB_KIND_OUTCOMES, JobFailure, JobKindOutcome
from onboarding.services.jobs.recovery import (
    enrollment_job_take_over,
    enrollment_jobs_reap,
    enrollment_jobs_recover_orphans,
    worker_identity,
    worker_is_dead,
)

__all__ = [
    "BOT_CALLS",
    "ENROLLMENT_JOB_RUN_TASK",
    "JOB_KIND_OUTCOMES",
    "BotCall",
    "FinishedEmail",
    "JobFailure",
    "JobKindOutcome",
    "change_job_finished_emails",
    "enrollment_job_claim",
    "enrollment_job_create",
    "enrollment_job_enqueue",
    "enrollment_job_execute",
    "enrollment_job_fail",
    "enrollment_job_fail_lost",
    "enrollment_job_progress",
    "enrollment_job_rerun",
    "enrollment_job_send",
    "enrollment_job_succeed",
    "enrollment_job_take_over",
    "enrollment_job_wait",
    "enrollment_jobs_dispatch",
    "enrollment_jobs_feed",
    "enrollment_jobs_reap",
    "enrollment_jobs_recover_orphans",
    "job_bot_call",
    "job_failure_from_bot",
    "job_finished_emails",
    "sii_settings_for",
    "worker_identity",
    "worker_is_dead",
]
