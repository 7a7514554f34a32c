"""One training loop for every task and method: AdamW with linear warmup and decay, progress every step,
a stop check every step and a wall-clock limit."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.backends.tuning.types import TrainingProgress, TrainingStopped, TrainingTimedOut

Batch = dict[str, torch.Tensor]
GROUP_BATCHES = 16


@dataclass
class LoopSettings:
    epochs: int
    learning_rate: float
    batch_size: int
    seed: int
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    max_seconds: float | None = None

    @classmethod
    def from_hyperparameters(cls, h: dict, max_seconds: float | None) -> LoopSettings:
        return cls(
            epochs=int(h["epochs"]),
            learning_rate=float(h["learning_rate"]),
            batch_size=int(h["batch_size"]),
            seed=int(h["seed"]),
            warmup_ratio=float(h["warmup_ratio"]),
            weight_decay=float(h["weight_decay"]),
            max_seconds=max_seconds,
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of rows of similar length (less padding): a random order is cut into windows of
    GROUP_BATCHES batches, each window is sorted by length and cut into batches, and the batches are shuffled."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * GROUP_BATCHES
    grouped: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        grouped.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [grouped[i] for i in torch.randperm(len(grouped), generator=generator).tolist()]


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total), each parameter counted once."""
    seen: dict[int, nn.Parameter] = {id(p): p for p in module.parameters()}
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return trainable, sum(p.numel() for p in seen.values())


def train_loop(
    model: nn.Module,
    loss_of: Callable[[Batch], torch.Tensor],
    collate: Callable[[Sequence[int]], Batch],
    lengths: Sequence[int],
    settings: LoopSettings,
    on_progress: Callable[[TrainingProgress], None],
    should_stop: Callable[[], bool],
    on_epoch_end: Callable[[int, float], bool | None] | None = None,
) -> list[float]:
    """Trains the parameters of `model` that require grad on rows of the given token lengths; returns the mean
    training loss of each epoch. on_epoch_end(epoch, its mean training loss) runs in eval mode without gradients
    after each epoch; a true answer ends training there (early stopping).

    Raises TrainingStopped when should_stop() is true before a step and TrainingTimedOut past max_seconds."""
    started = time.monotonic()
    parameters: Iterable[Any] = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(lengths) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    warmup = max(1, int(total * settings.warmup_ratio)) if settings.warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(settings.seed)
    step, epoch_losses = 0, []
    for epoch in range(settings.epochs):
        model.train()
        losses = []
        for indices in batches(lengths, settings.batch_size, generator):
            if should_stop():
                raise TrainingStopped(f"Stopped at step {step} of {total}.")
            if settings.max_seconds is not None and time.monotonic() - started > settings.max_seconds:
                raise TrainingTimedOut(f"Ran past {settings.max_seconds:g} s at step {step} of {total}.")
            loss = loss_of(collate(indices))
            loss.backward()
            rate = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.detach()))
            on_progress(TrainingProgress(step, total, step / steps_per_epoch, losses[-1], rate))
        epoch_losses.append(float(np.mean(losses)) if losses else math.nan)
        if on_epoch_end is not None:
            model.eval()
            with torch.no_grad():
                stop = on_epoch_end(epoch + 1, epoch_losses[-1])
            if stop:
                break
    model.eval()
    return epoch_losses
