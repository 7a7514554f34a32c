"""What each OpenAI-compatible endpoint accepts: every body field is either honoured, accepted only with the value
that changes nothing (OpenAI's default), or refused with 400 `unsupported_parameter` naming it. Nothing is ignored.

A field sent as null counts as absent (clients such as LiteLLM send nulls for what they leave unset). Fields the
official SDK and LangChain's ChatOpenAI send by default (`model`, `messages`, `stream`, `n`, `temperature`,
`stream_options`, `parallel_tool_calls` false with structured output) are all in these lists.
"""

from __future__ import annotations

from typing import Any

from alliance.api.errors import ApiError

_SAMPLING = {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "n", "stream", "stream_options"}

# Honoured: passed on to the job (or read by the view).
HONOURED: dict[str, frozenset[str]] = {
    "chat.completions": frozenset(
        _SAMPLING | {"messages", "max_completion_tokens", "response_format", "tools", "tool_choice"}
    ),
    "completions": frozenset(_SAMPLING | {"prompt"}),
    "embeddings": frozenset({"model", "input", "encoding_format", "dimensions"}),
    "images.generations": frozenset({"model", "prompt", "n", "size", "response_format", "steps"}),
}

# Accepted only with these values (the ones that change nothing); any other value is refused.
NO_OP_VALUES: dict[str, dict[str, tuple[Any, ...]]] = {
    "chat.completions": {
        "frequency_penalty": (0, 0.0),
        "presence_penalty": (0, 0.0),
        "logprobs": (False,),
        "parallel_tool_calls": (False,),  # one tool call per answer at most
    },
    "completions": {
        "frequency_penalty": (0, 0.0),
        "presence_penalty": (0, 0.0),
        "echo": (False,),
        "best_of": (1,),
    },
    "embeddings": {},
    "images.generations": {},
}

_WHY = {
    "parallel_tool_calls": "at most one tool call is made per answer; send parallel_tool_calls=false or leave it out",
    "functions": "the deprecated `functions` is not supported; use `tools`",
    "function_call": "the deprecated `function_call` is not supported; use `tool_choice`",
    "logprobs": "log probabilities are not returned",
    "top_logprobs": "log probabilities are not returned",
    "logit_bias": "logit_bias is not supported",
}


def check(endpoint: str, body: dict[str, Any]) -> None:
    """Raises 400 unsupported_parameter for the first field (in sorted order) that `endpoint` does not honour."""
    honoured = HONOURED[endpoint]
    no_ops = NO_OP_VALUES[endpoint]
    for name in sorted(body):
        value = body[name]
        if name in honoured or value is None:
            continue
        if name in no_ops:
            if any(value == allowed and type(value) is type(allowed) for allowed in no_ops[name]):
                continue
            allowed = " or ".join(repr(v).lower() if isinstance(v, bool) else repr(v) for v in no_ops[name][:1])
            reason = _WHY.get(name, f"only {allowed} (the default) is supported")
            raise ApiError(
                f"`{name}` = {value!r} is not supported on /v1/{endpoint.replace('.', '/')}: {reason}.",
                code="unsupported_parameter",
                param=name,
            )
        reason = _WHY.get(name, "it is not supported")
        raise ApiError(
            f"`{name}` is not supported on /v1/{endpoint.replace('.', '/')}: {reason}.",
            code="unsupported_parameter",
            param=name,
        )
