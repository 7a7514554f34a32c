"""Where the operations code hooks into the platform: Django model signals (a job committed, a webhook attempt
recorded) and Celery signals (a task published with the request id in its headers; a task run; a worker started
or stopped). Nothing here changes what the platform does; a failure here is logged and never fails the work."""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from typing import Any

from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from inference.models import Batch, Job, WebhookDelivery
from inference.services.batches import batch_accepted
from monitoring import heartbeats, job_events, logs, metrics

logger = logging.getLogger(__name__)

RUN_JOB = "inference.tasks.run_job"
RUN_TUNING_JOB = "inference.tasks.run_tuning_job"
REAP = "inference.tasks.reap_stale_jobs"


def _never_raises(handler):
    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception:  # operations must never fail the work they observe
            logger.warning("operations hook %s failed", handler.__name__, exc_info=True)

    return wrapper


@receiver(post_save, sender=Job, dispatch_uid="monitoring.job_created")
def _job_created(sender: type[Job], instance: Job, created: bool, **_: Any) -> None:
    if created:
        request_id = logs.request_id_var.get()

        def committed() -> None:
            token = logs.request_id_var.set(request_id)
            try:
                _never_raises(job_events.job_submitted)(instance)
            finally:
                logs.request_id_var.reset(token)

        transaction.on_commit(committed)


@receiver(batch_accepted, sender=Batch, dispatch_uid="monitoring.batch_accepted")
def _batch_accepted(sender: type[Batch], batch: Batch, models: Counter[str], **_: Any) -> None:
    transaction.on_commit(lambda: _never_raises(job_events.batch_submitted)(batch, models))


@receiver(post_save, sender=WebhookDelivery, dispatch_uid="monitoring.webhook_delivery")
@_never_raises
def _webhook_attempt(sender: type[WebhookDelivery], instance: WebhookDelivery, created: bool, **_: Any) -> None:
    if not created:
        return
    if instance.delivered:
        outcome = "delivered"
    elif instance.status_code:
        outcome = f"http_{instance.status_code // 100}xx"
    else:
        outcome = "unreachable"
    metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
    logs.event("webhook.attempt", job_id=str(instance.job_id), attempt=instance.attempt, outcome=outcome)


@before_task_publish.connect(dispatch_uid="monitoring.request_id_header")
def _carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = logs.request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(logs.TASK_HEADER, request_id)


_running: dict[str, Any] = {}


def _batch_name(hostname: str) -> str:
    return f"{hostname}/{os.getpid()}"


@task_prerun.connect(dispatch_uid="monitoring.task_prerun")
@_never_raises
def _task_started(task_id: str, task: Any, args: tuple = (), **_: Any) -> None:
    request_id = task.request.get(logs.TASK_HEADER) if task.request else None
    _running[task_id] = logs.request_id_var.set(request_id)
    if task.name not in (RUN_JOB, RUN_TUNING_JOB) or not args:
        return
    from inference.dispatch import time_limits
    from inference.models import TuningJob

    job_id = str(args[0])
    if task.name == RUN_JOB:
        row = Job.objects.filter(pk=job_id).values("capability", "model", "queue").first() or {}
        logs.event("job.delivered", job_id=job_id, family=row.get("queue"), worker=task.request.hostname)
    else:
        tuning = TuningJob.objects.filter(pk=job_id).values("base_model", "method").first() or {}
        row = {
            "capability": f"tuning ({tuning.get('method', '?')})",
            "model": tuning.get("base_model"),
            "queue": "tuning",
        }
        logs.event("tuning_job.delivered", tuning_job_id=job_id, worker=task.request.hostname)
    hostname = task.request.hostname or "unknown"
    _, hard = time_limits(task.name, row.get("queue"))
    heartbeats.store().put(
        _batch_name(hostname),
        heartbeats.BATCH,
        {"hostname": hostname, "pid": os.getpid(), "job_id": job_id, **row, "since": _now()},
        hard,
    )


def _now() -> str:
    from django.utils import timezone

    return timezone.now().isoformat()


@task_postrun.connect(dispatch_uid="monitoring.task_postrun")
def _task_finished(task_id: str, task: Any, args: tuple = (), retval: Any = None, **_: Any) -> None:
    token = _running.pop(task_id, None)
    try:
        if task.name in (RUN_JOB, RUN_TUNING_JOB) and args:
            _never_raises(heartbeats.store().delete)(_batch_name(task.request.hostname or "unknown"))
            if task.name == RUN_JOB and isinstance(retval, list):
                _never_raises(job_events.batch_finished)(
                    [str(job_id) for job_id in retval],
                    delivered_request_id=logs.request_id_var.get(),
                    delivered_job_id=str(args[0]),
                )
        elif task.name == REAP and isinstance(retval, dict):
            for action, count in retval.items():
                if count:
                    metrics.JOBS_REAPED.labels(action).inc(count)
            if any(retval.values()):
                logs.event("jobs.reaped", **{action: count for action, count in retval.items() if count})
    finally:
        if token is not None:
            logs.request_id_var.reset(token)


_beat: heartbeats.WorkerBeat | None = None


@worker_ready.connect(dispatch_uid="monitoring.worker_ready")
@_never_raises
def _worker_started(sender: Any = None, **_: Any) -> None:
    """The worker's main process: start its heartbeat, and its metrics port when ALLIANCE_WORKER_METRICS_PORT is set."""
    global _beat
    from alliance.celery import app
    from inference.registry import models_for_queues

    queues = sorted(app.amqp.queues.consume_from or app.amqp.queues)
    hostname = getattr(sender, "hostname", None) or "unknown"
    _beat = heartbeats.WorkerBeat(
        hostname=hostname, pid=os.getpid(), queues=queues, models=models_for_queues(set(queues))
    )
    _beat.start()
    logs.event("worker.ready", worker=hostname, queues=queues)
    if settings.ALLIANCE_WORKER_METRICS_PORT:
        from prometheus_client import start_http_server

        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            logger.error(
                "ALLIANCE_WORKER_METRICS_PORT is set without PROMETHEUS_MULTIPROC_DIR: the pool processes' metrics "
                "cannot reach this process, so no metrics port is opened (README, Operating)"
            )
            return

        start_http_server(
            settings.ALLIANCE_WORKER_METRICS_PORT,
            addr=settings.ALLIANCE_WORKER_METRICS_ADDR,
            registry=metrics.process_registry(),
        )


@worker_shutdown.connect(dispatch_uid="monitoring.worker_shutdown")
@_never_raises
def _worker_stopped(**_: Any) -> None:
    if _beat is not None:
        _beat.stop()


@worker_process_shutdown.connect(dispatch_uid="monitoring.worker_process_shutdown")
@_never_raises
def _pool_process_stopped(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
