"""Sends work to the workers by task name, so that services enqueue without importing the tasks that call them."""

from __future__ import annotations

from django.conf import settings

from alliance.celery import app

RUN_JOB = "inference.tasks.run_job"
RUN_TUNING_JOB = "inference.tasks.run_tuning_job"
DELIVER_WEBHOOK = "inference.tasks.deliver_webhook"


def time_limits(task: str, queue: str | None = None) -> tuple[float, float]:
    """(soft, hard) seconds for one run of `task` on `queue` (else its route's queue): its family's
    ALLIANCE_TASK_TIME_LIMITS."""
    family = queue or settings.CELERY_TASK_ROUTES.get(task, {}).get("queue") or settings.CELERY_TASK_DEFAULT_QUEUE
    limits = settings.ALLIANCE_TASK_TIME_LIMITS
    return limits.get(family, limits["default"])


def send(task: str, *args: str, queue: str | None = None) -> None:
    """One message on the broker, carrying its family's time limits; raises when the broker cannot take it (callers
    decide what a failure means)."""
    soft, hard = time_limits(task, queue)
    app.send_task(task, args=list(args), queue=queue, retry=False, soft_time_limit=soft, time_limit=hard)
