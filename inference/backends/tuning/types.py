"""The tuning interface's data types: what the platform sends, what it gets back, and how a run ends early.

Loads no torch: the web process validates tuning requests against METHODS (inference.tuning_config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("default", "lora", "ia3", "prompt_tuning", "p_tuning")
TASKS = ("classification", "generation", "chat")
PROMPT_METHODS = ("prompt_tuning", "p_tuning")
METADATA_FILE = "tuning.json"
HEAD_FILE = "head.safetensors"


@dataclass
class TrainingRequest:
    task: str  # one of TASKS
    base_model_path: Path  # MiniLM dir for classification, a causal-LM dir for generation/chat
    train_rows: list[dict]  # classification {"text","label"}; generation {"prompt","completion"}; chat {"messages"}
    validation_rows: list[dict]  # same shape, held out by the platform
    method: str  # one of METHODS
    hyperparameters: dict  # epochs, learning_rate, batch_size, seed, max_length, plus method-specific keys
    output_dir: Path  # the adapter (peft save_pretrained), the head if any, and METADATA_FILE
    max_seconds: float | None = None


@dataclass
class TrainingProgress:
    step: int
    total_steps: int
    epoch: float
    loss: float | None
    learning_rate: float | None = None  # the rate this step was taken with


@dataclass(frozen=True)
class EpochReport:
    """The end of one epoch: its mean training loss, the loss on the validation rows (None without any), the best
    epoch so far by that loss, whether early stopping ends training here, and the task's other validation figures
    (classification: accuracy and macro_f1)."""

    epoch: int
    epochs: int  # planned
    train_loss: float | None
    validation_loss: float | None
    best_epoch: int
    stopping: bool = False
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainingResult:
    trainable_parameters: int  # counted with the classification head
    total_parameters: int
    # Every task: train_loss, loss (validation), by_epoch, chosen_epoch (the epoch whose adapter was saved),
    # epochs_run, stopped_early; classification adds accuracy and macro_f1 (per epoch too), generation and chat
    # perplexity and base_loss.
    metrics: dict
    labels: list[str] | None
    details: dict = field(default_factory=dict)  # the resolved method, recipe and hyperparameters used


class TrainingStopped(Exception):
    """should_stop() turned true during training."""


class TrainingTimedOut(Exception):
    """Training ran past max_seconds."""


class TrainingInputError(ValueError):
    """The request cannot be trained as given (unknown task or method, malformed rows, a single label)."""


def check_request(request: TrainingRequest) -> None:
    if request.task not in TASKS:
        raise TrainingInputError(f"Unknown task {request.task!r}; use one of {', '.join(TASKS)}.")
    if request.method not in METHODS:
        raise TrainingInputError(f"Unknown method {request.method!r}; use one of {', '.join(METHODS)}.")
    if not request.train_rows:
        raise TrainingInputError("No training rows.")


def as_dict(value: Any) -> Any:
    """JSON-friendly copy of hyperparameters (paths and tuples become strings and lists)."""
    if isinstance(value, dict):
        return {str(k): as_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
