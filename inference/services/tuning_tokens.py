"""The tokens a tuning job trains on, counted with the base model's own tokenizer: what it is estimated and charged by.

Web-safe: the light `tokenizers` package reads the model's `tokenizer.json`, and jinja2 renders its chat template as
transformers does, so the web process counts without torch. The rows are counted as the trainer builds them
(inference.backends.tuning: classification text with the special tokens; generation and chat as the templated
context plus the answer and its end token), before truncation: a row trains on min(count, max_length) tokens. The
worker counts the same rows again with the trainer's own code (inference.services.tuning_runs) and settles the charge
on what it trained.

The validation split lives here too (the web estimates the training rows only; the worker trains on them), on row
indices so that the stored counts and the rows are split alike.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inference.registry import ModelNotAvailable, get_model_spec, resolve_source

logger = logging.getLogger(__name__)

_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


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

    def __init__(
        self, encode: Callable[[list[str], bool], list[int]], render: Callable[..., str] | None, eos: str
    ) -> None:
        self._encode = encode
        self._render = render
        self._eos = eos

    def counts(self, task: str, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Each row's tokens before truncation (context plus target for generation and chat)."""
        if task == "classification":
            return self._encode([str(row["text"]) for row in rows], True)
        parts = [self._parts(task, row) for row in rows]
        contexts = self._encode([context for context, _ in parts], self._render is None)
        targets = self._encode([target for _, target in parts], False)
        return [context + target for context, target in zip(contexts, targets, strict=True)]

    def _parts(self, task: str, row: dict[str, Any]) -> tuple[str, str]:
        """(context, target) as the trainer renders them; an untemplated context is encoded with the special
        tokens, a templated one carries them in its text."""
        if task == "generation":
            answer = str(row["completion"])
            messages = [{"role": "user", "content": str(row["prompt"])}]
            plain = str(row["prompt"])
        else:
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
            plain = "".join(f"{m['role']}: {m['content']}\n" for m in messages[:-1]) + "assistant:"
            messages, answer = messages[:-1], messages[-1]["content"]
        if self._render is not None:
            prefix = self._render(messages=messages, add_generation_prompt=True)
            full = self._render(messages=[*messages, {"role": "assistant", "content": answer}])
            target = full[len(prefix) :] if full.startswith(prefix) else answer + self._eos
            return prefix, target
        return plain, (" " if task == "chat" else "") + answer + self._eos


_counters: dict[str, RowCounter] = {}


def row_counter(base_model: str) -> RowCounter | None:
    """The counter of a registry model, loaded once per process; None when its tokenizer is not readable here
    (asked again next time: the model may be prepared meanwhile)."""
    if base_model not in _counters:
        counter = _load_counter(base_model)
        if counter is None:
            return None
        _counters[base_model] = counter
    return _counters[base_model]


def _load_counter(base_model: str) -> RowCounter | None:
    try:
        path = resolve_source(get_model_spec(base_model).source)
    except ModelNotAvailable:
        return None
    if not (path / "tokenizer.json").exists():
        logger.info("no tokenizer.json for %s here; its tuning jobs are estimated from characters", base_model)
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def encode(texts: list[str], add_special_tokens: bool) -> list[int]:
        return [len(encoding.ids) for encoding in tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)]

    config = _tokenizer_config(path)
    special = {name: _token_text(config.get(name)) for name in _SPECIAL_TOKENS}
    return RowCounter(encode, _chat_renderer(path, config, special), special["eos_token"])


def _tokenizer_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / "tokenizer_config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def _chat_renderer(path: Path, config: dict[str, Any], special: dict[str, str]) -> Callable[..., str] | None:
    """The model's chat template as transformers renders it (sandboxed jinja2, trim_blocks, lstrip_blocks)."""
    template_file = path / "chat_template.jinja"
    source = template_file.read_text() if template_file.exists() else config.get("chat_template")
    if isinstance(source, list):  # named templates: the default one
        source = next((t.get("template") for t in source if t.get("name") == "default"), None)
    if not isinstance(source, str) or not source:
        return None
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    environment.globals["raise_exception"] = raise_exception
    template = environment.from_string(source)

    def render(*, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt, **special)

    return render


def _token_text(token: Any) -> str:
    if isinstance(token, dict):
        return str(token.get("content", ""))
    return token if isinstance(token, str) else ""


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
