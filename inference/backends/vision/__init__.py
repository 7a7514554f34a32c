"""Vision backends: offline captioning (EfficientNet-Lite0 + YOLOv3-tiny + a template), the offline pattern artist
(classifier-guided synthesis), and production Hugging Face image-to-text / diffusers text-to-image directories.

Names resolve lazily, so a worker that serves only one of them imports only what it needs."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Captioner": "captioning",
    "load_captioner": "captioning",
    "run_image_captioning": "captioning",
    "PatternArtist": "synthesis",
    "load_pattern_artist": "synthesis",
    "run_image_generation": "synthesis",
    "HfCaptioner": "production",
    "load_hf_captioner": "production",
    "run_hf_image_captioning": "production",
    "load_diffusers_pipeline": "production",
    "run_diffusers_image_generation": "production",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
