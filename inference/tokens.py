"""A model's tokenizer and chat template, read web-safe; and prompt tokens against its context window, counted
where a job is submitted.

The web process counts with the model's own tokenizer through the light `tokenizers` package (its `tokenizer.json`)
and renders the model's chat template with sandboxed jinja2 as transformers does: no torch, no transformers. One
loader serves every counter: the context check here and the tuning counts (inference.services.tuning_tokens).

A prompt whose tokens plus `max_new_tokens` do not fit the window is refused with 400 `context_length_exceeded`
before it is charged or queued. The worker guards the window too (inference.backends.llm.engine), for models whose
tokenizer the web side cannot read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from alliance.errors import InvalidInput
from capabilities import structured
from inference.registry import ModelNotAvailable, ModelSpec, get_model_spec, resolve_source

if TYPE_CHECKING:
    from jinja2 import Template
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

# The capabilities whose whole input becomes the prompt, and the input field a refusal names.
PROMPT_FIELDS: dict[str, str] = {"text_generation": "input.prompt", "dialogue": "input.messages"}
_WINDOW_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")

K = TypeVar("K")
V = TypeVar("V")


class _LoadedOnce(Generic[K, V]):
    """A per-process cache of what loaded: a key whose load answered None is asked again next time (its model may
    be prepared meanwhile)."""

    def __init__(self, load: Callable[[K], V | None]) -> None:
        self._load = load
        self._loaded: dict[K, V] = {}
        self.__doc__ = load.__doc__

    def __call__(self, key: K) -> V | None:
        if key not in self._loaded:
            value = self._load(key)
            if value is None:
                return None
            self._loaded[key] = value
        return self._loaded[key]

    def cache_clear(self) -> None:
        self._loaded.clear()


# ---------------------------------------------------------------- a model's tokenizer and chat template


@dataclass(frozen=True)
class ModelTokenizer:
    """One model's `tokenizer.json` (no truncation, no padding), special tokens and chat template."""

    tokenizer: Tokenizer
    special_tokens: dict[str, str]
    chat_template: Template | None

    @property
    def eos_token(self) -> str:
        return self.special_tokens["eos_token"]

    @property
    def has_chat_template(self) -> bool:
        return self.chat_template is not None

    def count(self, text: str, *, add_special_tokens: bool = True) -> int:
        """The tokens of one text."""
        return len(self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def count_batch(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> list[int]:
        """The tokens of each text."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [len(encoding.ids) for encoding in encodings]

    def render_chat(self, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = False) -> str:
        """The messages through the model's chat template, as transformers' `apply_chat_template(tokenize=False)`;
        ValueError when the model has none (or its template raises)."""
        if self.chat_template is None:
            raise ValueError("this model has no chat template")
        return self.chat_template.render(
            messages=list(messages), add_generation_prompt=add_generation_prompt, **self.special_tokens
        )


@_LoadedOnce
def tokenizer_at(path: Path) -> ModelTokenizer | None:
    """The tokenizer in a model directory, loaded once per process; None when it has no `tokenizer.json`."""
    if not (path / "tokenizer.json").exists():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    config = _tokenizer_config(path)
    special = {name: _token_text(config.get(name)) for name in SPECIAL_TOKENS}
    return ModelTokenizer(tokenizer=tokenizer, special_tokens=special, chat_template=_chat_template(path, config))


def model_tokenizer(model: str) -> ModelTokenizer | None:
    """The tokenizer of a registry model; None when its files are not readable here."""
    try:
        path = resolve_source(get_model_spec(model).source)
    except ModelNotAvailable:
        return None
    return tokenizer_at(path)


def _tokenizer_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / "tokenizer_config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def _chat_template(path: Path, config: dict[str, Any]) -> Template | None:
    """The model's chat template as transformers compiles it (sandboxed jinja2, trim_blocks, lstrip_blocks)."""
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
    return environment.from_string(source)


def _token_text(token: Any) -> str:
    if isinstance(token, dict):
        return str(token.get("content", ""))
    return token if isinstance(token, str) else ""


# ---------------------------------------------------------------- the context window at submission


@dataclass(frozen=True)
class TokenCounter:
    """One model's tokenizer and context window."""

    tokenizer: ModelTokenizer
    context_window: int

    def prompt_tokens(self, capability: str, data: dict[str, Any], params: dict[str, Any] | None = None) -> int:
        """The tokens of the prompt the worker will build for this input (inference.backends.llm.runners), with a
        dialogue's tool or schema instructions and earlier tool calls rendered as the worker renders them."""
        tokenizer = self.tokenizer
        if capability == "text_generation":
            messages = [{"role": "user", "content": data["prompt"]}]
            if not tokenizer.has_chat_template:
                return tokenizer.count(data["prompt"])
        else:
            messages = structured.prompt_messages(data["messages"], structured.plan_of(params or {}))
            if not tokenizer.has_chat_template:
                return tokenizer.count("".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:")
        try:
            rendered = tokenizer.render_chat(messages, add_generation_prompt=True)
            return tokenizer.count(rendered, add_special_tokens=False)
        except Exception:
            logger.debug("chat template failed at submission; counting message contents", exc_info=True)
            return sum(tokenizer.count(message["content"], add_special_tokens=False) for message in messages)


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


@_LoadedOnce
def token_counter(model: str) -> TokenCounter | None:
    """The counter of a registry model, loaded once per process; None when its files are not readable here."""
    try:
        spec = get_model_spec(model)
        path = resolve_source(spec.source)
    except ModelNotAvailable:
        return None
    window = context_window(spec, path)
    tokenizer = tokenizer_at(path) if window is not None else None
    if window is None or tokenizer is None:
        logger.info("no tokenizer or context window for %s here; the worker guards its window", model)
        return None
    return TokenCounter(tokenizer=tokenizer, context_window=window)


def context_check(*, model: str, capability: str, data: dict[str, Any], params: dict[str, Any]) -> int | None:
    """Refuses a prompt that with `max_new_tokens` does not fit the model's context window; the prompt's tokens,
    or None when the capability sends no whole prompt or the model's tokenizer is not readable here."""
    field = PROMPT_FIELDS.get(capability)
    if field is None:
        return None
    counter = token_counter(model)
    if counter is None:
        return None
    prompt = counter.prompt_tokens(capability, data, params)
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
