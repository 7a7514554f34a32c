"""Tuning a causal LM (SmolLM2 by default) for text generation or chat: a peft adapter, loss on the answer only.

Rows are rendered the way inference.backends.llm serves them: with a chat template, a generation row is one user
turn (the prompt) answered by the completion, a chat row is its conversation whose last assistant message is the
target; without a template the completion follows the prompt as plain text, ended by EOS.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from inference.backends.tuning.epochs import EpochTracker, rounded
from inference.backends.tuning.loop import Batch, LoopSettings, count_parameters, seed_everything, train_loop
from inference.backends.tuning.recipes import peft_config, recipe_name
from inference.backends.tuning.types import (
    METADATA_FILE,
    EpochReport,
    TrainingInputError,
    TrainingProgress,
    TrainingRequest,
    TrainingResult,
    as_dict,
)

IGNORE = -100
EVAL_BATCH = 16


@dataclass(frozen=True)
class Example:
    prompt_ids: list[int]
    target_ids: list[int]


def _split(tokenizer: PreTrainedTokenizerBase, prefix_messages: list[dict], answer: str) -> tuple[str, str]:
    prefix = tokenizer.apply_chat_template(prefix_messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*prefix_messages, {"role": "assistant", "content": answer}], tokenize=False)
    if full.startswith(prefix):
        return prefix, full[len(prefix) :]
    return prefix, answer + (tokenizer.eos_token or "")


def render(tokenizer: PreTrainedTokenizerBase, task: str, row: dict, max_length: int) -> Example:
    """Token ids of the context and of the answer the loss is computed on (the context is cut from the left)."""
    templated = bool(getattr(tokenizer, "chat_template", None))
    try:
        if task == "generation":
            prompt, answer = str(row["prompt"]), str(row["completion"])
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
            if len(messages) < 2 or messages[-1]["role"] != "assistant":
                raise TrainingInputError("A chat row needs at least two messages, the last from the assistant.")
            prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages[:-1]) + "assistant:"
            messages, answer = messages[:-1], messages[-1]["content"]
    except (KeyError, TypeError) as exc:
        expected = '"prompt" and "completion"' if task == "generation" else '"messages" with "role" and "content"'
        raise TrainingInputError(f"{task.capitalize()} rows need {expected}.") from exc
    if templated:
        prefix, target = _split(tokenizer, messages, answer)
        prompt_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    else:
        target = (" " if task == "chat" else "") + answer + (tokenizer.eos_token or "")
        prompt_ids = tokenizer(prompt)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"][:max_length]
    keep = max(0, max_length - len(target_ids))
    return Example(prompt_ids[len(prompt_ids) - keep :] if keep else [], target_ids)


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    width = max(len(e.prompt_ids) + len(e.target_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        sequence = example.prompt_ids + example.target_ids
        ids[row, : len(sequence)] = torch.tensor(sequence)
        labels[row, len(example.prompt_ids) : len(sequence)] = torch.tensor(example.target_ids)
        mask[row, : len(sequence)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def validation_loss(model: PeftModel, examples: list[Example], pad_id: int) -> float:
    """Mean loss per answer token over the validation rows."""
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), EVAL_BATCH):
            batch = collate(examples[start : start + EVAL_BATCH], pad_id)
            count = int((batch["labels"][:, 1:] != IGNORE).sum())
            total += float(model(**batch).loss) * count
            tokens += count
    return total / max(tokens, 1)


def train_generator(
    request: TrainingRequest,
    hyperparameters: dict,
    on_progress: Callable[[TrainingProgress], None],
    should_stop: Callable[[], bool],
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainingResult:
    """Trains the adapter; after every epoch measures the loss on the validation rows (reported through on_epoch
    and in metrics["by_epoch"]). With `early_stopping_patience` = n, training stops once n epochs in a row did not
    lower the validation loss, and the adapter saved is the best epoch's (metrics["chosen_epoch"]); without it the
    last epoch's adapter is saved."""
    h = hyperparameters
    started = time.monotonic()
    seed_everything(int(h["seed"]))
    tokenizer = AutoTokenizer.from_pretrained(request.base_model_path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples = [render(tokenizer, request.task, row, int(h["max_length"])) for row in request.train_rows]
    held_out = [render(tokenizer, request.task, row, int(h["max_length"])) for row in request.validation_rows]
    base = AutoModelForCausalLM.from_pretrained(request.base_model_path, local_files_only=True, dtype=torch.float32)
    model = get_peft_model(base, peft_config(h, TaskType.CAUSAL_LM))
    pad_id = int(tokenizer.pad_token_id)
    settings = LoopSettings.from_hyperparameters(h, request.max_seconds)
    patience = h.get("early_stopping_patience")
    base_loss = validation_loss(model, held_out, pad_id) if held_out else None  # the untuned model's, for reference
    tracker = EpochTracker(
        model,
        settings.epochs,
        (lambda: {"loss": validation_loss(model, held_out, pad_id)}) if held_out else None,
        None if patience is None else int(patience),
        on_epoch,
    )
    train_loop(
        model,
        lambda batch: model(**batch).loss,
        lambda indices: collate([examples[i] for i in indices], pad_id),
        [len(e.prompt_ids) + len(e.target_ids) for e in examples],
        settings,
        on_progress,
        should_stop,
        tracker,
    )
    metrics = tracker.finish()
    if held_out:
        loss = tracker.chosen_loss
        metrics["perplexity"] = None if loss is None else round(math.exp(min(loss, 50.0)), 3)
        metrics["base_loss"] = rounded(base_loss)
    trainable, total = count_parameters(model)
    save_generator(request, model, h)
    details = {
        "method": request.method,
        "recipe": recipe_name(request.task, request.method),
        "hyperparameters": as_dict(h),
        "seconds": round(time.monotonic() - started, 1),
    }
    return TrainingResult(trainable, total, metrics, None, details)


def save_generator(request: TrainingRequest, model: PeftModel, h: dict) -> None:
    directory = Path(request.output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    metadata = {
        "task": request.task,
        "method": request.method,
        "adapter": h["adapter"],
        "base_model": str(request.base_model_path),
        "labels": None,
        "max_length": int(h["max_length"]),
        "hyperparameters": as_dict(h),
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
