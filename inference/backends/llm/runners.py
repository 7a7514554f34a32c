"""The language-model capabilities: text generation, dialogue, summarization and question answering, each a runner
over a whole batch of jobs on inference.backends.llm.engine's batched generation (summarization and question
answering also take the sentence embedder, for extractive fallback and evidence retrieval)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer

from capabilities import structured
from inference.backends.llm.engine import CausalLM, Generation, OnDelta, chat_prompt, generate
from inference.backends.llm.text import (
    embed,
    quote_answer,
    split_sentences,
    summary_rejection,
    top_sentences,
    word_overlap,
)

logger = logging.getLogger(__name__)

ABSTRACTIVE_MAX_SOURCE_TOKENS = 1_024


def _usage(generation: Generation) -> dict[str, int]:
    return {"prompt": generation.prompt_tokens, "completion": generation.completion_tokens}


# Text generation and dialogue ---------------------------------------------------------------------------------------


def run_text_generation(
    lm: CausalLM, inputs: list[dict[str, Any]], params: list[dict[str, Any]], *, on_delta: OnDelta | None = None
) -> list[dict]:
    """Completes each prompt. With a chat template (instruct models such as SmolLM2-Instruct or EXAONE) the prompt is
    sent as a single user turn, since instruct models continue raw text poorly; base models without a template
    continue the prompt as plain text. on_delta(index, text) streams each `text` as it is generated."""
    if lm.has_chat_template:
        prompts = [chat_prompt(lm, [{"role": "user", "content": item["prompt"]}]) for item in inputs]
    else:
        prompts = [item["prompt"] for item in inputs]
    generations = generate(lm, prompts, params, add_special_tokens=not lm.has_chat_template, on_delta=on_delta)
    return [{"text": g.text, "finish_reason": g.finish_reason, "tokens": _usage(g)} for g in generations]


def run_dialogue(
    lm: CausalLM, inputs: list[dict[str, Any]], params: list[dict[str, Any]], *, on_delta: OnDelta | None = None
) -> list[dict]:
    """The next assistant turn of each conversation, rendered with the model's chat template. on_delta(index, text)
    streams each message's content (stripped, as stored) as it is generated.

    A job with response_format json or tools (capabilities.structured) is constrained by its grammar in the same
    batch as free ones; a tool call comes back as message.tool_calls (content "", finish_reason "tool_calls") and
    is not streamed as content."""
    plans = [structured.plan_of(options) for options in params]
    prompts = [
        chat_prompt(lm, structured.prompt_messages(item["messages"], plan))
        for item, plan in zip(inputs, plans, strict=True)
    ]
    grammars = _grammars(plans)
    stripped = None if on_delta is None else _Stripped(_ToolCallsHeld(on_delta, plans), len(prompts))
    generations = generate(
        lm,
        prompts,
        params,
        add_special_tokens=not lm.has_chat_template,
        on_delta=stripped,
        grammars=grammars,
    )
    outputs = []
    for generation, plan in zip(generations, plans, strict=True):
        message, finish_reason = structured.message_of(plan, generation.text, generation.finish_reason)
        outputs.append({"message": message, "finish_reason": finish_reason, "tokens": _usage(generation)})
    return outputs


def _grammars(plans: list[structured.Plan]) -> list[Any] | None:
    """One constraint per constrained row (xgrammar is imported only when a batch has one)."""
    if not any(plan.constrained for plan in plans):
        return None
    from inference.backends.llm.constrained import Constraint

    return [Constraint.json_schema(p.schema, or_text=p.or_text) if p.schema is not None else None for p in plans]


class _ToolCallsHeld:
    """Passes on a row's stripped pieces unless the row is a tool call (its text starts with "{" where tools are
    offered): a call is not content, it arrives whole in the job's output."""

    def __init__(self, on_delta: OnDelta, plans: list[structured.Plan]) -> None:
        self.on_delta = on_delta
        self.plans = plans
        self.calling: dict[int, bool] = {}

    def __call__(self, row: int, text: str) -> None:
        if row not in self.calling:  # the first piece: stripped, so it starts with the answer's first character
            self.calling[row] = structured.is_tool_call_text(self.plans[row], text)
        if not self.calling[row]:
            self.on_delta(row, text)


class _Stripped:
    """Passes on each row's pieces as the pieces of text.strip(): leading whitespace dropped, trailing whitespace
    held back until more text follows it (and never sent when none does)."""

    def __init__(self, on_delta: OnDelta, rows: int) -> None:
        self.on_delta = on_delta
        self.started = [False] * rows
        self.pending = [""] * rows

    def __call__(self, row: int, text: str) -> None:
        if not self.started[row]:
            text = text.lstrip()
            if not text:
                return
            self.started[row] = True
        pending = self.pending[row] + text
        ready = pending.rstrip()
        self.pending[row] = pending[len(ready) :]
        if ready:
            self.on_delta(row, ready)


# Summarization ------------------------------------------------------------------------------------------------------

_SUMMARY_SYSTEM = (
    "You summarize texts faithfully. Use only facts stated in the text. Do not add names, numbers or details."
)


def run_summarization(
    lm: CausalLM, embedder: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict]:
    """A summary of each text in at most `max_sentences` sentences. Mode "auto" writes an abstractive summary with
    the LM (greedy) for texts of three or more sentences, "abstractive" tries it for any text; either falls back to
    an extractive summary (the most central sentences by MiniLM similarity) when the guard rejects the LM's output
    (an invented number or name, empty or repetitive text). Very long texts are summarized extractively."""
    texts = [item["text"] for item in inputs]
    limits = [int(options.get("max_sentences", 3)) for options in params]
    sentences = [split_sentences(text) for text in texts]
    candidates = [i for i, options in enumerate(params) if _wants_abstractive(lm, texts[i], sentences[i], options)]
    summaries: dict[int, dict[str, str]] = {}
    for index, summary in zip(
        candidates, _abstractive(lm, [texts[i] for i in candidates], [limits[i] for i in candidates]), strict=True
    ):
        reason = summary_rejection(summary, texts[index])
        if reason is None:
            summaries[index] = {"summary": summary, "method": "abstractive"}
        else:
            logger.info("abstractive summary rejected (%s); falling back to extractive", reason)
    extractive = [i for i in range(len(texts)) if i not in summaries]
    for index, summary in zip(
        extractive,
        _extractive(embedder, [sentences[i] for i in extractive], [limits[i] for i in extractive]),
        strict=True,
    ):
        summaries[index] = {"summary": summary or texts[index].strip(), "method": "extractive"}
    return [summaries[i] for i in range(len(texts))]


def _wants_abstractive(lm: CausalLM, text: str, sentences: list[str], options: Mapping[str, Any]) -> bool:
    mode = options.get("mode", "auto")
    if mode == "extractive" or (mode == "auto" and len(sentences) <= 2):
        return False
    return len(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) <= ABSTRACTIVE_MAX_SOURCE_TOKENS


def _abstractive(lm: CausalLM, texts: list[str], limits: list[int]) -> list[str]:
    prompts = [
        chat_prompt(
            lm,
            [
                {"role": "system", "content": _SUMMARY_SYSTEM},
                {
                    "role": "user",
                    "content": f"Summarize the following text in at most {limit} sentences.\n\nText:\n{text}",
                },
            ],
        )
        for text, limit in zip(texts, limits, strict=True)
    ]
    params = [{"max_new_tokens": min(48 * limit, 320), "temperature": 0.0} for limit in limits]
    generations = generate(lm, prompts, params, add_special_tokens=not lm.has_chat_template)
    return [_first_sentences(g, limit) for g, limit in zip(generations, limits, strict=True)]


def _first_sentences(generation: Generation, limit: int) -> str:
    """At most `limit` complete sentences of the output (an unfinished last sentence is dropped)."""
    text = generation.text.strip().removeprefix("Summary:").strip()
    sentences = split_sentences(text)
    if generation.finish_reason == "length" and sentences and sentences[-1][-1] not in ".!?":
        sentences = sentences[:-1]
    return " ".join(sentences[:limit])


def _extractive(embedder: SentenceTransformer, documents: list[list[str]], limits: list[int]) -> list[str]:
    """The most central sentences of each document; all sentences are embedded in one batch."""
    ranked = [i for i, (sentences, limit) in enumerate(zip(documents, limits, strict=True)) if len(sentences) > limit]
    vectors = embed(embedder, [sentence for i in ranked for sentence in documents[i]])
    offsets = np.cumsum([0] + [len(documents[i]) for i in ranked])
    by_document = {i: vectors[start:end] for i, start, end in zip(ranked, offsets[:-1], offsets[1:], strict=True)}
    return [
        top_sentences(sentences, by_document.get(i, np.zeros((0, 1))), limit)
        for i, (sentences, limit) in enumerate(zip(documents, limits, strict=True))
    ]


# Question answering -------------------------------------------------------------------------------------------------

_QA_SYSTEM = "Answer the question with a short phrase copied exactly from the context. Do not explain."
MAX_EVIDENCE_SENTENCES = 3
EVIDENCE_MARGIN = 0.1
LEXICAL_WEIGHT = 0.3  # MiniLM alone ranks sentences that merely share a name with the question too high


@dataclass(frozen=True)
class Evidence:
    sentences: list[str]  # best first
    similarities: list[float]


def run_question_answering(
    lm: CausalLM, embedder: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict]:
    """Answers each question from its context. Evidence: the up to three context sentences ranked best by MiniLM
    cosine similarity to the question plus LEXICAL_WEIGHT x the share of the question's words they contain; the LM
    answers from them (greedy), and the answer is quoted from the context (text.quote_answer), so it always
    occurs there. `score` = that retrieval score of the answer's sentence, clipped to [0, 1], x (0.5 + 0.5 x the
    agreement of the LM's answer with the quoted span). `evidence` is the context sentence holding the answer."""
    evidence = _retrieve(embedder, [item["question"] for item in inputs], [item["context"] for item in inputs])
    prompts = [
        chat_prompt(
            lm,
            [
                {"role": "system", "content": _QA_SYSTEM},
                {
                    "role": "user",
                    "content": f"Context: {_in_context_order(item['context'], found)}\nQuestion: {item['question']}",
                },
            ],
        )
        for item, found in zip(inputs, evidence, strict=True)
    ]
    settings = [{"max_new_tokens": int(options.get("max_new_tokens", 48)), "temperature": 0.0} for options in params]
    generations = generate(lm, prompts, settings, add_special_tokens=not lm.has_chat_template)
    return [
        _answer(generation.text, item, found)
        for generation, item, found in zip(generations, inputs, evidence, strict=True)
    ]


def _retrieve(embedder: SentenceTransformer, questions: list[str], contexts: list[str]) -> list[Evidence]:
    documents = [split_sentences(context) or [context.strip()] for context in contexts]
    vectors = embed(embedder, [*questions, *(sentence for sentences in documents for sentence in sentences)])
    offset = len(questions)
    found = []
    for question, question_vector, sentences in zip(questions, vectors[: len(questions)], documents, strict=True):
        similarities = vectors[offset : offset + len(sentences)] @ question_vector
        similarities = similarities + LEXICAL_WEIGHT * np.array([word_overlap(question, s) for s in sentences])
        offset += len(sentences)
        order = [int(i) for i in np.argsort(-similarities, kind="stable")[:MAX_EVIDENCE_SENTENCES]]
        kept = [i for i in order if similarities[i] >= similarities[order[0]] - EVIDENCE_MARGIN]
        found.append(Evidence([sentences[i] for i in kept], [float(similarities[i]) for i in kept]))
    return found


def _in_context_order(context: str, evidence: Evidence) -> str:
    return " ".join(sorted(evidence.sentences, key=context.find))


def _answer(generated: str, item: Mapping[str, str], evidence: Evidence) -> dict[str, Any]:
    span = quote_answer(generated, item["question"], item["context"], evidence.sentences)
    similarity = next(
        (s for sentence, s in zip(evidence.sentences, evidence.similarities, strict=True) if sentence == span.sentence),
        evidence.similarities[0],
    )
    score = float(np.clip(similarity, 0.0, 1.0)) * (0.5 + 0.5 * span.agreement)
    return {"answer": span.text, "score": round(score, 4), "evidence": span.sentence}
