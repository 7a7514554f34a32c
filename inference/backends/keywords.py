"""Keyword extraction: KeyBERT over the hosted sentence-transformer.

KeyBERT embeds every candidate phrase of the text and, with diversity (MMR), builds a candidates x candidates
similarity matrix: for a 100,000-character text of distinct words and 3-grams that is tens of thousands of phrases
to embed and a matrix of gigabytes. So the candidates are capped at the MAX_CANDIDATES most frequent phrases
(stop words removed) before anything is embedded: the work is bounded by the cap, not by the text.
"""

from __future__ import annotations

from typing import Any

from keybert import KeyBERT
from sentence_transformers import SentenceTransformer
from sklearn.feature_extraction.text import CountVectorizer

MAX_CANDIDATES = 300


def extract_keywords(
    model: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    extractor = KeyBERT(model=model)
    results = []
    for item, options in zip(inputs, params, strict=True):
        diversity = options.get("diversity", 0.0)
        ngrams = (1, options.get("max_ngram", 2))
        stop_words = None if options.get("stop_words") == "none" else "english"
        candidates = _candidates(item["text"], ngrams, stop_words)
        pairs = (
            extractor.extract_keywords(
                item["text"],
                candidates=candidates,
                keyphrase_ngram_range=ngrams,
                stop_words=stop_words,
                top_n=item.get("top_k", 5),
                use_mmr=diversity > 0,
                diversity=diversity or 0.5,
            )
            if candidates
            else []
        )
        results.append({"keywords": [{"keyword": phrase, "score": round(float(score), 4)} for phrase, score in pairs]})
    return results


def _candidates(text: str, ngrams: tuple[int, int], stop_words: str | None) -> list[str]:
    """The MAX_CANDIDATES most frequent phrases of the text (none for a text of stop words only)."""
    vectorizer = CountVectorizer(ngram_range=ngrams, stop_words=stop_words, max_features=MAX_CANDIDATES)
    try:
        vectorizer.fit([text])
    except ValueError:  # an empty vocabulary
        return []
    return [str(phrase) for phrase in vectorizer.get_feature_names_out()]
