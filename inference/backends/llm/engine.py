"""Causal language models (SmolLM2-135M-Instruct by default, any Hugging Face causal-LM directory in production):
loading and batched generation. The capability runners built on it are in inference.backends.llm.runners.

Pure functions over loaded objects; the registry and the worker decide which model and device they get.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from inference.backends.device import resolve_device, resolve_dtype

if TYPE_CHECKING:
    from inference.backends.llm.constrained import Constraint

FinishReason = Literal["stop", "length"]
OnDelta = Callable[[int, str], None]  # (prompt index, text): the next piece of that prompt's completion
_WINDOW_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")

logger = logging.getLogger(__name__)


# Loading ------------------------------------------------------------------------------------------------------------


@dataclass
class CausalLM:
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    device: str
    context_window: int | None = None  # None: the model config's position limit

    @property
    def window(self) -> int | None:
        """The most tokens (prompt and completion) one row may hold."""
        if self.context_window:
            return self.context_window
        config = getattr(self.model, "config", None)
        for key in _WINDOW_KEYS:
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def end_token_ids(self) -> frozenset[int]:
        """Token ids that end a completion: the model's EOS ids and the pad id."""
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured]
        return frozenset(i for i in [*ids, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id] if i is not None)


def load_causal_lm(
    path: Path,
    device: str = "cpu",
    dtype: str = "auto",
    *,
    trust_remote_code: bool = False,
    context_window: int | None = None,
) -> CausalLM:
    """Tokenizer (left padding, a pad token) and model in eval mode from a local Hugging Face directory."""
    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"The tokenizer in {path} has neither a pad nor an EOS token.")
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=resolve_dtype(device, dtype), local_files_only=True, trust_remote_code=trust_remote_code
    )
    model.to(device).eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return CausalLM(tokenizer=tokenizer, model=model, device=device, context_window=context_window)


# Batched generation -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Against echoing and looping (a small model on Korean loops on syllables): a mild penalty on tokens already in
    # the row (prompt and completion) and no 6-token sequence generated twice. 1.1 and 6 leave English answers as
    # they were (bench/quality.py measures both languages); 1.0 and 0 turn them off.
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 6

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Sampling:
        return cls(
            max_new_tokens=int(params.get("max_new_tokens", 64)),
            temperature=float(params.get("temperature", 0.7)),
            top_p=float(params.get("top_p", 0.95)),
            seed=params.get("seed"),
            stop=tuple(stop for stop in params.get("stop") or () if stop),
            repetition_penalty=float(params.get("repetition_penalty", cls.repetition_penalty)),
            no_repeat_ngram_size=int(params.get("no_repeat_ngram_size", cls.no_repeat_ngram_size)),
        )

    @property
    def batch_key(self) -> tuple[int, float, float, int | None, float, int]:
        return (
            self.max_new_tokens,
            self.temperature,
            self.top_p,
            self.seed,
            self.repetition_penalty,
            self.no_repeat_ngram_size,
        )


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


def generate(
    lm: CausalLM,
    prompts: list[str],
    params: list[dict],
    *,
    add_special_tokens: bool = True,
    on_delta: OnDelta | None = None,
    grammars: Sequence[Constraint | None] | None = None,
) -> list[Generation]:
    """One completion per prompt, in order. Prompts with the same Sampling.batch_key (max_new_tokens, temperature,
    top_p, seed, repetition_penalty, no_repeat_ngram_size) run as one left-padded batch: greedy when temperature is
    0, else sampling (seeded per batch when a seed is given, so a seeded result is reproducible for the same batch).
    Text is cut at the first `stop` string (finish_reason "stop", as for EOS); "length" means max_new_tokens ran
    out. Pass add_special_tokens=False for prompts already
    rendered by a chat template.

    on_delta(index, text), when given, receives each prompt's completion as it is generated, from inside the
    batched loop (see _DeltaEmitter): the pieces of one prompt, concatenated, equal its Generation.text exactly.

    grammars, when given, holds one optional constraint per prompt (inference.backends.llm.constrained): a
    constrained row only generates what its grammar allows, and shares its batch with free rows (None)."""
    settings = [Sampling.from_params(options) for options in params]
    if len(settings) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(settings)} params.")
    rows = list(grammars) if grammars is not None else [None] * len(prompts)
    if len(rows) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(rows)} grammars.")
    groups: dict[tuple, list[int]] = {}
    for index, sampling in enumerate(settings):
        groups.setdefault(sampling.batch_key, []).append(index)
    results: list[Generation | None] = [None] * len(prompts)
    for indices in groups.values():
        emit = None if on_delta is None else (lambda row, text, indices=indices: on_delta(indices[row], text))
        batch = _generate_batch(
            lm,
            [prompts[i] for i in indices],
            [settings[i] for i in indices],
            add_special_tokens,
            emit,
            [rows[i] for i in indices],
        )
        for index, generation in zip(indices, batch, strict=True):
            results[index] = generation
    return results  # type: ignore[return-value]


def _generate_batch(
    lm: CausalLM,
    prompts: list[str],
    settings: list[Sampling],
    add_special_tokens: bool,
    on_delta: OnDelta | None = None,
    grammars: Sequence[Constraint | None] = (),
) -> list[Generation]:
    encoded = lm.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    encoded, settings = _within_window(lm, dict(encoded), settings)
    encoded = {name: tensor.to(lm.device) for name, tensor in encoded.items()}
    width = encoded["input_ids"].shape[1]
    stops = [sampling.stop for sampling in settings]
    criteria = StoppingCriteriaList([_StopStrings(lm.tokenizer, stops, width)]) if any(stops) else None
    emitter = None if on_delta is None else _DeltaEmitter(lm, stops, width, on_delta)
    if emitter is not None:
        criteria = StoppingCriteriaList([*(criteria or []), emitter])
    config = _generation_config(lm, settings[0])
    processors = _grammar_processors(lm, config, grammars, width, settings[0]) if any(grammars) else None
    with torch.inference_mode(), _seeded(settings[0].seed, lm.device):
        output = lm.model.generate(
            **encoded, generation_config=config, stopping_criteria=criteria, logits_processor=processors
        )
    prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
    generations = [
        _finish(lm, completion.tolist(), sampling.stop, count)
        for completion, sampling, count in zip(output[:, width:], settings, prompt_tokens, strict=True)
    ]
    if emitter is not None:
        for row, generation in enumerate(generations):
            emitter.finish(row, generation.text)
    return generations


def _within_window(
    lm: CausalLM, encoded: dict[str, torch.Tensor], settings: list[Sampling]
) -> tuple[dict[str, torch.Tensor], list[Sampling]]:
    """Keeps every row inside the context window: max_new_tokens at most the window less one, and a prompt longer
    than the rest cut from the left (its end, with the question and the generation prompt, stays). Submission refuses
    such prompts with 400 context_length_exceeded; this guard is for what the web side could not count."""
    window = lm.window
    if window is None:
        return encoded, settings
    new_tokens = min(settings[0].max_new_tokens, max(1, window - 1))
    if new_tokens != settings[0].max_new_tokens:
        settings = [dataclasses.replace(sampling, max_new_tokens=new_tokens) for sampling in settings]
    keep = window - new_tokens
    width = encoded["input_ids"].shape[1]
    if width > keep:  # left padding: the slice drops padding first, then each long row's oldest tokens
        logger.warning("prompt of %d tokens cut to %d to fit the %d-token window", width, keep, window)
        encoded = {name: tensor[:, width - keep :] for name, tensor in encoded.items()}
    return encoded, settings


def _generation_config(lm: CausalLM, sampling: Sampling) -> GenerationConfig:
    config = copy.deepcopy(lm.model.generation_config)
    config.max_new_tokens = sampling.max_new_tokens
    config.max_length = None
    config.pad_token_id = lm.tokenizer.pad_token_id
    config.do_sample = sampling.temperature > 0
    config.temperature = sampling.temperature if config.do_sample else None
    config.top_p = sampling.top_p if config.do_sample else None
    if not config.do_sample:
        config.top_k = None
    config.repetition_penalty = sampling.repetition_penalty if sampling.repetition_penalty != 1.0 else None
    config.no_repeat_ngram_size = sampling.no_repeat_ngram_size or None
    return config


def _grammar_processors(
    lm: CausalLM, config: GenerationConfig, grammars: Sequence[Constraint | None], width: int, sampling: Sampling
) -> LogitsProcessorList:
    """The grammar mask, then temperature, top-k and top-p: transformers appends custom processors after its own
    warpers, and a mask applied after top-k/top-p could leave a row nothing to sample, so the warpers move behind
    the mask (and out of `config`). Other processors the config makes (a repetition penalty) stay before the mask."""
    from inference.backends.llm.constrained import GrammarLogitsProcessor

    grammar = GrammarLogitsProcessor(lm.tokenizer, sorted(lm.end_token_ids), grammars, width, sampling.max_new_tokens)
    processors = LogitsProcessorList([grammar])
    if config.do_sample:
        if config.temperature is not None and config.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(config.temperature))
        if config.top_k:
            processors.append(TopKLogitsWarper(config.top_k))
        if config.top_p is not None and config.top_p < 1.0:
            processors.append(TopPLogitsWarper(config.top_p))
        config.temperature, config.top_k, config.top_p = 1.0, None, 1.0
    return processors


@contextmanager
def _seeded(seed: int | None, device: str) -> Iterator[None]:
    """Seeds torch for one generate() call without disturbing the process's random state."""
    if seed is None:
        yield
        return
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class _StopStrings(StoppingCriteria):
    """Stops each row once its completion contains one of that row's stop strings."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: list[tuple[str, ...]], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_width = prompt_width
        self.tail_tokens = max(len(stop) for row in stops for stop in row) + 2

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        start = max(self.prompt_width, input_ids.shape[1] - self.tail_tokens)
        for row, stops in enumerate(self.stops):
            if stops:
                tail = self.tokenizer.decode(input_ids[row, start:].tolist(), skip_special_tokens=True)
                done[row] = any(stop in tail for stop in stops)
        return done


class _DeltaEmitter(StoppingCriteria):
    """Streams each row's new text from inside the batched loop: transformers calls stopping criteria once a step
    with every row's tokens so far. Never stops a row itself.

    Each step decodes the row's completion (up to its first end token) and emits what it adds to the text already
    emitted, holding back (1) an incomplete UTF-8 character at the end (decoded as U+FFFD), (2) trailing whitespace
    (a later token may merge with it when the tokenizer cleans up spaces), and (3) a tail that could be the start of
    one of the row's stop strings; a stop string found ends the row's text before it. finish() then emits the rest
    of the final text, so the pieces always add up to Generation.text."""

    def __init__(self, lm: CausalLM, stops: list[tuple[str, ...]], prompt_width: int, on_delta: OnDelta) -> None:
        self.tokenizer = lm.tokenizer
        self.end_ids = lm.end_token_ids
        self.stops = stops
        self.prompt_width = prompt_width
        self.on_delta = on_delta
        self.emitted = [""] * len(stops)
        self.done = [False] * len(stops)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        completions = input_ids[:, self.prompt_width :].tolist()
        for row, tokens in enumerate(completions):
            if self.done[row]:
                continue
            ended = next((i for i, token in enumerate(tokens) if token in self.end_ids), None)
            if ended is not None:
                tokens = tokens[:ended]
                self.done[row] = True
            self._emit(row, self._ready(row, self.tokenizer.decode(tokens, skip_special_tokens=True)))
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def _ready(self, row: int, text: str) -> str:
        """The part of `text` that can be shown now."""
        stops = self.stops[row]
        cut = min((position for stop in stops if (position := text.find(stop)) >= 0), default=-1)
        if cut >= 0:
            self.done[row] = True
            return text[:cut].rstrip()
        text = text.rstrip("\ufffd").rstrip()
        hold = max((k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
        return text[: len(text) - hold]

    def _emit(self, row: int, text: str) -> None:
        already = self.emitted[row]
        if len(text) > len(already) and text.startswith(already):
            self.emitted[row] = text
            self.on_delta(row, text[len(already) :])

    def finish(self, row: int, final: str) -> None:
        already = self.emitted[row]
        if not final.startswith(already):  # cannot happen with a prefix-stable decode; never send a wrong tail
            logger.error("streamed text of row %d is not a prefix of its final text", row)
            return
        if len(final) > len(already):
            self.emitted[row] = final
            self.on_delta(row, final[len(already) :])


def _finish(lm: CausalLM, completion: list[int], stops: Sequence[str], prompt_tokens: int) -> Generation:
    end_ids = lm.end_token_ids
    length = next((i for i, token in enumerate(completion) if token in end_ids), len(completion))
    text = lm.tokenizer.decode(completion[:length], skip_special_tokens=True)
    cut = min((position for stop in stops if (position := text.find(stop)) >= 0), default=-1)
    ended = cut >= 0 or length < len(completion)
    return Generation(
        text=text[:cut] if cut >= 0 else text,
        finish_reason="stop" if ended else "length",
        prompt_tokens=prompt_tokens,
        completion_tokens=length,
    )


def chat_prompt(lm: CausalLM, messages: list[dict[str, str]]) -> str:
    if lm.has_chat_template:
        return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = "".join(f"{message['role']}: {message['content']}\n" for message in messages)
    return f"{turns}assistant:"
