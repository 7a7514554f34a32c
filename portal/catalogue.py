"""The capabilities as the web pages describe them: name, label, description, example input, image fields."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from capabilities import CAPABILITIES, CORE_CAPABILITIES

# The pages' names of the capabilities (the API keeps the snake_case names).
LABELS = {
    "question_answering": _("Question answering"),
    "text_classification": _("Text classification"),
    "summarization": _("Summarization"),
    "dialogue": _("Dialogue"),
    "text_generation": _("Text generation"),
    "keyword_extraction": _("Keyword extraction"),
    "image_generation": _("Image generation"),
    "image_captioning": _("Image captioning"),
    "embeddings": _("Embeddings"),
}

# The capabilities' own descriptions (capabilities/*.py), listed here so that makemessages finds them; the pages
# translate the description a capability has now, and tests/web/test_i18n.py checks each one has a translation.
DESCRIPTIONS = (
    gettext_noop("Answers a question with a span of its context, read by the LLM; evidence windows found with MiniLM."),
    gettext_noop(
        "Zero-shot classification over the given labels (MiniLM similarity, calibrated; a Korean text, or a job "
        "naming Qwen, by Qwen's calibrated yes/no answer for each label)."
    ),
    gettext_noop("An abstractive summary guarded against invented facts, or an extractive one."),
    gettext_noop("The next assistant turn of a conversation, with the model's chat template."),
    gettext_noop("Continues or answers a prompt with the language model (Qwen2.5-Coder-0.5B-Instruct by default)."),
    gettext_noop("Key phrases of a text, ranked by semantic similarity to the whole (KeyBERT on MiniLM)."),
    gettext_noop(
        "A seamless pattern from a prompt: classifier-guided synthesis on EfficientNet-Lite0. Costs n x steps x width "
        "x height / (64 x 256 x 256) units, rounded up: one default image is 1 unit."
    ),
    gettext_noop("A caption from an ImageNet classifier and a COCO object detector (EfficientNet-Lite0, YOLOv3-tiny)."),
    gettext_noop("Sentence embeddings (384 dimensions, L2-normalised) from all-MiniLM-L6-v2."),
)


def label(name: str) -> str:
    return str(LABELS.get(name, name.replace("_", " ").capitalize()))


def catalogue(names: tuple[str, ...] = CORE_CAPABILITIES) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "label": label(name),
            "description": gettext(CAPABILITIES[name].description),
            "example": CAPABILITIES[name].example_input,
            "image_fields": list(CAPABILITIES[name].image_fields),
        }
        for name in names
        if name in CAPABILITIES
    ]
