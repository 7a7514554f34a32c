"""Structured output through the real stack (live server, a real worker, SmolLM2): the official openai SDK's JSON
mode, json_schema (`parse` with a Pydantic model), a tools round-trip and streamed tool calls, and LangChain's
ChatOpenAI.with_structured_output, unchanged but for base_url and key."""

from __future__ import annotations

import json

import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from capabilities import structured
from inference.models import Job
from tests.factories import make_key, make_partner
from tests.integration.conftest import sdk_client

pytestmark = pytest.mark.services

CHAT_MODEL = "smollm2-135m-instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def raw_key(shared_worker, transactional_db) -> str:
    return make_key(make_partner("LG CNS", sector="IT"))[1]


@pytest.fixture
def client(live_server, raw_key) -> openai.OpenAI:
    return sdk_client(live_server, raw_key)


def test_json_mode_parses_and_usage_counts_the_real_prompt_tokens(client, prepared_llm):
    from transformers import AutoTokenizer

    from inference.backends import prepare
    from inference.registry import get_model_spec

    prompts = ["Describe a cat.", "List two facts about Seoul.", "What is in a pancake?"]
    tokenizer = AutoTokenizer.from_pretrained(prepare(get_model_spec(CHAT_MODEL)))
    for prompt in prompts:
        messages = [{"role": "user", "content": prompt}]
        response = client.chat.completions.create(
            model=CHAT_MODEL, messages=messages, response_format={"type": "json_object"}, temperature=0, max_tokens=64
        )
        choice = response.choices[0]
        assert isinstance(json.loads(choice.message.content), dict) and choice.finish_reason == "stop"
        plan = structured.plan_of({"response_format": {"type": "json_object"}})
        rendered = tokenizer.apply_chat_template(
            structured.prompt_messages(messages, plan), tokenize=False, add_generation_prompt=True
        )
        assert response.usage.prompt_tokens == len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        # the tokens generated, not the text re-tokenized: a grammar often takes a path of more, shorter tokens
        retokenized = len(tokenizer(choice.message.content, add_special_tokens=False)["input_ids"])
        assert retokenized - 2 <= response.usage.completion_tokens <= 64


def test_json_schema_through_the_sdks_parse(client):
    completion = client.chat.completions.parse(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Invent a pirate with a name and an age."}],
        response_format=Person,
        temperature=0,
        max_tokens=48,
    )
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and isinstance(person.age, int)


def test_a_tools_round_trip_call_then_result_then_answer(client):
    messages = [{"role": "user", "content": "What is the weather in Seoul?"}]
    first = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages, tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=48
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees celsius."},
    ]
    final = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages, tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=32
    )
    assert final.choices[0].message.content and not final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason in {"stop", "length"}
    assert Job.objects.filter(capability="dialogue").count() == 2
    assert Job.objects.order_by("created_at").last().input["messages"][2]["role"] == "tool"


def test_a_streamed_tool_call_arrives_as_delta_tool_calls(client):
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=48,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    calls = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert calls and calls[0].id.startswith("call_") and calls[0].function.name == "get_weather"
    arguments = "".join(call.function.arguments or "" for call in calls)
    assert isinstance(json.loads(arguments)["city"], str)
    assert not any(chunk.choices and chunk.choices[0].delta.content for chunk in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(live_server, raw_key, method):
    llm = ChatOpenAI(
        model=CHAT_MODEL, api_key=raw_key, base_url=f"{live_server.url}/v1", temperature=0, max_tokens=48, max_retries=0
    )
    person = llm.with_structured_output(Person, method=method).invoke("Invent a baker with a name and an age.")
    assert isinstance(person, Person) and isinstance(person.name, str)


def test_refused_parameters_raise_the_sdks_bad_request(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], logprobs=True, max_tokens=4
        )
    assert refused.value.code == "unsupported_parameter" and refused.value.param == "logprobs"
    assert not Job.objects.exists()
