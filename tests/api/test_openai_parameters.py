"""/v1 refuses every request field it does not honour (400 unsupported_parameter naming it) before any job or
charge, accepts OpenAI's no-op defaults, and validates structured-output fields (response_format, tools,
tool_choice) the same way on /v1 and in the native API's params."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from alliance.api.errors import ApiError
from api.openai import parameters
from capabilities.text import DialogueParams
from inference.models import Job
from partners.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("prepared_llm")]

LLM = "smollm2-135m-instruct"
CHAT = {"model": LLM, "messages": [{"role": "user", "content": "Hi"}]}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]

REFUSED = [
    ("/v1/chat/completions", CHAT, "logprobs", True),
    ("/v1/chat/completions", CHAT, "top_logprobs", 2),
    ("/v1/chat/completions", CHAT, "logit_bias", {"50256": -100}),
    ("/v1/chat/completions", CHAT, "functions", [{"name": "f", "parameters": {}}]),
    ("/v1/chat/completions", CHAT, "function_call", "auto"),
    ("/v1/chat/completions", CHAT, "frequency_penalty", 0.5),
    ("/v1/chat/completions", CHAT, "presence_penalty", -1),
    ("/v1/chat/completions", CHAT, "parallel_tool_calls", True),
    ("/v1/chat/completions", CHAT, "user", "someone"),
    ("/v1/chat/completions", CHAT, "service_tier", "auto"),
    ("/v1/chat/completions", CHAT, "store", True),
    ("/v1/chat/completions", CHAT, "metadata", {"a": "b"}),
    ("/v1/chat/completions", CHAT, "modalities", ["text", "audio"]),
    ("/v1/chat/completions", CHAT, "audio", {"voice": "alloy", "format": "wav"}),
    ("/v1/chat/completions", CHAT, "prediction", {"type": "content", "content": "x"}),
    ("/v1/chat/completions", CHAT, "reasoning_effort", "low"),
    ("/v1/chat/completions", CHAT, "web_search_options", {}),
    ("/v1/chat/completions", CHAT, "made_up_field", 1),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "suffix", "end"),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "echo", True),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "best_of", 2),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "logprobs", 1),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "logit_bias", {"1": 1}),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "presence_penalty", 1.0),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "response_format", {"type": "json_object"}),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "tools", TOOLS),
    ("/v1/completions", {"model": LLM, "prompt": "Hi"}, "user", "someone"),
    ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "Hi"}, "user", "someone"),
    ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "Hi"}, "dimensions", 128),
    ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "Hi"}, "made_up_field", "x"),
    ("/v1/images/generations", {"prompt": "daisies"}, "quality", "hd"),
    ("/v1/images/generations", {"prompt": "daisies"}, "style", "vivid"),
    ("/v1/images/generations", {"prompt": "daisies"}, "background", "transparent"),
    ("/v1/images/generations", {"prompt": "daisies"}, "user", "someone"),
]


@pytest.mark.parametrize(("path", "body", "field", "value"), REFUSED, ids=[f"{p}:{f}" for p, _, f, _ in REFUSED])
def test_each_unsupported_field_is_refused_by_name_before_any_job(api, path, body, field, value):
    response = api.post(path, {**body, field: value}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "unsupported_parameter"
    assert error["param"] == field
    assert field in error["message"]
    assert not Job.objects.exists() and not UsageRecord.objects.exists()


def test_every_endpoint_has_an_allow_list_and_refuses_what_is_not_on_it():
    for endpoint in parameters.HONOURED:
        with pytest.raises(ApiError) as refused:
            parameters.check(endpoint, {"model": "m", "not_a_field": 1})
        assert refused.value.detail.code == "unsupported_parameter"


@pytest.mark.parametrize(
    "extra",
    [
        {"frequency_penalty": 0, "presence_penalty": 0.0, "logprobs": False, "parallel_tool_calls": False},
        {"logit_bias": None, "user": None, "functions": None, "top_logprobs": None},  # null is absent
        {"n": 1, "stream": False, "temperature": 0.7, "top_p": 1, "seed": 1, "stop": ["\n"], "max_tokens": 5},
        {"response_format": {"type": "json_object"}, "tools": TOOLS, "tool_choice": "required"},
    ],
)
def test_no_op_values_and_honoured_fields_pass_the_chat_allow_list(extra):
    parameters.check("chat.completions", {**CHAT, **extra})


def test_a_truthy_lookalike_of_a_no_op_value_is_refused():
    with pytest.raises(ApiError):
        parameters.check("chat.completions", {**CHAT, "logprobs": 0})  # 0 is not false


def test_an_unknown_message_field_is_refused_by_its_path(api):
    body = {**CHAT, "messages": [{"role": "user", "content": "Hi", "name": "ann"}]}
    response = api.post("/v1/chat/completions", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].name"
    assert response.json()["error"]["code"] == "unsupported_parameter"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": "no"}}}, "response_format"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
        ({"tools": TOOLS * 2}, "tools"),
        ({"response_format": {"type": "json_object"}, "stop": ["}"]}, "stop"),
        ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),  # with tool_choice auto
    ],
)
def test_structured_output_fields_are_validated_before_any_job(api, extra, param):
    response = api.post("/v1/chat/completions", {**CHAT, **extra}, format="json")
    assert response.status_code == 400, response.json()
    assert param in response.json()["error"]["param"]
    assert not Job.objects.exists()


def test_the_native_api_takes_the_same_structured_params(api):
    body = {"capability": "dialogue", "input": CHAT, "params": {"tool_choice": "auto"}}
    body["input"] = {"messages": CHAT["messages"]}
    response = api.post("/api/v1/jobs", body, format="json")
    assert response.status_code == 400 and "tool_choice" in response.json()["error"]["param"]
    body["params"] = {"tools": TOOLS, "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}
    body["params"]["tool_choice"] = "none"
    response = api.post("/api/v1/jobs", body, format="json")
    assert response.status_code == 202, response.json()
    params = Job.objects.get().params
    assert params["tool_choice"] == "none" and params["tools"][0]["function"]["name"] == "get_weather"
    assert params["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": {}}}


def test_dialogue_params_default_tool_choice_to_auto_and_drop_text_format():
    params = DialogueParams(data={"tools": TOOLS, "response_format": {"type": "text"}})
    assert params.is_valid(), params.errors
    assert params.validated_data["tool_choice"] == "auto"
    assert "response_format" not in params.validated_data


def test_tool_messages_need_their_call_id_and_only_assistants_carry_calls():
    from capabilities.text import DialogueInput

    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Seoul"}'}}
    good = [
        {"role": "user", "content": "Weather in Seoul?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "Sunny, 21 C", "tool_call_id": "call_1"},
    ]
    assert DialogueInput(data={"messages": good}).is_valid()
    for bad in (
        [*good[:2], {"role": "tool", "content": "Sunny"}],
        [{"role": "user", "content": "Hi", "tool_calls": [call]}],
        [{"role": "user", "content": ""}],
    ):
        assert not DialogueInput(data={"messages": bad}).is_valid()
    with pytest.raises(serializers.ValidationError):
        DialogueParams(data={"tools": TOOLS, "tool_choice": "sometimes"}).is_valid(raise_exception=True)
