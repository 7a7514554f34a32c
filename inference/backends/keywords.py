"""Keyword extraction: KeyBERT over the hosted sentence-transformer."""

from __future__ import annotations

from typing import Any

from keybert import KeyBERT
from sentence_transformers import SentenceTransformer


def extract_keywords(
    model: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    extractor = KeyBERT(model=model)
    results = []
    for item, options in zip(inputs, params, strict=True):
        diversity = options.get("diversity", 0.0)
        pairs = extractor.extract_keywords(
            item["text"],
            keyphrase_ngram_range=(1, options.get("max_ngram", 2)),
            stop_words=None if options.get("stop_words") == "none" else "english",
            top_n=item.get("top_k", 5),
            use_mmr=diversity > 0,
            diversity=diversity or 0.5,
        )
        results.append({"keywords": [{"keyword": phrase, "score": round(float(score), 4)} for phrase, score in pairs]})
    return results
