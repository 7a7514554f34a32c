"""Parameter-efficient tuning on a partner's data, and serving the tuned adapters on shared base models.

train() tunes one adapter (classification on a sentence encoder, generation or chat on a causal LM) and writes it
to the request's output_dir; AdapterPool serves many such adapters over one loaded base model per base path.
"""

from __future__ import annotations

from collections.abc import Callable

from inference.backends.tuning.recipes import default_hyperparameters, resolve_hyperparameters
from inference.backends.tuning.types import (
    METHODS,
    TASKS,
    EpochReport,
    TrainingInputError,
    TrainingProgress,
    TrainingRequest,
    TrainingResult,
    TrainingStopped,
    TrainingTimedOut,
    check_request,
)


def train(
    request: TrainingRequest,
    on_progress: Callable[[TrainingProgress], None],
    should_stop: Callable[[], bool],
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainingResult:
    """Tunes one adapter. Calls on_progress after every step, should_stop before every step and on_epoch after every
    epoch with its training and validation loss (and, for classification, accuracy and macro-F1). With
    `early_stopping_patience` the best epoch by validation loss is kept, else the last.

    Raises TrainingInputError for a request it cannot train, TrainingStopped when should_stop() turns true and
    TrainingTimedOut past request.max_seconds; output_dir is written only when training finishes."""
    check_request(request)
    hyperparameters = resolve_hyperparameters(request.task, request.method, request.hyperparameters)
    if request.task == "classification":
        from inference.backends.tuning.classification import train_classifier

        return train_classifier(request, hyperparameters, on_progress, should_stop, on_epoch)
    from inference.backends.tuning.generation import train_generator

    return train_generator(request, hyperparameters, on_progress, should_stop, on_epoch)


def __getattr__(name: str) -> object:
    if name == "AdapterPool":  # imported lazily: serving does not need the training stack loaded first
        from inference.backends.tuning.pool import AdapterPool

        return AdapterPool
    raise AttributeError(name)


__all__ = [
    "METHODS",
    "TASKS",
    "AdapterPool",
    "EpochReport",
    "TrainingInputError",
    "TrainingProgress",
    "TrainingRequest",
    "TrainingResult",
    "TrainingStopped",
    "TrainingTimedOut",
    "default_hyperparameters",
    "train",
]
