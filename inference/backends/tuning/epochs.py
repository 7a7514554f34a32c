"""What every tuning run does at the end of an epoch, whatever its task: score the validation rows, report the
epoch, decide whether early stopping ends training, and keep the best epoch's trainable weights, so that the
adapter saved is the epoch chosen by validation loss.

Each task brings only its own scoring: the mean loss per answer token for generation and chat, cross-entropy with
accuracy and macro-F1 for classification.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from inference.backends.tuning.types import EpochReport


def rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


class EpochTracker:
    """train_loop's on_epoch_end. After each epoch: score() on the validation rows, a row in by_epoch (epoch,
    train_loss, validation_loss and the other figures score() answers), an EpochReport to on_epoch, and whether to
    stop: `patience` epochs in a row without a lower validation loss. The best epoch's trainable weights are copied
    only when early stopping is on; finish() puts them back.

    score() answers {"loss": ..., other figures...}; without validation rows pass score=None: no early stopping,
    validation_loss None, and the last epoch is kept."""

    def __init__(
        self,
        model: nn.Module,
        epochs: int,
        score: Callable[[], dict[str, float]] | None,
        patience: int | None,
        on_epoch: Callable[[EpochReport], None] | None = None,
    ) -> None:
        self.model = model
        self.epochs = epochs
        self.patience = patience if score is not None else None
        self._score = score
        self._on_epoch = on_epoch
        self.rows: list[dict] = []
        self.losses: list[float | None] = []  # unrounded, per epoch
        self.best_epoch = 0
        self._best_loss = math.inf
        self._best_state: dict[str, torch.Tensor] | None = None
        self.chosen_epoch = 0  # set by finish()

    def __call__(self, epoch: int, train_loss: float) -> bool:
        scores = dict(self._score()) if self._score is not None else {}
        loss = scores.pop("loss", None)
        stop = self._record(epoch, loss)
        row = {"epoch": epoch, "train_loss": rounded(train_loss), "validation_loss": rounded(loss), **scores}
        self.rows.append(row)
        if self._on_epoch is not None:
            self._on_epoch(
                EpochReport(
                    epoch, self.epochs, row["train_loss"], row["validation_loss"], self.best_epoch, stop, scores
                )
            )
        return stop

    def _record(self, epoch: int, loss: float | None) -> bool:
        self.losses.append(loss)
        if loss is None:
            self.best_epoch = epoch
            return False
        if loss < self._best_loss:
            self._best_loss, self.best_epoch = loss, epoch
            if self.patience is not None:
                self._best_state = {
                    name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad
                }
            return False
        return self.patience is not None and epoch - self.best_epoch >= self.patience

    def finish(self) -> dict:
        """Puts the chosen epoch's weights back (the best one's with early stopping, else the last epoch is kept as
        trained) and answers what every task reports: the chosen epoch's row (its train_loss and scores, its
        validation loss as `loss`), by_epoch, chosen_epoch, epochs_run and stopped_early."""
        chosen = len(self.rows)
        if self.patience is not None and self._best_state is not None:
            parameters = dict(self.model.named_parameters())
            with torch.no_grad():
                for name, value in self._best_state.items():
                    parameters[name].copy_(value)
            chosen = self.best_epoch
        self.chosen_epoch = chosen
        row = dict(self.rows[chosen - 1]) if chosen else {}
        row.pop("epoch", None)
        validation_loss = row.pop("validation_loss", None)
        metrics = {**row, **({"loss": validation_loss} if self._score is not None else {})}
        metrics.update(
            by_epoch=self.rows,
            chosen_epoch=chosen,
            epochs_run=len(self.rows),
            stopped_early=len(self.rows) < self.epochs,
        )
        return metrics

    @property
    def chosen_loss(self) -> float | None:
        """The unrounded validation loss of the epoch finish() chose."""
        return self.losses[self.chosen_epoch - 1] if self.chosen_epoch else None
