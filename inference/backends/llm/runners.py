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
from capabilities.language import is_korean
from inference.backends.llm.engine import CausalLM, Generation, OnDelta, chat_prompt, generate
from inference.backends.llm.text import (
    embed,
    is_echo,
    is_looping,
    quote_answer,
    split_sentences,
    summary_rejection,
    top_sentences,
    word_overlap,
)

logger = logging.getLogger(__name__)

ABSTRACTIVE_MAX_SOURCE_TOKENS = 1_024
# Summaries and answers copy names, numbers and phrases from the source: no penalty on repeating them.
_NO_PENALTY = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}


def _usage(generation: Generation) -> dict[str, int]:
    return {"prompt": generation.prompt_tokens, "completion": generation.completion_tokens}


# Text generation and dialogue ---------------------------------------------------------------------------------------


_KOREAN_SYSTEM = "당신은 친절하고 공감하는 상담원입니다. 항상 자연스러운 한국어로 간결하게 답하세요."
# A second try for a reply that echoes the user or loops: greedy, with a firmer penalty on repeating.
_UNPENALISED = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
_UNSTICK = {"temperature": 0.0, "repetition_penalty": 1.3, "no_repeat_ngram_size": 3}


def run_text_generation(
    lm: CausalLM, inputs: list[dict[str, Any]], params: list[dict[str, Any]], *, on_delta: OnDelta | None = None
) -> list[dict]:
    """Completes each prompt. With a chat template (instruct models such as SmolLM2-Instruct or EXAONE) the prompt is
    sent as a single user turn, since instruct models continue raw text poorly (a Korean prompt with a system turn
    asking for Korean); base models without a template continue the prompt as plain text. A completion that echoes
    the prompt or loops is generated once more (see _unstick) unless it was streamed. on_delta(index, text) streams
    each `text` as it is generated."""
    conversations = [[{"role": "user", "content": item["prompt"]}] for item in inputs]
    if lm.has_chat_template:
        prompts = [chat_prompt(lm, _in_korean(messages)) for messages in conversations]
    else:
        prompts = [item["prompt"] for item in inputs]
    generations = generate(lm, prompts, params, add_special_tokens=not lm.has_chat_template, on_delta=on_delta)
    if on_delta is None:
        generations = _unstick(lm, prompts, params, conversations, generations)
    return [{"text": g.text, "finish_reason": g.finish_reason, "tokens": _usage(g)} for g in generations]


def run_dialogue(
    lm: CausalLM, inputs: list[dict[str, Any]], params: list[dict[str, Any]], *, on_delta: OnDelta | None = None
) -> list[dict]:
    """The next assistant turn of each conversation, rendered with the model's chat template; a conversation in
    Korean without a system turn gets one asking for Korean. on_delta(index, text) streams each message's content
    (stripped, as stored) as it is generated.

    A job with response_format json or tools (capabilities.structured) is constrained by its grammar in the same
    batch as free ones; a tool call comes back as message.tool_calls (content "", finish_reason "tool_calls") and
    is not streamed as content. A free reply that echoes the user's last message or loops is generated once more
    (see _unstick) unless it was streamed."""
    plans = [structured.plan_of(options) for options in params]
    conversations = [item["messages"] for item in inputs]
    prompts = [
        chat_prompt(lm, structured.prompt_messages(_in_korean(messages), plan))
        for messages, plan in zip(conversations, plans, strict=True)
    ]
    grammars = _grammars(plans)
    stripped = None if on_delta is None else _Stripped(_ToolCallsHeld(on_delta, plans), len(prompts))
    # A grammar decides what may repeat: JSON repeats its keys and the schema's words from the prompt, which the
    # anti-repetition defaults would forbid (leaving the grammar's mask nothing to choose).
    params = [{**p, **_UNPENALISED} if plan.constrained else p for p, plan in zip(params, plans, strict=True)]
    generations = generate(
        lm,
        prompts,
        params,
        add_special_tokens=not lm.has_chat_template,
        on_delta=stripped,
        grammars=grammars,
    )
    if on_delta is None:
        generations = _unstick(lm, prompts, params, conversations, generations, plans)
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


def _last_text(messages: list[dict[str, Any]]) -> str:
    content = messages[-1].get("content")
    return content if isinstance(content, str) else ""


def _in_korean(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation with a system turn asking for Korean when the user writes Korean and no system turn is set."""
    if any(m["role"] == "system" for m in messages) or not is_korean(_last_text(messages)):
        return messages
    return [{"role": "system", "content": _KOREAN_SYSTEM}, *messages]


def _unstick(
    lm: CausalLM,
    prompts: list[str],
    params: list[dict[str, Any]],
    conversations: list[list[dict[str, Any]]],
    generations: list[Generation],
    plans: list[structured.Plan] | None = None,
) -> list[Generation]:
    """Generates once more, greedily with a firmer repetition penalty, each reply that merely echoes the user's last
    message or loops (text.is_echo, text.is_looping); the second reply is kept when it does neither."""
    stuck = [
        i
        for i, (g, messages) in enumerate(zip(generations, conversations, strict=True))
        if not (plans and plans[i].constrained) and (is_echo(g.text, _last_text(messages)) or is_looping(g.text))
    ]
    if not stuck:
        return generations
    logger.info("%d of %d replies echo the user or loop; generating them once more", len(stuck), len(generations))
    again = generate(
        lm,
        [prompts[i] for i in stuck],
        [{**params[i], **_UNSTICK} for i in stuck],
        add_special_tokens=not lm.has_chat_template,
    )
    generations = list(generations)
    for index, generation in zip(stuck, again, strict=True):
        text, message = generation.text, _last_text(conversations[index])
        if not is_echo(text, message) and not is_looping(text):
            generations[index] = generation
    return generations


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
_RETRY_SYSTEM = (
    "You summarize texts faithfully in plain words. Copy every name and number exactly as the text writes it; "
    "never mention a name, number or detail the text does not state."
)
# A Korean text is summarized in Korean, asked in Korean throughout: asked in English (even only in the system
# turn), the model summarizes a Korean call with English speaker labels in English.
_SUMMARY_SYSTEM_KO = (
    "당신은 글을 충실하게 요약합니다. 글에 있는 사실만 쓰고, 이름이나 숫자, 세부 내용을 지어내지 마세요. "
    "항상 한국어로 쓰세요."
)
_RETRY_SYSTEM_KO = (
    "당신은 글을 쉬운 말로 충실하게 요약합니다. 이름과 숫자는 글에 쓰인 그대로 옮기고, 글에 없는 이름이나 숫자, "
    "세부 내용은 절대 쓰지 마세요. 항상 한국어로 쓰세요."
)


def run_summarization(
    lm: CausalLM, embedder: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict]:
    """A summary of each text in at most `max_sentences` sentences. Mode "auto" writes an abstractive summary with
    the LM (greedy) for texts of three or more sentences, "abstractive" tries it for any text. The guard
    (text.summary_rejection) rejects an invented number or name, empty or repetitive text; a rejected summary is
    written once more (a stricter prompt that names what the guard refused, and a mild repetition penalty) before
    the extractive fallback (the most central sentences by MiniLM similarity). Very long texts are summarized
    extractively. `method` says which produced the summary: "abstractive", "abstractive_retry" or "extractive"."""
    texts = [item["text"] for item in inputs]
    limits = [int(options.get("max_sentences", 3)) for options in params]
    sentences = [split_sentences(text) for text in texts]
    pending = [i for i, options in enumerate(params) if _wants_abstractive(lm, texts[i], sentences[i], options)]
    summaries: dict[int, dict[str, str]] = {}
    refused: dict[int, str] = {}
    for attempt, method in enumerate(("abstractive", "abstractive_retry")):
        reasons = [refused[i] for i in pending] if attempt else None
        written = _abstractive(lm, [texts[i] for i in pending], [limits[i] for i in pending], reasons)
        for index, summary in zip(pending, written, strict=True):
            reason = summary_rejection(summary, texts[index])
            if reason is None:
                summaries[index] = {"summary": summary, "method": method}
            else:
                refused[index] = reason
                logger.info("%s summary rejected (%s)", method, reason)
        pending = [i for i in pending if i not in summaries]
        if not pending:
            break
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


def _abstractive(lm: CausalLM, texts: list[str], limits: list[int], refused: list[str] | None) -> list[str]:
    """One summary per text; `refused` (the guard's reasons for the first attempt) makes this the retry."""
    if not texts:
        return []
    retry = refused is not None
    prompts = []
    for index, (text, limit) in enumerate(zip(texts, limits, strict=True)):
        korean = is_korean(text)
        ask = (
            f"다음 글을 {limit}문장 이내의 한국어로 요약하세요."
            if korean
            else f"Summarize the following text in at most {limit} sentences."
        )
        if refused is not None and refused[index].startswith("not in the source: "):
            named = refused[index].removeprefix("not in the source: ")
            ask += f" {named}은(는) 쓰지 마세요." if korean else f" Do not mention {named}."
        if korean:
            system, user = (_RETRY_SYSTEM_KO if retry else _SUMMARY_SYSTEM_KO), f"{ask}\n\n글:\n{text}"
        else:
            system, user = (_RETRY_SYSTEM if retry else _SUMMARY_SYSTEM), f"{ask}\n\nText:\n{text}"
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        prompts.append(chat_prompt(lm, messages))
    penalty = {"repetition_penalty": 1.15, "no_repeat_ngram_size": 0} if retry else _NO_PENALTY
    params = [{"max_new_tokens": min(48 * limit, 320), "temperature": 0.0, **penalty} for limit in limits]
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

_QA_SYSTEM = (
    "You answer questions about a context by copying the shortest exact phrase from the context that answers the "
    "question. Reply with that phrase only, in the language of the context, without explanation."
)


def _qa_turn(context: str, question: str) -> str:
    """The context, then the question (on the validation slice, asking the question before the context as well
    did no better)."""
    return f"Context: {context}\nQuestion: {question}"


# One worked example (not from any benchmark): the answer is named through a pronoun, as in most real questions.
_QA_EXAMPLE = (
    _qa_turn(
        "The bakery on Elm Street was opened by Anna Kowalski in 1998. Her nephew Tom worked there as a boy. "
        "She sold it to him in 2015, and he still runs it.",
        "Who bought the bakery in 2015?",
    ),
    "Tom",
)
QA_CONTEXT_BUDGET = 1_536  # context tokens one prompt may hold: a context that fits is read whole, in order
WINDOW_SENTENCES = 3  # evidence windows: up to 3 consecutive sentences, one starting at every sentence
LEXICAL_WEIGHT = 0.3  # MiniLM alone ranks sentences that merely share a name with the question too high


def run_question_answering(
    lm: CausalLM, embedder: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict]:
    """Answers each question from its context with a span of that context.

    The context is cut into overlapping windows of up to WINDOW_SENTENCES sentences (so a pronoun keeps its
    antecedent), ranked by MiniLM cosine similarity to the question plus LEXICAL_WEIGHT x the share of the question's
    words they contain. A context of at most QA_CONTEXT_BUDGET tokens is read whole, in order; a longer one through
    its best windows, in context order, up to that budget. The LM (greedy, one worked example) copies the shortest
    phrase that answers; text.quote_answer then finds it in the context verbatim, or the context span closest to
    it when the model strayed. `evidence` is the best-ranked window holding the answer; `score` = the agreement of
    the model's answer with the quoted span x (0.5 + 0.5 x that window's retrieval score, clipped to [0, 1])."""
    windows = [_windows(item["context"]) for item in inputs]
    _rank(embedder, [item["question"] for item in inputs], windows)
    readings = [_reading(lm, item["context"], found) for item, found in zip(inputs, windows, strict=True)]
    prompts = [
        chat_prompt(
            lm,
            [
                {"role": "system", "content": _QA_SYSTEM},
                {"role": "user", "content": _QA_EXAMPLE[0]},
                {"role": "assistant", "content": _QA_EXAMPLE[1]},
                {"role": "user", "content": _qa_turn(reading, item["question"])},
            ],
        )
        for item, reading in zip(inputs, readings, strict=True)
    ]
    settings = [
        {"max_new_tokens": int(options.get("max_new_tokens", 48)), "temperature": 0.0, **_NO_PENALTY}
        for options in params
    ]
    generations = generate(lm, prompts, settings, add_special_tokens=not lm.has_chat_template)
    return [
        _answer(generation.text, item, found)
        for generation, item, found in zip(generations, inputs, windows, strict=True)
    ]


@dataclass
class Window:
    text: str  # an exact slice of the context
    start: int
    end: int
    sentences: list[str]
    score: float = 0.0


def _windows(context: str) -> list[Window]:
    sentences = split_sentences(context) or [context.strip()]
    spans, offset = [], 0
    for sentence in sentences:
        found = context.find(sentence, offset)
        start = found if found >= 0 else offset
        spans.append((start, start + len(sentence)))
        offset = start + len(sentence)
    count = max(1, len(sentences) - WINDOW_SENTENCES + 1)
    return [
        Window(
            text=context[spans[i][0] : spans[min(i + WINDOW_SENTENCES, len(spans)) - 1][1]],
            start=spans[i][0],
            end=spans[min(i + WINDOW_SENTENCES, len(spans)) - 1][1],
            sentences=sentences[i : i + WINDOW_SENTENCES],
        )
        for i in range(count)
    ]


def _rank(embedder: SentenceTransformer, questions: list[str], windows: list[list[Window]]) -> None:
    """Sets each window's retrieval score (all windows of the batch embedded at once)."""
    vectors = embed(embedder, [*questions, *(window.text for found in windows for window in found)])
    offset = len(questions)
    for question, question_vector, found in zip(questions, vectors[: len(questions)], windows, strict=True):
        similarities = vectors[offset : offset + len(found)] @ question_vector
        offset += len(found)
        for window, similarity in zip(found, similarities, strict=True):
            window.score = float(similarity) + LEXICAL_WEIGHT * word_overlap(question, window.text)


def _reading(lm: CausalLM, context: str, windows: list[Window]) -> str:
    """What the model reads: the whole context when it fits the budget, else its best windows in context order."""

    def tokens(text: str) -> int:
        return len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    if tokens(context) <= QA_CONTEXT_BUDGET:
        return context.strip()
    kept: list[Window] = []
    used = 0
    for window in sorted(windows, key=lambda w: -w.score):
        cost = tokens(window.text)
        if kept and used + cost > QA_CONTEXT_BUDGET:
            break
        kept.append(window)
        used += cost
    merged: list[tuple[int, int]] = []
    for window in sorted(kept, key=lambda w: w.start):
        if merged and window.start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], window.end))
        else:
            merged.append((window.start, window.end))
    return " ... ".join(context[start:end] for start, end in merged)


def _answer(generated: str, item: Mapping[str, str], windows: list[Window]) -> dict[str, Any]:
    ranked = sorted(windows, key=lambda w: -w.score)
    sentences = list(dict.fromkeys(sentence for window in ranked for sentence in window.sentences))
    span = quote_answer(generated, item["question"], item["context"], sentences)
    holding = [w for w in ranked if span.text in w.text and span.sentence in w.text] or [
        w for w in ranked if span.text in w.text
    ]
    window = holding[0] if holding else ranked[0]
    score = span.agreement * (0.5 + 0.5 * float(np.clip(window.score, 0.0, 1.0)))
    return {"answer": span.text, "score": round(score, 4), "evidence": window.text}
