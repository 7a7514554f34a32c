"""Zero-shot classification by the language model's calibrated yes/no answers about each label
(inference.backends.llm.classify), on the real Qwen weights: a Korean message MiniLM misreads, English texts, a text
that says nothing, and a batch that scores as its rows alone."""

from __future__ import annotations

import pytest
import torch

from capabilities.default_models import QWEN
from inference.backends import run_batch

torch.set_num_threads(1)

FEELINGS = ["satisfied", "confused", "worried", "frustrated"]
KINDS = ["complaint", "praise", "question"]
ANGRY_KO = "인터넷이 이틀째 끊겼는데 고객센터에서 아무도 다시 전화를 주지 않아요. 정말 화가 납니다."
GRATEFUL_KO = "정말 감사합니다! 직원분이 친절하게 도와주셔서 문제가 바로 해결됐어요."
INPUTS = [
    {"text": ANGRY_KO, "labels": FEELINGS},
    {"text": GRATEFUL_KO, "labels": FEELINGS},
    {"text": "What time does the store open on Sundays?", "labels": KINDS},
    {"text": "I have called three times and nobody fixed the double charge on my bill.", "labels": KINDS},
    {"text": "N/A", "labels": FEELINGS},
]


@pytest.fixture(scope="module")
def batch() -> list[dict]:
    """One batch of the four jobs on Qwen (loaded once in this process, as a worker does)."""
    return run_batch("text_classification", QWEN, INPUTS, [{} for _ in INPUTS])


def test_scores_are_probabilities_over_the_labels_in_order(batch):
    for item, output in zip(INPUTS, batch, strict=True):
        assert list(output["scores"]) == item["labels"]
        assert sum(output["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        assert output["label"] == max(output["scores"], key=output["scores"].get)


def test_an_angry_korean_message_is_not_read_as_satisfied(batch):
    angry, grateful = batch[0], batch[1]
    assert angry["label"] in {"confused", "worried", "frustrated"}, angry
    assert grateful["label"] == "satisfied", grateful
    assert angry["scores"]["satisfied"] < grateful["scores"]["satisfied"]


def test_english_texts_get_their_labels_through_the_language_model(batch):
    assert [output["label"] for output in batch[2:4]] == ["question", "complaint"], batch[2:4]


def test_a_text_that_says_nothing_favours_no_label(batch):
    """Calibrated: what the model says of a label whatever the text is taken out (the former method, each label's
    likelihood uncalibrated, gave "satisfied" about four times the probability of "worried" on a content-free text)."""
    scores = batch[4]["scores"]
    assert max(scores.values()) - min(scores.values()) < 0.1, scores


def test_a_job_scores_the_same_alone_as_in_a_padded_batch(batch):
    [alone] = run_batch("text_classification", QWEN, INPUTS[2:3], [{}])
    for label, score in alone["scores"].items():
        assert score == pytest.approx(batch[2]["scores"][label], abs=2e-3)
