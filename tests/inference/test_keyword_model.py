"""keyword_extraction on the real bundled all-MiniLM-L6-v2, in this process (the worker's code path)."""

from __future__ import annotations

import re

from inference.backends import get_model, run_job_model

TEXT = (
    "Woori Bank tuned a foundation model on finance language to build an AI banker. "
    "The AI banker answers questions about mortgages, deposits and credit cards, "
    "and the bank's customer data never leaves its private tenancy."
)
PARAMS = {"max_ngram": 2, "diversity": 0.0, "stop_words": "english"}


def test_keywords_come_from_the_text_ranked_by_score():
    output = run_job_model("keyword_extraction", "all-MiniLM-L6-v2", {"text": TEXT, "top_k": 4}, PARAMS)
    keywords = output["keywords"]
    assert len(keywords) == 4
    words = set(re.findall(r"[a-z']+", TEXT.lower()))
    for item in keywords:
        assert set(item["keyword"].split()) <= words, item
    scores = [item["score"] for item in keywords]
    assert scores == sorted(scores, reverse=True)
    assert any("bank" in item["keyword"] for item in keywords)


def test_single_words_without_stop_words():
    output = run_job_model(
        "keyword_extraction", "all-MiniLM-L6-v2", {"text": TEXT, "top_k": 3}, {**PARAMS, "max_ngram": 1}
    )
    assert all(" " not in item["keyword"] for item in output["keywords"])
    assert not {"the", "and", "to"} & {item["keyword"] for item in output["keywords"]}


def test_a_text_of_only_stop_words_has_no_keywords():
    output = run_job_model("keyword_extraction", "all-MiniLM-L6-v2", {"text": "the and of to", "top_k": 3}, PARAMS)
    assert output == {"keywords": []}


def test_the_model_loads_once_per_process():
    assert get_model("all-MiniLM-L6-v2") is get_model("all-MiniLM-L6-v2")
