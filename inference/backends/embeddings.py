from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sentence_transformers import SentenceTransformer


def load_sentence_transformer(path: str, device: str) -> SentenceTransformer:
    model = SentenceTransformer(path, device=device, local_files_only=True)
    model.encode(["warm up"], show_progress_bar=False)
    return model
