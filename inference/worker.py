"""Worker start-up: each worker process loads the models of the queues it serves, once."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_init

logger = logging.getLogger(__name__)


@worker_process_init.connect
def load_models_for_this_worker(**_: Any) -> None:
    from alliance.celery import app
    from inference.backends import warm_up

    queues = set(app.amqp.queues.consume_from or app.amqp.queues)
    try:
        names = warm_up(queues)
    except Exception:
        logger.exception("model warm-up failed; jobs will report the error")
        return
    logger.info(
        "worker process ready with models: %s (queues: %s)", ", ".join(names) or "none", ", ".join(sorted(queues))
    )
