"""Worker start-up: which models a worker hosts (the models of the queues it serves, narrowed by
ALLIANCE_WORKER_MODELS), the broker queues that follow from them, and loading them once per worker process; and the
one place that spells the Celery worker command line for the code that starts workers (`up`, the tests, the
benchmarks).

A job's message goes to its model's queue (inference.dispatch.model_queue); a worker consumes its families' queues
and the queues of the models it hosts. A job for a model that no running worker hosts stays queued (in PostgreSQL
and on the broker) until one starts, or until its owner cancels it: nothing is lost, nothing runs on the wrong
worker."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings

from alliance.celery import app
from inference import dispatch
from inference.registry import ModelNotAvailable, get_model_spec, models_for_queues, served_models

logger = logging.getLogger(__name__)


def worker_command(
    *,
    queues: str | Iterable[str] | None = None,
    concurrency: int | None = None,
    hostname: str | None = None,
    beat: bool = False,
    schedule: str | Path | None = None,
    loglevel: str = "INFO",
    standalone: bool = False,
) -> list[str]:
    """`celery -A alliance worker` as argv, run by this interpreter.

    queues: the families served (comma-separated or a list; None: every queue). beat: run the scheduler inside
    this worker (the embedded default and tests; a deployment runs one `celery beat` instead), its state in
    `schedule`. standalone: no gossip, mingle or heartbeat with other workers (a lone worker in a benchmark).
    The Procfile spells out the same command for each worker family.
    """
    command = [sys.executable, "-m", "celery", "-A", "alliance", "worker", f"--loglevel={loglevel}"]
    if queues:
        command.append(f"--queues={queues if isinstance(queues, str) else ','.join(queues)}")
    if concurrency is not None:
        command.append(f"--concurrency={concurrency}")
    if hostname:
        command.append(f"--hostname={hostname}")
    if beat:
        command.append("--beat")
    if schedule is not None:
        command.append(f"--schedule={schedule}")
    if standalone:
        command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return command


_hosted: frozenset[str] | None = None  # set when this process is a worker: the registry models whose jobs it takes
_processes = 1  # the worker's pool processes (--concurrency): they share the machine's cores (torch threads)


def worker_families() -> set[str]:
    """The model families (ALLIANCE_QUEUES) this worker consumes: its -Q, else every queue."""
    return set(app.amqp.queues.consume_from) & set(settings.ALLIANCE_QUEUES)


def hosts(model: str | None) -> bool:
    """Whether this process takes jobs of this registry model (None, or a process that is no worker: yes)."""
    return _hosted is None or model is None or model in _hosted


@celeryd_after_setup.connect
def consume_hosted_model_queues(sender: str, instance: Any, **_: Any) -> None:
    """Before the worker consumes: the queue of each model it hosts, beside its families' queues. Runs in the main
    process, before the pool's processes fork (they inherit what it decides)."""
    global _hosted, _processes
    _processes = max(1, int(getattr(instance, "concurrency", None) or 1))
    families = worker_families()
    try:
        served = served_models(families, settings.ALLIANCE_WORKER_MODELS)
    except ModelNotAvailable as exc:  # a signal handler's Exception is only logged: stop the worker instead
        raise SystemExit(f"The worker does not start: {exc}") from exc
    _hosted = frozenset(served)
    queues = instance.app.amqp.queues
    for name in served:
        queues.select_add(dispatch.model_queue(get_model_spec(name).queue, name))
    logger.info("worker hosts models: %s", ", ".join(served) or "none")


@worker_process_init.connect
def load_models_for_this_worker(**_: Any) -> None:
    import torch  # only a worker process comes here

    from inference.backends import warm_up

    families = worker_families()
    loaded = warm_up(models_for_queues(families, settings.ALLIANCE_WORKER_MODELS), processes=_processes)
    logger.info(
        "worker process ready with models: %s (queues: %s; one of %d processes; torch threads: %d)",
        ", ".join(loaded) or "none",
        ", ".join(sorted(families)),
        _processes,
        torch.get_num_threads(),
    )
