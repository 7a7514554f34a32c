"""Worker start-up: each worker process loads the models of the queues it serves, once; and the one place that
spells the Celery worker command line for the code that starts workers (`up`, the tests, the benchmarks)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from celery.signals import worker_process_init

from alliance.celery import app
from inference.registry import models_for_queues

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


@worker_process_init.connect
def load_models_for_this_worker(**_: Any) -> None:
    from inference.backends import warm_up  # torch: only a worker process comes here

    queues = set(app.amqp.queues.consume_from or app.amqp.queues)
    loaded = warm_up(models_for_queues(queues))
    logger.info(
        "worker process ready with models: %s (queues: %s)", ", ".join(loaded) or "none", ", ".join(sorted(queues))
    )
