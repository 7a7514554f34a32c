"""Sends work to the workers by task name, so that services enqueue without importing the tasks that call them."""

from __future__ import annotations

from django.conf import settings

from alliance.celery import app

RUN_JOB = "inference.tasks.run_job"
RUN_TUNING_JOB = "inference.tasks.run_tuning_job"
DELIVER_WEBHOOK = "inference.tasks.deliver_webhook"
ENQUEUE_BATCH = "inference.tasks.enqueue_batch"


def time_limits(task: str, queue: str | None = None) -> tuple[float, float]:
    """(soft, hard) seconds for one run of `task` on `queue` (else its route's queue): its family's
    ALLIANCE_TASK_TIME_LIMITS."""
    family = queue or settings.CELERY_TASK_ROUTES.get(task, {}).get("queue") or settings.CELERY_TASK_DEFAULT_QUEUE
    limits = settings.ALLIANCE_TASK_TIME_LIMITS
    return limits.get(family, limits["default"])


def model_queue(family: str, model: str) -> str:
    """The broker queue of one registry model's jobs. A worker of `family` consumes the queues of the models it
    hosts (inference.worker), so a job waits for a worker that hosts its model instead of reaching one that does not."""
    return f"{family}.{model}"


def send(task: str, *args: str, queue: str | None = None, model: str | None = None) -> None:
    """One message on the broker, carrying its family's time limits; raises when the broker cannot take it (callers
    decide what a failure means). With `model`, the message goes to that model's queue within the family `queue`."""
    soft, hard = time_limits(task, queue)
    route = model_queue(queue, model) if queue and model else queue
    app.send_task(task, args=list(args), queue=route, retry=False, soft_time_limit=soft, time_limit=hard)
