from __future__ import annotations

from typing import Any

from rest_framework import serializers

from capabilities.base import (
    Capability,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    text_units,
)

MAX_TEXT_CHARS = 100_000


class KeywordExtractionInput(StrictSerializer):
    text = StrictCharField(max_length=MAX_TEXT_CHARS, trim_whitespace=True)
    top_k = StrictIntegerField(min_value=1, max_value=50, default=5)


class KeywordExtractionParams(StrictSerializer):
    max_ngram = StrictIntegerField(min_value=1, max_value=3, default=2)
    diversity = StrictFloatField(min_value=0.0, max_value=1.0, default=0.0)
    stop_words = serializers.ChoiceField(choices=["english", "none"], default="english")


def _cost(data: dict[str, Any], params: dict[str, Any]) -> int:
    return text_units(data["text"])


KEYWORD_EXTRACTION = Capability(
    name="keyword_extraction",
    description="Key phrases of a text, ranked by semantic similarity to the whole (KeyBERT on MiniLM).",
    input_serializer=KeywordExtractionInput,
    params_serializer=KeywordExtractionParams,
    default_model="all-MiniLM-L6-v2",
    cost=_cost,
    example_input={
        "text": "LG AI Research and its alliance partners build customer-service chatbots that understand "
        "the emotion in a caller's words and summarise each call like a counsellor.",
        "top_k": 5,
    },
)
