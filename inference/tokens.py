"""Prompt tokens against a model's context window, counted where a job is submitted.

The web process counts with the model's own tokenizer through the light `tokenizers` package (its `tokenizer.json`)
and renders the model's chat template with jinja2, as the worker will: no torch, no transformers. A prompt whose
tokens plus `max_new_tokens` do not fit the window is refused with 400 `context_length_exceeded` before it is
charged or queued. The worker guards the window too (inference.backends.llm.engine), for models whose tokenizer the
web side cannot read.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alliance.errors import InvalidInput
from inference.registry import ModelNotAvailable, ModelSpec, get_model_spec, resolve_source

logger = logging.getLogger(__name__)

# The capabilities whose whole input becomes the prompt, and the input field a refusal names.
PROMPT_FIELDS: dict[str, str] = {"text_generation": "input.prompt", "dialogue": "input.messages"}
_WINDOW_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True)
class TokenCounter:
    """One model's tokenizer, chat template and context window."""

    encode: Callable[[str, bool], int]
    context_window: int
    render_chat: Callable[[list[dict[str, str]]], str] | None

    def prompt_tokens(self, capability: str, data: dict[str, Any]) -> int:
        """The tokens of the prompt the worker will build for this input (inference.backends.llm.runners)."""
        if capability == "text_generation":
            messages = [{"role": "user", "content": data["prompt"]}]
            if self.render_chat is None:
                return self.encode(data["prompt"], True)
        else:
            messages = data["messages"]
            if self.render_chat is None:
                return self.encode("".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:", True)
        try:
            return self.encode(self.render_chat(messages), False)
        except Exception:
            logger.debug("chat template failed at submission; counting message contents", exc_info=True)
            return sum(self.encode(message["content"], False) for message in messages)


def context_window(spec: ModelSpec, path: Path) -> int | None:
    """The registry's `context_window` option, else the model config's position limit."""
    configured = spec.options.get("context_window")
    if configured:
        return int(configured)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for key in _WINDOW_KEYS:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


@lru_cache(maxsize=16)
def token_counter(model: str) -> TokenCounter | None:
    """The counter of a registry model, loaded once per process; None when its files are not readable here."""
    try:
        spec = get_model_spec(model)
        path = resolve_source(spec.source)
    except ModelNotAvailable:
        return None
    window = context_window(spec, path)
    if window is None or not (path / "tokenizer.json").exists():
        logger.info("no tokenizer or context window for %s here; the worker guards its window", model)
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))

    def encode(text: str, add_special_tokens: bool) -> int:
        return len(tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    return TokenCounter(encode=encode, context_window=window, render_chat=_chat_renderer(path))


def _chat_renderer(path: Path) -> Callable[[list[dict[str, str]]], str] | None:
    """The model's chat template as transformers renders it (sandboxed jinja2, trim_blocks, lstrip_blocks)."""
    config: dict[str, Any] = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        config = json.loads((path / "tokenizer_config.json").read_text())
    template_file = path / "chat_template.jinja"
    source = template_file.read_text() if template_file.exists() else config.get("chat_template")
    if isinstance(source, list):  # named templates: the default one
        source = next((t.get("template") for t in source if t.get("name") == "default"), None)
    if not isinstance(source, str) or not source:
        return None
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    environment.globals["raise_exception"] = raise_exception
    template = environment.from_string(source)
    special = {name: _token_text(config.get(name)) for name in _SPECIAL_TOKENS}

    def render(messages: list[dict[str, str]]) -> str:
        return template.render(messages=messages, add_generation_prompt=True, **special)

    return render


def _token_text(token: Any) -> str:
    if isinstance(token, dict):
        return str(token.get("content", ""))
    return token if isinstance(token, str) else ""


def context_check(*, model: str, capability: str, data: dict[str, Any], params: dict[str, Any]) -> int | None:
    """Refuses a prompt that with `max_new_tokens` does not fit the model's context window; the prompt's tokens,
    or None when the capability sends no whole prompt or the model's tokenizer is not readable here."""
    field = PROMPT_FIELDS.get(capability)
    if field is None:
        return None
    counter = token_counter(model)
    if counter is None:
        return None
    prompt = counter.prompt_tokens(capability, data)
    new_tokens = int(params.get("max_new_tokens", 0))
    if prompt + new_tokens > counter.context_window:
        raise InvalidInput(
            f"This model's context window is {counter.context_window} tokens; the input is {prompt} tokens and "
            f"max_new_tokens asks for {new_tokens} more ({prompt + new_tokens}). Shorten the input or lower "
            "max_new_tokens.",
            code="context_length_exceeded",
            param=field,
        )
    return prompt
