"""Prompts are measured in the model's tokens against its context window: refused at submission (400
context_length_exceeded, before any charge), and cut to the window by the worker for whatever the web side could
not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from inference import tokens
from inference.models import Job
from inference.registry import model_specs
from partners.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("prepared_llm")]

LLM = "smollm2-135m-instruct"
DIGITS = "7" * 8000  # SmolLM2 writes each digit as a token: 8,000 characters, the longest prompt, are 8,030 tokens


def _refusal(response, param: str) -> dict:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == param
    return error


def test_a_prompt_and_max_new_tokens_past_the_window_are_refused_before_any_charge(api):
    body = {
        "capability": "text_generation",
        "model": LLM,
        "input": {"prompt": DIGITS},
        "params": {"max_new_tokens": 512},
    }
    error = _refusal(api.post("/api/v1/jobs", body, format="json"), "input.prompt")
    assert "8192" in error["message"]
    assert not Job.objects.exists() and not UsageRecord.objects.exists()


def test_the_same_prompt_with_room_for_its_answer_is_accepted(api):
    body = {
        "capability": "text_generation",
        "model": LLM,
        "input": {"prompt": DIGITS},
        "params": {"max_new_tokens": 64},
    }
    response = api.post("/api/v1/jobs", body, format="json")
    assert response.status_code == 202, response.json()


def test_a_conversation_past_the_window_is_refused_naming_the_messages(api):
    messages = [{"role": "user", "content": DIGITS}, {"role": "assistant", "content": "ok"}] * 2
    body = {
        "capability": "dialogue",
        "model": LLM,
        "input": {"messages": [*messages, {"role": "user", "content": "and?"}]},
    }
    _refusal(api.post("/api/v1/jobs", body, format="json"), "input.messages")
    assert not Job.objects.exists()


def test_the_openai_chat_endpoint_refuses_it_the_same_way(api):
    body = {"model": LLM, "messages": [{"role": "user", "content": DIGITS}] * 2, "max_tokens": 16}
    _refusal(api.post("/v1/chat/completions", body, format="json"), "input.messages")


def test_submission_counts_the_prompt_exactly_as_the_worker_renders_and_tokenizes_it():
    from transformers import AutoTokenizer

    path = settings.ALLIANCE_MODELS_DIR / LLM
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    conversations = [
        [{"role": "user", "content": "Summarise the call: the customer was charged twice for roaming."}],
        [
            {"role": "system", "content": "You are a counsellor."},
            {"role": "user", "content": "고객이 화가 났어요. 12,000원을 환불했습니다."},
            {"role": "assistant", "content": "I understand."},
            {"role": "user", "content": "What next? " * 40},
        ],
    ]
    for messages in conversations:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        expected = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        counted = tokens.context_check(model=LLM, capability="dialogue", data={"messages": messages}, params={})
        assert counted == expected


@pytest.fixture
def small_window(settings, tmp_path):
    """The registry's `context_window` option for the real SmolLM2: 256 tokens instead of its config's 8,192."""
    spec = model_specs()[LLM]
    entry = {"options": {**spec.options, "context_window": 256}}
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps({LLM: entry}))
    settings.ALLIANCE_MODELS_FILE = str(models_file)
    model_specs.cache_clear()
    tokens.token_counter.cache_clear()
    yield 256
    model_specs.cache_clear()
    tokens.token_counter.cache_clear()


def test_the_registry_context_window_overrides_the_model_config(api, small_window):
    prompt = "The alliance partners tune models on their own data. " * 20  # about 200 tokens
    body = {
        "capability": "text_generation",
        "model": LLM,
        "input": {"prompt": prompt},
        "params": {"max_new_tokens": 128},
    }
    error = _refusal(api.post("/api/v1/jobs", body, format="json"), "input.prompt")
    assert f"{small_window} tokens" in error["message"]
    body["params"]["max_new_tokens"] = 16
    assert api.post("/api/v1/jobs", body, format="json").status_code == 202


PROBE = """
import sys
import django
django.setup()
from inference import tokens
counted = tokens.context_check(
    model="smollm2-135m-instruct", capability="text_generation", data={"prompt": "Hello there"}, params={}
)
heavy = sorted(name for name in ("torch", "transformers", "sentence_transformers") if name in sys.modules)
print("counted:", counted, "heavy:", heavy, "tokenizers:", "tokenizers" in sys.modules)
"""


def test_the_web_process_counts_tokens_without_torch_or_transformers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="alliance.settings", ALLIANCE_VAR_DIR=str(tmp_path))
    env["ALLIANCE_MODELS_DIR"] = str(settings.ALLIANCE_MODELS_DIR)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "heavy: [] tokenizers: True" in result.stdout, result.stdout
    counted = int(result.stdout.split("counted:")[1].split()[0])
    assert counted > 2  # the chat template's tokens and the prompt's


def test_the_worker_cuts_a_prompt_to_the_window_it_cannot_exceed(tmp_path):
    from inference.backends.llm.engine import generate, load_causal_lm
    from tests.backends.tiny_llama import save_tiny_llama

    path = save_tiny_llama(tmp_path / "tiny", hidden_size=32, heads=2, max_positions=64, initializer_range=0.02)
    lm = load_causal_lm(path, "cpu")
    assert lm.window == 64  # the config's max_position_embeddings
    prompts = ["tuning partner data " * 60, "short prompt"]  # the first is about 180 tokens
    generations = generate(lm, prompts, [{"max_new_tokens": 16, "temperature": 0.0}] * 2)
    for generation in generations:
        assert generation.prompt_tokens + generation.completion_tokens <= 64
    assert generations[0].prompt_tokens == 64 - 16
    capped = generate(lm, ["hi"], [{"max_new_tokens": 500, "temperature": 0.0}])[0]
    assert capped.prompt_tokens + capped.completion_tokens <= 64
