"""Constrained decoding on the real default model (SmolLM2-135M-Instruct): JSON mode always parses, json_schema
output always matches its schema, tool calls are calls of the offered functions with valid arguments, and
constrained rows share a batch with free ones (also while streaming)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch

from capabilities.default_models import LLM
from inference.backends.llm.engine import CausalLM, load_causal_lm
from inference.backends.llm.runners import run_dialogue
from inference.backends.llm.smollm2 import prepare_smollm2
from inference.registry import get_model_spec, resolve_source

torch.set_num_threads(1)

SUBJECTS = [
    "a cat",
    "the moon",
    "pancakes",
    "Seoul",
    "a bicycle",
    "the ocean",
    "a violin",
    "coffee",
    "a library",
    "winter",
    "a volcano",
    "chess",
    "a rainbow",
    "bread",
    "a robot",
    "the Eiffel Tower",
    "a garden",
    "tea",
    "an elephant",
    "a train",
    "football",
    "a thunderstorm",
    "a museum",
    "rice",
    "a lighthouse",
]
TASKS = ["Describe {} in JSON.", "Give three facts about {} as a JSON object."]
PROMPTS = [task.format(subject) for subject in SUBJECTS for task in TASKS]  # 50 varied prompts
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def smollm2() -> CausalLM:
    return load_causal_lm(prepare_smollm2(resolve_source(get_model_spec(LLM).source)))


def _chat(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def test_json_mode_always_parses_over_50_varied_prompts_in_one_batch_with_free_rows(smollm2):
    json_mode = {"response_format": {"type": "json_object"}, "temperature": 0.0, "max_new_tokens": 64}
    free = {"temperature": 0.0, "max_new_tokens": 64}
    inputs = [_chat(prompt) for prompt in PROMPTS] + [_chat("Say hello to Ann.")]
    outputs = run_dialogue(smollm2, inputs, [json_mode] * len(PROMPTS) + [free])
    for prompt, output in zip(PROMPTS, outputs, strict=False):
        value = json.loads(output["message"]["content"])  # raises if any does not parse
        assert isinstance(value, dict) and value, (prompt, output)
        assert output["finish_reason"] == "stop", (prompt, output)
        assert output["tokens"]["completion"] <= 64
    assert not outputs[-1]["message"]["content"].startswith("{")  # the free row in the same batch is not held


def test_json_schema_output_always_matches_the_schema(smollm2):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "mood": {"type": "string", "enum": ["happy", "sad", "calm"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "age", "mood", "tags"],
        "additionalProperties": False,
    }
    params = {
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        "temperature": 0.8,
        "seed": 7,
        "max_new_tokens": 64,
    }
    people = ["a pirate", "a baker", "a child", "an astronaut", "a teacher", "a farmer", "a poet", "a nurse"]
    outputs = run_dialogue(smollm2, [_chat(f"Invent {who}.") for who in people], [params] * len(people))
    for output in outputs:
        jsonschema.validate(json.loads(output["message"]["content"]), schema)
        assert output["finish_reason"] == "stop"


def test_required_and_named_tool_choice_call_an_offered_function_with_valid_arguments(smollm2):
    question = _chat("What is the weather in Seoul, in celsius?")
    required = {"tools": [WEATHER, TIME], "tool_choice": "required", "temperature": 0.0, "max_new_tokens": 64}
    named = {**required, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    by_name = {tool["function"]["name"]: tool["function"]["parameters"] for tool in (WEATHER, TIME)}
    outputs = run_dialogue(smollm2, [question, question], [required, named])
    for output in outputs:
        assert output["finish_reason"] == "tool_calls"
        assert output["message"]["content"] == ""
        [call] = output["message"]["tool_calls"]
        assert call["type"] == "function" and call["id"].startswith("call_")
        jsonschema.validate(json.loads(call["function"]["arguments"]), by_name[call["function"]["name"]])
    assert outputs[1]["message"]["tool_calls"][0]["function"]["name"] == "get_time"


def test_a_tool_result_in_the_conversation_leads_to_a_plain_answer(smollm2):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Seoul"}'}}
    messages = [
        {"role": "user", "content": "What is the weather in Seoul?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "Sunny, 21 degrees celsius", "tool_call_id": "call_1"},
    ]
    params = {"tools": [WEATHER], "tool_choice": "none", "temperature": 0.0, "max_new_tokens": 32}
    [output] = run_dialogue(smollm2, [{"messages": messages}], [params])
    assert "tool_calls" not in output["message"]
    assert output["message"]["content"] and output["finish_reason"] in {"stop", "length"}


def test_streaming_holds_back_tool_calls_and_streams_free_rows_of_the_same_batch(smollm2):
    pieces: dict[int, str] = {}
    required = {"tools": [WEATHER], "tool_choice": "required", "temperature": 0.0, "max_new_tokens": 48}
    auto = {"tools": [WEATHER], "tool_choice": "auto", "temperature": 0.0, "max_new_tokens": 48}
    inputs = [_chat("Weather in Paris, celsius?"), _chat("Hi! How are you?")]
    outputs = run_dialogue(
        smollm2,
        inputs,
        [required, auto],
        on_delta=lambda row, text: pieces.__setitem__(row, pieces.get(row, "") + text),
    )
    assert outputs[0]["finish_reason"] == "tool_calls" and 0 not in pieces
    if outputs[1]["finish_reason"] == "tool_calls":  # "auto": the model chose; either way the stream agrees
        assert 1 not in pieces
    else:
        assert pieces[1] == outputs[1]["message"]["content"] and not pieces[1].startswith("{")


# The mask itself, on a tiny random-weight Llama (whatever it prefers, the grammar decides) -------------------------


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> CausalLM:
    from tests.backends.tiny_llama import save_tiny_llama

    path = tmp_path_factory.mktemp("tiny-llama-constrained")
    return load_causal_lm(save_tiny_llama(path, hidden_size=32, heads=2, max_positions=256, initializer_range=0.5))


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"temperature": 1.3, "top_p": 0.5, "seed": 3}])
def test_a_random_model_still_writes_json_that_parses_with_greedy_and_sampled_decoding(tiny_lm, sampling):
    schema = {"type": "object", "properties": {"word": {"type": "string"}, "n": {"type": "integer"}}}
    json_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    params = [
        {"response_format": {"type": "json_object"}, "max_new_tokens": 40, **sampling},
        {"response_format": json_schema, "max_new_tokens": 40, **sampling},
        {"max_new_tokens": 40, **sampling},
    ]
    outputs = run_dialogue(tiny_lm, [_chat("Hello")] * 3, params)
    assert isinstance(json.loads(outputs[0]["message"]["content"]), dict)
    jsonschema.validate(json.loads(outputs[1]["message"]["content"]), schema)
    assert outputs[0]["finish_reason"] == outputs[1]["finish_reason"] == "stop"
