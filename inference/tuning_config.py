"""What a tuning job may ask for, and the figures for its pre-flight estimate. Web-safe: no torch.

The methods are the trainer's own (inference.backends.tuning.types, a module that loads no torch)."""

from __future__ import annotations

import math
from typing import Any

from rest_framework import serializers

from capabilities.base import StrictFloatField, StrictIntegerField, StrictSerializer
from capabilities.default_models import EMBEDDER, LLM, QWEN
from inference.backends.tuning.types import METHODS

# The first base model of a task is its default: SmolLM2 tunes a row about 1.5x as fast as Qwen on CPU; Qwen is the one
# that reads and writes Korean (bench/tuning_generation.py measures both).
BASE_MODELS = {"classification": (EMBEDDER,), "generation": (LLM, QWEN), "chat": (LLM, QWEN)}
TASK_CAPABILITY = {"classification": "text_classification", "generation": "text_generation", "chat": "dialogue"}
TUNED_PREFIX = "ft:"
QUOTA_KEY = "tuning"

# Training tokens per second of each base model on two idle CPU cores, measured by bench/tuning.py (MiniLM) and
# bench/tuning_generation.py (the default LoRA: SmolLM2 ~235, Qwen ~85 on its banker's notes, the per-epoch
# validation included); a GPU worker is far faster, so the estimate is an upper bound there.
TOKENS_PER_SECOND = {EMBEDDER: 3_000.0, LLM: 235.0, QWEN: 85.0}
DEFAULT_EPOCHS = {"classification": 3, "generation": 2, "chat": 2}
MAX_TOKENS_PER_ROW = {"classification": 128, "generation": 256, "chat": 256}


class Hyperparameters(StrictSerializer):
    epochs = StrictIntegerField(min_value=1, max_value=20, required=False)
    learning_rate = StrictFloatField(min_value=1e-6, max_value=1.0, required=False)
    batch_size = StrictIntegerField(min_value=1, max_value=128, required=False)
    seed = StrictIntegerField(min_value=0, max_value=2**31 - 1, required=False)
    max_length = StrictIntegerField(min_value=16, max_value=1024, required=False)
    r = StrictIntegerField(min_value=1, max_value=64, required=False)
    num_virtual_tokens = StrictIntegerField(min_value=1, max_value=100, required=False)
    validation_fraction = StrictFloatField(min_value=0.05, max_value=0.5, required=False)
    early_stopping_patience = StrictIntegerField(min_value=1, max_value=20, required=False)


class TuningRequest(StrictSerializer):
    dataset = serializers.CharField(max_length=40)
    task = serializers.ChoiceField(choices=list(BASE_MODELS))
    base_model = serializers.CharField(max_length=200, required=False)
    method = serializers.ChoiceField(choices=list(METHODS), default="default")
    hyperparameters = Hyperparameters(required=False, default=dict)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        allowed = BASE_MODELS[attrs["task"]]
        attrs.setdefault("base_model", allowed[0])
        if attrs["base_model"] not in allowed:
            raise serializers.ValidationError(
                {"base_model": [f"For {attrs['task']}, the base model must be one of: {', '.join(allowed)}."]}
            )
        return attrs


def expected_seconds(base_model: str, training_tokens: int) -> float:
    return round(training_tokens / TOKENS_PER_SECOND[base_model] + 10, 1)


def estimate(task: str, base_model: str, stats: dict[str, Any], hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Training tokens, quota units (one per training token) and expected seconds, before any training."""
    epochs = hyperparameters.get("epochs", DEFAULT_EPOCHS[task])
    cap = hyperparameters.get("max_length", MAX_TOKENS_PER_ROW[task])
    per_row = min(stats.get("mean_tokens_per_row", 0), cap)
    training_tokens = math.ceil(per_row * stats.get("rows", 0) * epochs)
    return {
        "epochs": epochs,
        "training_tokens": training_tokens,
        "units": max(1, training_tokens),
        "expected_seconds": expected_seconds(base_model, training_tokens),
    }
