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
    from inference.registry import models_for_queues

    queues = set(app.amqp.queues.consume_from or app.amqp.queues)
    loaded = warm_up(models_for_queues(queues))
    logger.info(
        "worker process ready with models: %s (queues: %s)", ", ".join(loaded) or "none", ", ".join(sorted(queues))
    )
