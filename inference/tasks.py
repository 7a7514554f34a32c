"""Celery tasks: thin wrappers that load by id and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from inference import dispatch, services, streams
from inference.services.batches import batch_jobs_enqueue, batches_expire
from inference.services.tuning_runs import tuning_job_run, tuning_jobs_reap

logger = logging.getLogger(__name__)


def _limits(task: str) -> dict[str, float]:
    """The time limits of a task that always runs on one family's queue (run_job's come with each message:
    inference.dispatch.send sends them for the job's family)."""
    soft, hard = dispatch.time_limits(task)
    return {"soft_time_limit": soft, "time_limit": hard}


@shared_task(name=dispatch.RUN_JOB, acks_late=True, reject_on_worker_lost=True)
def run_job(job_id: str) -> list[str]:
    # At its soft time limit the jobs fail ("time_limit") and are refunded. The batch's ids are the task's return
    # value for the operations hooks (monitoring.signals: metrics and log lines per job); no result is stored.
    return [str(job.pk) for job in services.job_execute(job_id)]


@shared_task(name="inference.tasks.reap_stale_jobs", **_limits("inference.tasks.reap_stale_jobs"))
def reap_stale_jobs() -> dict[str, int]:  # and tuning jobs: stopped runs, queued ones the broker lost
    counts = {
        **services.jobs_reap(),
        **tuning_jobs_reap(),
        "stream_events_pruned": streams.prune(),
        "batches_expired": batches_expire(),
    }
    if any(counts.values()):
        logger.warning("reaper: %s", counts)
    return counts


@shared_task(name=dispatch.ENQUEUE_BATCH, acks_late=True, **_limits(dispatch.ENQUEUE_BATCH))
def enqueue_batch(batch_id: str) -> int:
    # Sends the messages of a batch's queued jobs, off the request that accepted it (a resend is harmless).
    return batch_jobs_enqueue(batch_id)


@shared_task(
    name=dispatch.DELIVER_WEBHOOK, bind=True, acks_late=True, max_retries=None, **_limits(dispatch.DELIVER_WEBHOOK)
)
def deliver_webhook(self, job_id: str) -> None:
    attempt = self.request.retries + 1
    if services.webhook_deliver(job_id=job_id, attempt=attempt):
        return
    if attempt > settings.ALLIANCE_WEBHOOK_MAX_RETRIES:
        logger.warning("webhook of job %s not delivered after %d attempts", job_id, attempt)
        return
    raise self.retry(countdown=min(300, 2 ** (attempt - 1)))


@shared_task(
    name=dispatch.RUN_TUNING_JOB, acks_late=True, reject_on_worker_lost=True, **_limits(dispatch.RUN_TUNING_JOB)
)
def run_tuning_job(job_id: str) -> None:
    tuning_job_run(job_id)
