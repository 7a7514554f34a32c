"""Sends work to the workers by task name, so that services enqueue without importing the tasks that call them."""

from __future__ import annotations

from alliance.celery import app

RUN_JOB = "inference.tasks.run_job"
RUN_TUNING_JOB = "inference.tasks.run_tuning_job"
DELIVER_WEBHOOK = "inference.tasks.deliver_webhook"


def send(task: str, *args: str, queue: str | None = None) -> None:
    """One message on the broker; raises when the broker cannot take it (callers decide what a failure means)."""
    app.send_task(task, args=list(args), queue=queue, retry=False)
