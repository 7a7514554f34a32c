"""Keyword extraction: KeyBERT over the hosted sentence-transformer, documents in one batch."""

from __future__ import annotations

from typing import Any

from keybert import KeyBERT
from sentence_transformers import SentenceTransformer

from inference.errors import JobInputError


def extract_keywords(
    model: SentenceTransformer, inputs: list[dict[str, Any]], params: dict[str, Any]
) -> list[dict[str, Any]]:
    extractor = KeyBERT(model=model)
    stop_words = None if params.get("stop_words") == "none" else "english"
    results = []
    for item in inputs:
        try:
            pairs = extractor.extract_keywords(
                item["text"],
                keyphrase_ngram_range=(1, params.get("max_ngram", 2)),
                stop_words=stop_words,
                top_n=item.get("top_k", 5),
                use_mmr=params.get("diversity", 0.0) > 0,
                diversity=params.get("diversity", 0.0) or 0.5,
            )
        except ValueError as exc:
            if "empty vocabulary" in str(exc):
                raise JobInputError("The text has no words to extract keywords from.") from exc
            raise
        results.append({"keywords": [{"keyword": phrase, "score": round(float(score), 4)} for phrase, score in pairs]})
    return results
