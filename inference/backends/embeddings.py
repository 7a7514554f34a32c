from __future__ import annotations

from typing import Any

from sentence_transformers import SentenceTransformer


def load_sentence_transformer(path: str, device: str) -> SentenceTransformer:
    model = SentenceTransformer(path, device=device, local_files_only=True)
    model.encode(["warm up"], show_progress_bar=False)
    return model


def embed(model: SentenceTransformer, inputs: list[dict[str, Any]], params: list[dict[str, Any]]) -> list[dict]:
    """All texts of the batch in one encoder call; each job gets its own vectors back (L2-normalised)."""
    texts = [text for item in inputs for text in item["texts"]]
    vectors = model.encode(texts, normalize_embeddings=True, show_progress_bar=False, batch_size=64)
    results, start = [], 0
    for item in inputs:
        count = len(item["texts"])
        results.append({"embeddings": [[round(float(x), 7) for x in row] for row in vectors[start : start + count]]})
        start += count
    return results
