"""Tuning a sentence encoder (MiniLM by default) into a classifier: a peft adapter plus a small head."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel, TaskType, get_peft_model
from sklearn.metrics import f1_score
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from inference.backends.tuning.epochs import EpochTracker
from inference.backends.tuning.heads import Head, pool
from inference.backends.tuning.loop import Batch, LoopSettings, count_parameters, seed_everything, train_loop
from inference.backends.tuning.recipes import peft_config, recipe_name
from inference.backends.tuning.types import (
    METADATA_FILE,
    PROMPT_METHODS,
    EpochReport,
    TrainingInputError,
    TrainingProgress,
    TrainingRequest,
    TrainingResult,
    as_dict,
)

EVAL_BATCH = 64


class Encoded:
    """Rows tokenized once (truncated to max_length); batches are padded to their longest row."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> None:
        self.tokenizer = tokenizer
        self.ids: list[list[int]] = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, indices: Sequence[int]) -> Batch:
        return self.tokenizer.pad({"input_ids": [self.ids[i] for i in indices]}, return_tensors="pt")

    def eval_order(self) -> list[list[int]]:
        order = sorted(range(len(self.ids)), key=lambda i: len(self.ids[i]))
        return [order[i : i + EVAL_BATCH] for i in range(0, len(order), EVAL_BATCH)]


class PooledClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, head: Head, virtual_tokens: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.virtual_tokens = virtual_tokens

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = pool(
            output.last_hidden_state,
            getattr(output, "pooler_output", None),
            attention_mask,
            self.head.pooling,
            self.virtual_tokens,
        )
        return self.head(pooled)


def read_rows(rows: list[dict], labels: list[str] | None = None) -> tuple[list[str], list[str], list[int]]:
    """(texts, labels, targets); labels are sorted unless given (validation uses the training labels)."""
    try:
        texts = [str(row["text"]) for row in rows]
        names = [str(row["label"]) for row in rows]
    except (KeyError, TypeError) as exc:
        raise TrainingInputError('Classification rows need "text" and "label".') from exc
    labels = labels if labels is not None else sorted(set(names))
    if len(labels) < 2:
        raise TrainingInputError("Classification needs at least two labels in the training rows.")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise TrainingInputError(f"Validation labels absent from the training rows: {', '.join(unknown[:5])}.")
    return texts, labels, [index[name] for name in names]


def evaluate(model: PooledClassifier, data: Encoded, targets: list[int]) -> dict[str, float]:
    """Accuracy and macro-F1 (rounded) and the mean cross-entropy (unrounded: epochs are compared by it)."""
    model.eval()
    logits = torch.zeros(len(data), model.head.linear.out_features)
    with torch.no_grad():
        for indices in data.eval_order():
            batch = data.batch(indices)
            logits[indices] = model(batch["input_ids"], batch["attention_mask"]).float()
    truth = torch.tensor(targets)
    predicted = logits.argmax(dim=1)
    return {
        "accuracy": round(float((predicted == truth).float().mean()), 4),
        "macro_f1": round(float(f1_score(truth.numpy(), predicted.numpy(), average="macro")), 4),
        "loss": float(nn.functional.cross_entropy(logits, truth)),
    }


def frozen_features(encoder: nn.Module, data: Encoded) -> np.ndarray:
    """Mean-pooled, normalised features of the untouched base (adapters disabled)."""
    features = torch.zeros(len(data), encoder.config.hidden_size)
    peft = isinstance(encoder, PeftModel)
    base = encoder.get_base_model() if peft else encoder
    with torch.no_grad(), encoder.disable_adapter() if peft else contextlib.nullcontext():
        for indices in data.eval_order():
            batch = data.batch(indices)
            output = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            features[indices] = pool(output.last_hidden_state, None, batch["attention_mask"], "mean")
    return features.numpy()


def train_classifier(
    request: TrainingRequest,
    hyperparameters: dict,
    on_progress: Callable[[TrainingProgress], None],
    should_stop: Callable[[], bool],
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainingResult:
    """Trains the adapter and the head; after every epoch scores the validation rows (cross-entropy, accuracy and
    macro-F1, reported through on_epoch and in metrics["by_epoch"]). With `early_stopping_patience` = n, training
    stops once n epochs in a row did not lower the validation loss, and the adapter and head saved are the best
    epoch's (metrics["chosen_epoch"]); without it the last epoch's are saved."""
    h = hyperparameters
    started = time.monotonic()
    seed_everything(int(h["seed"]))
    texts, labels, targets = read_rows(request.train_rows)
    tokenizer = AutoTokenizer.from_pretrained(request.base_model_path, local_files_only=True)
    train_data = Encoded(tokenizer, texts, int(h["max_length"]))
    base = AutoModel.from_pretrained(request.base_model_path, local_files_only=True, dtype=torch.float32)
    encoder = get_peft_model(base, peft_config(h, TaskType.FEATURE_EXTRACTION))
    virtual_tokens = int(h["num_virtual_tokens"]) if h["adapter"] in PROMPT_METHODS else 0
    head = Head(base.config.hidden_size, len(labels), h["pooling"], base.config.hidden_dropout_prob)
    if h["head_init"] == "linear_probe":
        head.fit_linear_probe(frozen_features(encoder, train_data), np.array(targets), int(h["seed"]))
    model = PooledClassifier(encoder, head, virtual_tokens)
    target_tensor = torch.tensor(targets)

    def loss_of(batch: Batch) -> torch.Tensor:
        logits = model(batch["input_ids"], batch["attention_mask"])
        return nn.functional.cross_entropy(logits, target_tensor[batch["rows"]])

    def collate(indices: Sequence[int]) -> Batch:
        return {**train_data.batch(indices), "rows": torch.tensor(list(indices))}

    validation = None
    if request.validation_rows:
        val_texts, _, val_targets = read_rows(request.validation_rows, labels)
        validation = (Encoded(tokenizer, val_texts, int(h["max_length"])), val_targets)
    settings = LoopSettings.from_hyperparameters(
        h, None if request.max_seconds is None else request.max_seconds - (time.monotonic() - started)
    )
    patience = h.get("early_stopping_patience")
    tracker = EpochTracker(
        model,
        settings.epochs,
        (lambda: evaluate(model, *validation)) if validation is not None else None,
        None if patience is None else int(patience),
        on_epoch,
    )
    train_loop(
        model, loss_of, collate, [len(ids) for ids in train_data.ids], settings, on_progress, should_stop, tracker
    )
    metrics = tracker.finish()
    trainable, total = count_parameters(model)
    save_classifier(request.output_dir, encoder, head, labels, request, h)
    details = {
        "method": request.method,
        "recipe": recipe_name(request.task, request.method),
        "hyperparameters": as_dict(h),
        "seconds": round(time.monotonic() - started, 1),
    }
    return TrainingResult(trainable, total, metrics, labels, details)


def save_classifier(
    directory: Path, encoder: PeftModel, head: Head, labels: list[str], request: TrainingRequest, h: dict
) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(directory)
    head.save(directory)
    metadata = {
        "task": "classification",
        "method": request.method,
        "adapter": h["adapter"],
        "base_model": str(request.base_model_path),
        "labels": labels,
        "pooling": head.pooling,
        "max_length": int(h["max_length"]),
        "hyperparameters": as_dict(h),
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
