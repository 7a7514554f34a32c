"""Capabilities: each a schema, a unit cost and a default model. Importable by the web process (no torch)."""

from __future__ import annotations

from capabilities.base import Capability, CapabilityUnavailable
from capabilities.images import IMAGE_CAPTIONING, IMAGE_GENERATION
from capabilities.keyword_extraction import KEYWORD_EXTRACTION
from capabilities.text import (
    DIALOGUE,
    EMBEDDINGS,
    QUESTION_ANSWERING,
    SUMMARIZATION,
    TEXT_CLASSIFICATION,
    TEXT_GENERATION,
)

# The eight capabilities the lab offers partners; embeddings serve the OpenAI-compatible /v1/embeddings.
CORE_CAPABILITIES: tuple[str, ...] = (
    "question_answering",
    "text_classification",
    "summarization",
    "dialogue",
    "text_generation",
    "keyword_extraction",
    "image_generation",
    "image_captioning",
)
CAPABILITY_NAMES: tuple[str, ...] = (*CORE_CAPABILITIES, "embeddings")

# What quotas and usage are kept for: the eight capabilities and tuning (charged in training tokens).
QUOTA_KEYS: tuple[str, ...] = (*CAPABILITY_NAMES, "tuning")

CAPABILITIES: dict[str, Capability] = {
    capability.name: capability
    for capability in (
        QUESTION_ANSWERING,
        TEXT_CLASSIFICATION,
        SUMMARIZATION,
        DIALOGUE,
        TEXT_GENERATION,
        KEYWORD_EXTRACTION,
        IMAGE_GENERATION,
        IMAGE_CAPTIONING,
        EMBEDDINGS,
    )
}


def get_capability(name: str) -> Capability:
    """The capability of that name; raises CapabilityUnavailable for a name known but not yet served."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        raise CapabilityUnavailable(name) from None


__all__ = [
    "CAPABILITIES",
    "CAPABILITY_NAMES",
    "CORE_CAPABILITIES",
    "QUOTA_KEYS",
    "Capability",
    "CapabilityUnavailable",
    "get_capability",
]
