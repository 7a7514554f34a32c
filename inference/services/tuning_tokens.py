"""The tokens a tuning job trains on, counted with the base model's own tokenizer: what it is estimated and charged by.

Web-safe: the model's tokenizer and chat template come from inference.tokens (the light `tokenizers` package and
sandboxed jinja2, as transformers renders), so the web process counts without torch. The rows are counted as the
trainer builds them (inference.backends.tuning: classification text with the special tokens; generation and chat as
the templated context plus the answer and its end token), before truncation: a row trains on min(count, max_length)
tokens. The worker counts the same rows again with the trainer's own code (inference.services.tuning_runs) and
settles the charge on what it trained.

The validation split lives here too (the web estimates the training rows only; the worker trains on them), on row
indices so that the stored counts and the rows are split alike.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from typing import Any

from inference.tokens import ModelTokenizer, model_tokenizer

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- the validation split


def split_groups(task: str, rows: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Row indices in the groups the split holds out from: by label for classification (labels in first-seen
    order), one group otherwise; file order within a group."""
    if task != "classification":
        return [list(range(len(rows)))]
    by_label: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_label.setdefault(row["label"], []).append(index)
    return list(by_label.values())


def split_positions(task: str, sizes: Sequence[int], fraction: float, seed: int) -> tuple[list[tuple[int, int]], int]:
    """The training rows as (group, position) pairs in training order, and the number held out: a seeded shuffle
    of each group, the first `fraction` of it held out (at least one row; for classification at least one row of
    every label that has two or more, none of a label with one)."""
    rng = random.Random(seed)
    train: list[tuple[int, int]] = []
    held_out = 0
    for group, size in enumerate(sizes):
        positions = list(range(size))
        rng.shuffle(positions)
        if task == "classification":
            cut = max(1, round(size * fraction)) if size > 1 else 0
        else:
            cut = max(1, round(size * fraction))
        held_out += min(cut, size)
        train += [(group, position) for position in positions[cut:]]
    if task == "classification":
        rng.shuffle(train)
    return train, held_out


def split_rows(
    task: str, rows: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, validation rows): stratified by label for classification, at least one row per label."""
    groups = split_groups(task, rows)
    train, _ = split_positions(task, [len(group) for group in groups], fraction, seed)
    kept = {groups[group][position] for group, position in train}
    validation_order = [index for group in groups for index in group if index not in kept]
    return [rows[groups[group][position]] for group, position in train], [rows[i] for i in validation_order]


def epoch_tokens(task: str, groups: Sequence[Sequence[int]], *, fraction: float, seed: int, max_length: int) -> int:
    """The tokens one epoch trains on: each training row's count, truncated to max_length."""
    train, _ = split_positions(task, [len(group) for group in groups], fraction, seed)
    return sum(min(int(groups[group][position]), max_length) for group, position in train)


# ---------------------------------------------------------------- counting with the model's tokenizer


class RowCounter:
    """One base model's tokenizer (and chat template) counting rows as the trainer renders them."""

    def __init__(self, tokenizer: ModelTokenizer) -> None:
        self._tokenizer = tokenizer

    def counts(self, task: str, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Each row's tokens before truncation (context plus target for generation and chat)."""
        count = self._tokenizer.count_batch
        if task == "classification":
            return count([str(row["text"]) for row in rows], add_special_tokens=True)
        parts = [self._parts(task, row) for row in rows]
        contexts = count([context for context, _ in parts], add_special_tokens=not self._tokenizer.has_chat_template)
        targets = count([target for _, target in parts], add_special_tokens=False)
        return [context + target for context, target in zip(contexts, targets, strict=True)]

    def _parts(self, task: str, row: dict[str, Any]) -> tuple[str, str]:
        """(context, target) as the trainer renders them; an untemplated context is encoded with the special
        tokens, a templated one carries them in its text."""
        eos = self._tokenizer.eos_token
        if task == "generation":
            answer = str(row["completion"])
            messages = [{"role": "user", "content": str(row["prompt"])}]
            plain = str(row["prompt"])
        else:
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
            plain = "".join(f"{m['role']}: {m['content']}\n" for m in messages[:-1]) + "assistant:"
            messages, answer = messages[:-1], messages[-1]["content"]
        if self._tokenizer.has_chat_template:
            prefix = self._tokenizer.render_chat(messages, add_generation_prompt=True)
            full = self._tokenizer.render_chat([*messages, {"role": "assistant", "content": answer}])
            target = full[len(prefix) :] if full.startswith(prefix) else answer + eos
            return prefix, target
        return plain, (" " if task == "chat" else "") + answer + eos


def row_counter(base_model: str) -> RowCounter | None:
    """The counter of a registry model (its tokenizer loaded once per process, inference.tokens); None when its
    tokenizer is not readable here (asked again next time: the model may be prepared meanwhile)."""
    tokenizer = model_tokenizer(base_model)
    if tokenizer is None:
        logger.info("no tokenizer.json for %s here; its tuning jobs are estimated from characters", base_model)
        return None
    return RowCounter(tokenizer)


def count_groups(base_model: str, task: str, rows: list[dict[str, Any]]) -> list[list[int]] | None:
    """Each row's tokens with the base model's tokenizer, grouped for the split; None when it is not readable here
    (a web host without the model's files) or its chat template refuses a row."""
    counter = row_counter(base_model)
    if counter is None:
        return None
    try:
        counts = counter.counts(task, rows)
    except Exception:
        logger.warning("counting %s rows with %s failed; estimating from characters", task, base_model, exc_info=True)
        return None
    return [[counts[index] for index in group] for group in split_groups(task, rows)]


def tokens_after_step(total: int, step: int, total_steps: int | None) -> int:
    """The tokens trained after `step` of `total_steps` optimizer steps of a run of `total` tokens."""
    if not total_steps:
        return 0
    return math.ceil(total * min(step, total_steps) / total_steps)
