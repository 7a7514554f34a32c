"""Zero-shot text classification by sentence similarity: the text against one hypothesis per label.

Cosine similarities of MiniLM embeddings are turned into probabilities with a softmax at temperature
SOFTMAX_TEMPERATURE (single label), or into independent scores with a logistic curve centred on
MULTI_LABEL_THRESHOLD (multi label). A whole batch is embedded in two encoder calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer

from inference.errors import JobInputError

SOFTMAX_TEMPERATURE = 0.05
MULTI_LABEL_THRESHOLD = 0.25


def _probabilities(similarities: np.ndarray, multi_label: bool) -> np.ndarray:
    if multi_label:
        return 1.0 / (1.0 + np.exp(-(similarities - MULTI_LABEL_THRESHOLD) / SOFTMAX_TEMPERATURE))
    logits = similarities / SOFTMAX_TEMPERATURE
    logits -= logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def classify_zero_shot(
    model: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    for item in inputs:
        if not item.get("labels"):
            raise JobInputError("`labels` are required: this model classifies zero-shot over the labels you give.")
    hypotheses = sorted(
        {
            options.get("hypothesis_template", "This text is about {}.").format(label)
            for item, options in zip(inputs, params, strict=True)
            for label in item["labels"]
        }
    )
    text_vectors = model.encode([item["text"] for item in inputs], normalize_embeddings=True, show_progress_bar=False)
    hypothesis_vectors = model.encode(hypotheses, normalize_embeddings=True, show_progress_bar=False)
    index = {hypothesis: i for i, hypothesis in enumerate(hypotheses)}
    results = []
    for row, (item, options) in enumerate(zip(inputs, params, strict=True)):
        template = options.get("hypothesis_template", "This text is about {}.")
        rows = [index[template.format(label)] for label in item["labels"]]
        similarities = hypothesis_vectors[rows] @ text_vectors[row]
        probabilities = _probabilities(similarities.astype(np.float64), bool(options.get("multi_label")))
        scores = {label: round(float(p), 4) for label, p in zip(item["labels"], probabilities, strict=True)}
        results.append({"label": item["labels"][int(np.argmax(probabilities))], "scores": scores})
    return results
