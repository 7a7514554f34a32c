"""Structured output for the dialogue capability: `response_format` (json_object, json_schema) and `tools` with
`tool_choice`, in OpenAI's shapes. Pure Python, shared by the web (validation) and the worker (what the model is
told and held to, and how its output is read back); the grammar itself is compiled on the worker
(inference.backends.llm.constrained).

How a request becomes a constraint:
- response_format json_object: any JSON object; json_schema: a JSON value of the schema (always strict).
- tools with tool_choice "required" or a named function: a call `{"name": <a tool's name>, "arguments": <that
  tool's parameters schema>}`; "auto" (the default with tools): either such a call or plain text that does not
  start with "{" (the model's first character decides); "none": plain text, tools not offered.
The model is also told (a system message) the schema or the functions and how to call them, since a grammar says
what may be generated, not what is asked. Earlier tool calls and results in the conversation are rendered as text
(the call as the same JSON, the result as a user turn naming the function), which every chat template accepts.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

MAX_TOOLS = 32
MAX_SCHEMA_CHARS = 16_000
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCHEMA_KEYS = {"name", "schema", "strict", "description"}
_FUNCTION_KEYS = {"name", "description", "parameters", "strict"}


# Validation (the web side) -------------------------------------------------------------------------------------------


def _only(value: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise serializers.ValidationError(f"{where}.{unknown[0]} is not supported; expected: {expected}.")


def _schema(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"{where} must be a JSON schema object.")
    if len(json.dumps(value)) > MAX_SCHEMA_CHARS:
        raise serializers.ValidationError(f"{where} is longer than {MAX_SCHEMA_CHARS} characters.")
    return value


def validate_response_format(value: Any) -> dict[str, Any] | None:
    """{"type": "text"} (the default: returned as None), {"type": "json_object"}, or {"type": "json_schema",
    "json_schema": {"name", "schema", "strict", "description"}}."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        raise serializers.ValidationError('Must be {"type": "text" | "json_object" | "json_schema", ...}.')
    if value["type"] == "json_schema":
        _only(value, {"type", "json_schema"}, "response_format")
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise serializers.ValidationError("response_format.json_schema must be an object with a `schema`.")
        _only(spec, _SCHEMA_KEYS, "response_format.json_schema")
        name = spec.get("name", "response")
        if not isinstance(name, str) or not _NAME.match(name):
            raise serializers.ValidationError("response_format.json_schema.name must match ^[A-Za-z0-9_-]{1,64}$.")
        if not isinstance(spec.get("strict", True), bool | None):
            raise serializers.ValidationError("response_format.json_schema.strict must be true or false.")
        schema = _schema(spec.get("schema", {}), "response_format.json_schema.schema")
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    _only(value, {"type"}, "response_format")
    return None if value["type"] == "text" else {"type": "json_object"}


def validate_tools(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TOOLS:
        raise serializers.ValidationError(f"Must be a list of 1 to {MAX_TOOLS} tools.")
    tools, names = [], set()
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise serializers.ValidationError(f'{where} must be {{"type": "function", "function": {{...}}}}.')
        _only(tool, {"type", "function"}, where)
        function = tool["function"]
        _only(function, _FUNCTION_KEYS, f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise serializers.ValidationError(f"{where}.function.name must match ^[A-Za-z0-9_-]{{1,64}}$.")
        if name in names:
            raise serializers.ValidationError(f"Two tools are named {name!r}.")
        names.add(name)
        description = function.get("description", "")
        if not isinstance(description, str) or len(description) > 1_000:
            raise serializers.ValidationError(f"{where}.function.description must be a string of at most 1,000.")
        if not isinstance(function.get("strict", True), bool | None):
            raise serializers.ValidationError(f"{where}.function.strict must be true or false.")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        cleaned = {"name": name, "parameters": _schema(parameters, f"{where}.function.parameters")}
        if description:
            cleaned["description"] = description
        tools.append({"type": "function", "function": cleaned})
    return tools


def validate_tool_choice(value: Any) -> str | dict[str, Any] | None:
    if value is None:
        return None
    if value in ("none", "auto", "required"):
        return value
    if (
        isinstance(value, dict)
        and value.get("type") == "function"
        and isinstance(value.get("function"), dict)
        and isinstance(value["function"].get("name"), str)
        and set(value) == {"type", "function"}
        and set(value["function"]) == {"name"}
    ):
        return {"type": "function", "function": {"name": value["function"]["name"]}}
    raise serializers.ValidationError(
        'Must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.'
    )


def validate_combination(params: dict[str, Any]) -> dict[str, Any]:
    """The rules across fields; returns params without defaults that change nothing."""
    tools, choice, response_format = params.get("tools"), params.get("tool_choice"), params.get("response_format")
    if choice is not None and not tools:
        raise serializers.ValidationError({"tool_choice": ["tool_choice needs tools."]})
    if isinstance(choice, dict) and choice["function"]["name"] not in {t["function"]["name"] for t in tools or ()}:
        raise serializers.ValidationError({"tool_choice": [f"No tool named {choice['function']['name']!r}."]})
    if tools and choice is None:
        params["tool_choice"] = "auto"
    plan = plan_of(params)
    if plan.tools and response_format and plan.or_text:
        raise serializers.ValidationError(
            {"response_format": ["A JSON response_format with tools is supported with tool_choice none or required."]}
        )
    if plan.constrained and params.get("stop"):
        raise serializers.ValidationError(
            {"stop": ["stop cannot be combined with response_format json or tool calls (it would cut the JSON)."]}
        )
    for key in ("response_format", "tools", "tool_choice"):
        if params.get(key) is None:
            params.pop(key, None)
    return params


# The worker side -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one dialogue job asks for: `schema` (the JSON schema the output must match; None: free text), whether
    plain text is allowed instead (`or_text`, tool_choice auto), and the tools offered (empty: none)."""

    schema: dict[str, Any] | None
    or_text: bool
    tools: tuple[dict[str, Any], ...]
    hint: str | None

    @property
    def constrained(self) -> bool:
        return self.schema is not None


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A call of one of the functions: `{"name": <its name>, "arguments": <its parameters schema>}`."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": tool["function"]["name"]}, "arguments": tool["function"]["parameters"]},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def plan_of(params: dict[str, Any]) -> Plan:
    tools = list(params.get("tools") or ())
    choice = params.get("tool_choice") or ("auto" if tools else "none")
    if tools and choice != "none":
        if isinstance(choice, dict):
            tools = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
        listing = json.dumps([tool["function"] for tool in tools], ensure_ascii=False)
        how = (
            'To call a function, answer with only a JSON object {"name": <function name>, "arguments": {...}}.'
            if choice == "auto"
            else 'Answer with only a JSON object {"name": <function name>, "arguments": {...}} that calls one.'
        )
        hint = f"You can call these functions:\n{listing}\n{how}"
        if choice == "auto":
            hint += " Otherwise answer in plain text."
        return Plan(tool_call_schema(tools), choice == "auto", tuple(tools), hint)
    response_format = params.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        listing = json.dumps(schema, ensure_ascii=False)
        hint = f"Answer with only a JSON object that matches this JSON schema:\n{listing}"
        return Plan(schema, False, (), hint)
    if response_format.get("type") == "json_object":
        return Plan({"type": "object"}, False, (), 'Answer with only a JSON object, such as {"answer": "..."}.')
    return Plan(None, False, (), None)


def prompt_messages(messages: list[dict[str, Any]], plan: Plan) -> list[dict[str, str]]:
    """The conversation as plain role/content turns for a chat template, with the plan's hint in the system turn."""
    names: dict[str, str] = {}
    turns: list[dict[str, str]] = []
    for message in messages:
        role, content = message["role"], message.get("content") or ""
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                names[call.get("id", "")] = call["function"]["name"]
                calls.append(_call_text(call["function"]["name"], call["function"].get("arguments", "{}")))
            content = "\n".join([content, *calls]).strip()
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""), "the function")
            role, content = "user", f"The result of {name}: {content}"
        turns.append({"role": role, "content": content})
    if plan.hint:
        if turns and turns[0]["role"] == "system":
            turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{plan.hint}"}
        else:
            turns.insert(0, {"role": "system", "content": plan.hint})
    return turns


def _call_text(name: str, arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = arguments
    return json.dumps({"name": name, "arguments": parsed}, ensure_ascii=False)


def is_tool_call_text(plan: Plan, text: str) -> bool:
    """Whether a row's text (stripped) is, or is becoming, a tool call rather than an answer."""
    return bool(plan.tools) and text.startswith("{")


def message_of(plan: Plan, text: str, finish_reason: str) -> tuple[dict[str, Any], str]:
    """The assistant message and finish_reason for a row's final text: a tool call when the plan offered tools and
    the model called one (finish_reason "tool_calls"), else the text as content. A call cut by max_new_tokens is
    returned as its text with finish_reason "length", as OpenAI does."""
    content = text.strip()
    if finish_reason == "stop" and is_tool_call_text(plan, content):
        try:
            call = json.loads(content)
        except ValueError:
            call = None
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            tool_call = {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False),
                },
            }
            return {"role": "assistant", "content": "", "tool_calls": [tool_call]}, "tool_calls"
    return {"role": "assistant", "content": content}, finish_reason
