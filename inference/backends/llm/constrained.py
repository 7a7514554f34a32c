"""Constrained decoding: a row's output held to a grammar (a JSON schema, JSON itself, a tool call, or a tool call
or plain text) by xgrammar, applied as a transformers logits processor one row at a time, so constrained and free
rows share one batch.

xgrammar compiles each grammar against the tokenizer's vocabulary once (GrammarCompiler caches by grammar); every
decoding step a row's GrammarMatcher accepts the token the row just produced and fills the row's bitmask of the
tokens that can come next; tokens outside it get -inf. A row is complete only when its grammar is: the grammar
allows the end token only there, so an output that ends (finish_reason "stop") always parses. One that runs out of
max_new_tokens first is cut (finish_reason "length"), as OpenAI's are.

JSON is generated compactly (`", "` and `": "` separators, no other whitespace), which keeps small models from
looping on newlines.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import xgrammar as xgr
from transformers import LogitsProcessor, PreTrainedTokenizerBase

from inference.errors import JobInputError

logger = logging.getLogger(__name__)

# Plain text that does not begin with "{" (a tool call begins with it), or nothing.
_FREE_TEXT = 'root ::= "" | [^{] [^]*'

# Any JSON object (json_object mode: a schema that says only {"type": "object"}) as a schema with bounds that make a
# small model's loops end: 1 to 16 members, objects and arrays nested at most 3 deep with at most 16 members or
# items, strings of at most 200 characters, numbers within +-1e15.
ANY_OBJECT = {"type": "object"}


def _any_value(depth: int) -> dict[str, Any]:
    scalars: list[dict[str, Any]] = [
        {"type": "string", "maxLength": 200},
        {"type": "integer", "minimum": -(10**15), "maximum": 10**15},
        {"type": "number", "minimum": -1e15, "maximum": 1e15},
        {"type": "boolean"},
        {"type": "null"},
    ]
    if depth == 0:
        return {"anyOf": scalars}
    inner = _any_value(depth - 1)
    return {
        "anyOf": [
            *scalars,
            {"type": "object", "additionalProperties": inner, "maxProperties": 16},
            {"type": "array", "items": inner, "maxItems": 16},
        ]
    }


_BOUNDED_OBJECT_JSON = json.dumps(
    {"type": "object", "additionalProperties": _any_value(2), "minProperties": 1, "maxProperties": 16}
)


@dataclass(frozen=True)
class Constraint:
    """What one row must generate. `schema` is a JSON schema; `or_text` also lets the row answer in plain text (one
    that does not start with "{"), for tool_choice "auto"."""

    schema_json: str
    or_text: bool = False

    @classmethod
    def json_schema(cls, schema: dict[str, Any], *, or_text: bool = False) -> Constraint:
        return cls(json.dumps(schema, sort_keys=True), or_text)


# Compilation ---------------------------------------------------------------------------------------------------------

_compilers: dict[tuple[int, int], tuple[PreTrainedTokenizerBase, xgr.GrammarCompiler]] = {}
_lock = threading.Lock()


def _compiler(tokenizer: PreTrainedTokenizerBase, vocab_size: int, stop_ids: Sequence[int]) -> xgr.GrammarCompiler:
    """One compiler (with its grammar cache) per tokenizer and logits width, for the life of the process."""
    key = (id(tokenizer), vocab_size)
    with _lock:
        entry = _compilers.get(key)
        if entry is None or entry[0] is not tokenizer:
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_ids))
            entry = (tokenizer, xgr.GrammarCompiler(info, max_threads=1))
            _compilers[key] = entry
        return entry[1]


def compile_constraint(
    tokenizer: PreTrainedTokenizerBase, vocab_size: int, stop_ids: Sequence[int], constraint: Constraint
) -> xgr.CompiledGrammar:
    """The constraint compiled for this vocabulary; a schema xgrammar cannot hold is the job's input error."""
    compiler = _compiler(tokenizer, vocab_size, stop_ids)
    try:
        if json.loads(constraint.schema_json) == ANY_OBJECT:
            grammar = xgr.Grammar.from_json_schema(_BOUNDED_OBJECT_JSON, any_whitespace=False, strict_mode=False)
        else:  # strict: properties the schema does not name are not generated
            grammar = xgr.Grammar.from_json_schema(constraint.schema_json, any_whitespace=False, strict_mode=True)
        if constraint.or_text:
            grammar = xgr.Grammar.union(grammar, xgr.Grammar.from_ebnf(_FREE_TEXT))
        return compiler.compile_grammar(grammar)
    except (RuntimeError, ValueError, TypeError) as exc:  # xgrammar reports a schema it cannot use this way
        raise JobInputError(f"The JSON schema cannot be used for constrained decoding: {exc}") from exc


# Decoding ------------------------------------------------------------------------------------------------------------


_CLOSE_STRING, _CLOSE_OTHER = 2e4, 1e4  # added to the allowed closing tokens' logits near the end of the budget
_closers: dict[tuple[int, int], tuple[PreTrainedTokenizerBase, torch.Tensor]] = {}


def _closing_bias(tokenizer: PreTrainedTokenizerBase, vocab_size: int, stop_ids: Sequence[int]) -> torch.Tensor:
    """A bias over the vocabulary for tokens made only of closing characters: those starting with a quote (which
    close a string, so they come first: inside a string "}" and "]" are mere text), then those of "}", "]" and
    spaces, and the end tokens."""
    key = (id(tokenizer), vocab_size)
    with _lock:
        entry = _closers.get(key)
        if entry is None or entry[0] is not tokenizer:
            bias = torch.zeros(vocab_size)
            for token_id in range(min(len(tokenizer), vocab_size)):
                text = tokenizer.decode([token_id]).strip()
                if text and set(text) <= set('"}] '):
                    bias[token_id] = _CLOSE_STRING if text.startswith('"') else _CLOSE_OTHER
            bias[[i for i in stop_ids if i < vocab_size]] = _CLOSE_OTHER
            entry = (tokenizer, bias)
            _closers[key] = entry
        return entry[1]


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks each constrained row's logits to what its grammar allows next; rows without a grammar (None) and rows
    whose grammar has ended are left alone. Place it before temperature and top-p (the engine does), so sampling
    only ever sees allowed tokens.

    In the last `closing_window` steps of the `budget` (max_new_tokens), a row generating JSON is steered to finish
    it: among the tokens its grammar allows, those that close a string, an object or an array (or end the output)
    are strongly preferred, so a small model looping inside a value still ends with JSON that parses. A row of
    tool_choice "auto" that answers in plain text is not steered."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stop_ids: Sequence[int],
        constraints: Sequence[Constraint | None],
        prompt_width: int,
        budget: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = list(stop_ids)
        self.constraints = list(constraints)
        self.prompt_width = prompt_width
        self.budget = budget
        self.closing_window = 0 if budget is None else min(16, budget // 3)
        self.matchers: list[xgr.GrammarMatcher | None] | None = None
        self.bitmask: torch.Tensor | None = None
        self.json_rows: set[int] = {row for row, c in enumerate(self.constraints) if c is not None and not c.or_text}

    def _start(self, vocab_size: int) -> None:
        self.matchers = [
            None
            if constraint is None
            else xgr.GrammarMatcher(compile_constraint(self.tokenizer, vocab_size, self.stop_ids, constraint))
            for constraint in self.constraints
        ]
        self.bitmask = xgr.allocate_token_bitmask(len(self.constraints), vocab_size)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.matchers is None:
            self._start(scores.shape[-1])
        assert self.matchers is not None and self.bitmask is not None
        step = input_ids.shape[1] - self.prompt_width
        first_step = step <= 0
        rows = []
        for row, matcher in enumerate(self.matchers):
            if matcher is None or matcher.is_terminated():
                continue
            if not first_step:
                token = int(input_ids[row, -1])
                if step == 1 and self.tokenizer.decode([token]).lstrip().startswith("{"):
                    self.json_rows.add(row)  # tool_choice auto: the row is calling a tool
                if not matcher.accept_token(token):  # cannot happen when the mask was applied; never mask blindly
                    logger.error("row %d: token %d is outside its grammar; the row runs unconstrained", row, token)
                    self.matchers[row] = None
                    continue
                if matcher.is_terminated():
                    continue
            matcher.fill_next_token_bitmask(self.bitmask, row)
            rows.append(row)
        if rows:
            bitmask = self.bitmask.to(scores.device)
            xgr.apply_token_bitmask_inplace(scores, bitmask, vocab_size=scores.shape[-1], indices=rows)
            if self.budget is not None and self.budget - step <= self.closing_window:
                closing = [row for row in rows if row in self.json_rows]
                if closing:
                    bias = _closing_bias(self.tokenizer, scores.shape[-1], self.stop_ids)
                    scores[closing] += bias.to(device=scores.device, dtype=scores.dtype)
        return scores
