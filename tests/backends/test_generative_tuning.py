"""Generative tuning's contract, on a tiny random Llama with the real SmolLM2 tokenizer: the loss falls on the
assistant's tokens only, rendered with the chat template the serving engine uses; small datasets get more epochs;
every epoch reports its validation loss; early stopping keeps the best epoch's adapter; a tuned model streams."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoTokenizer, LlamaForCausalLM

from inference.backends.llm.engine import CausalLM, chat_prompt
from inference.backends.tuning import AdapterPool, EpochReport, TrainingRequest, default_hyperparameters, train
from inference.backends.tuning.generation import IGNORE, collate, render, validation_loss
from inference.backends.tuning.recipes import MIN_GENERATION_STEPS, auto_epochs, resolve_hyperparameters
from inference.backends.tuning.types import TrainingInputError
from tests.backends.tiny_llama import save_tiny_llama

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama-gen")
    return save_tiny_llama(path, hidden_size=64, heads=4, max_positions=512, initializer_range=0.3)


def chat_row(question: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": [*messages, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.mark.parametrize("system", [None, "You are Woori Bank's AI banker."])
def test_training_context_is_the_serving_prompt_and_only_the_answer_carries_loss(tiny_llama, system):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    row = chat_row("What is a mortgage?", "A loan on a home.\n-- Signed", system)
    example = render(tokenizer, "chat", row, max_length=256)
    served = chat_prompt(CausalLM(tokenizer, None, "cpu"), row["messages"][:-1])  # type: ignore[arg-type]
    assert example.prompt_ids == tokenizer(served, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(example.target_ids) == "A loan on a home.\n-- Signed<|im_end|>\n"
    batch = collate([example, render(tokenizer, "chat", chat_row("Hi", "Hello"), 256)], pad_id=2)
    labelled = batch["labels"][0] != IGNORE
    assert int(labelled.sum()) == len(example.target_ids)
    assert batch["labels"][0][labelled].tolist() == example.target_ids  # the prompt (and padding) carry no loss
    assert not labelled[: len(example.prompt_ids)].any()


def test_small_datasets_get_at_least_the_minimum_of_optimizer_steps():
    assert auto_epochs(60, 4, 2) == 4 and MIN_GENERATION_STEPS <= 60 / 4 * 4
    assert auto_epochs(1_000, 4, 2) == 2 and auto_epochs(3, 4, 2) == 8  # never fewer than the default, at most 8
    chat = default_hyperparameters("chat", "default", rows=60)
    assert chat["epochs"] == 4 and chat["target_modules"] == "all-linear" and chat["batch_size"] == 4
    assert default_hyperparameters("classification", "default", rows=60)["epochs"] == 3  # classification unchanged
    with pytest.raises(TrainingInputError, match="early_stopping_patience"):
        resolve_hyperparameters("chat", "default", {"early_stopping_patience": 0})


CODE = [chat_row(f"Ticket {i}: what is the code word?", "banana") for i in range(16)]
FAST = {"learning_rate": 2e-2, "batch_size": 8, "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"]}


def test_every_epoch_reports_its_validation_loss_and_the_last_epoch_is_kept(tiny_llama, tmp_path):
    reports: list[EpochReport] = []
    request = TrainingRequest("chat", tiny_llama, CODE, CODE[:4], "default", {**FAST, "epochs": 3}, tmp_path / "a")
    result = train(request, lambda p: None, lambda: False, reports.append)
    metrics = result.metrics
    assert [r.epoch for r in reports] == [1, 2, 3] and not any(r.stopping for r in reports)
    assert [row["validation_loss"] for row in metrics["by_epoch"]] == [r.validation_loss for r in reports]
    assert metrics["chosen_epoch"] == 3 and metrics["epochs_run"] == 3 and not metrics["stopped_early"]
    assert metrics["loss"] == reports[-1].validation_loss < metrics["base_loss"]


def test_early_stopping_keeps_the_best_epochs_adapter(tiny_llama, tmp_path):
    """Trained to answer "banana", validated on "cherry": the validation loss rises once the adapter has learned
    banana, training stops after `patience` worse epochs, and the saved adapter is the best epoch's."""
    validation = [chat_row(f"Ticket {i}: what is the code word?", "cherry") for i in range(20, 24)]
    reports: list[EpochReport] = []
    hyperparameters = {**FAST, "epochs": 8, "early_stopping_patience": 1}
    request = TrainingRequest("chat", tiny_llama, CODE, validation, "default", hyperparameters, tmp_path / "b")
    result = train(request, lambda p: None, lambda: False, reports.append)
    metrics = result.metrics
    losses = [row["validation_loss"] for row in metrics["by_epoch"]]
    assert metrics["stopped_early"] and metrics["epochs_run"] == len(losses) < 8 and reports[-1].stopping
    best = losses.index(min(losses)) + 1
    assert metrics["chosen_epoch"] == best == len(losses) - 1 and metrics["loss"] == min(losses)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    saved = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama), tmp_path / "b").eval()
    examples = [render(tokenizer, "chat", row, 256) for row in validation]
    assert validation_loss(saved, examples, 2) == pytest.approx(metrics["loss"], abs=1e-3)


def test_a_tuned_chat_model_streams_pieces_that_add_up_to_its_answer(tiny_llama, tmp_path):
    train(
        TrainingRequest("chat", tiny_llama, CODE, [], "default", {**FAST, "epochs": 6}, tmp_path / "s"),
        lambda p: None,
        lambda: False,
    )
    pieces: list[tuple[int, str]] = []
    questions = [f"Ticket {i}: what is the code word?" for i in (97, 98)]
    conversations = [{"messages": [{"role": "user", "content": question}]} for question in questions]
    params = [{"temperature": 0.0, "max_new_tokens": 4}] * 2
    pool = AdapterPool()
    outputs = pool.generate(
        tiny_llama, tmp_path / "s", "s", conversations, params, chat=True, on_delta=lambda i, t: pieces.append((i, t))
    )
    for row, output in enumerate(outputs):
        assert output["message"]["content"].startswith("banana")
        assert "".join(text for i, text in pieces if i == row) == output["message"]["content"]
