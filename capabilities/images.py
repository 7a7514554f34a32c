"""The image capabilities: captioning an uploaded image, generating a pattern from a prompt."""

from __future__ import annotations

import math
from typing import Any

from capabilities.base import Capability, StrictCharField, StrictIntegerField, StrictSerializer

MAX_IMAGE_REF_CHARS = 12 * 1024 * 1024


class ImageCaptioningInput(StrictSerializer):
    image = StrictCharField(max_length=MAX_IMAGE_REF_CHARS, help_text="Base64 PNG/JPEG/WebP, or an uploaded file id.")


class ImageCaptioningParams(StrictSerializer):
    pass


class ImageGenerationInput(StrictSerializer):
    prompt = StrictCharField(max_length=1_000)


class ImageGenerationParams(StrictSerializer):
    width = StrictIntegerField(min_value=64, max_value=512, default=256)
    height = StrictIntegerField(min_value=64, max_value=512, default=256)
    steps = StrictIntegerField(min_value=1, max_value=256, default=64)
    seed = StrictIntegerField(min_value=0, max_value=2**31 - 1, required=False)
    n = StrictIntegerField(min_value=1, max_value=4, default=1)


# One unit of image generation: one image of the default size and steps. The work (and the charge) grows with
# n x steps x pixels: a 512 x 512 image at 256 steps is 16 units, four of them 64.
IMAGE_UNIT_STEPS = 64
IMAGE_UNIT_PIXELS = 256 * 256


def image_generation_units(params: dict[str, Any]) -> int:
    """ceil(n x steps x width x height / (64 x 256 x 256)), at least 1."""
    work = (
        params.get("n", 1)
        * params.get("steps", IMAGE_UNIT_STEPS)
        * params.get("width", 256)
        * params.get("height", 256)
    )
    return max(1, math.ceil(work / (IMAGE_UNIT_STEPS * IMAGE_UNIT_PIXELS)))


IMAGE_CAPTIONING = Capability(
    name="image_captioning",
    description="A caption from an ImageNet classifier and a COCO object detector (EfficientNet-Lite0, YOLOv3-tiny).",
    input_serializer=ImageCaptioningInput,
    params_serializer=ImageCaptioningParams,
    default_model="alliance-captioner",
    cost=lambda data, params: 1,
    example_input={"image": "<base64 PNG or JPEG, or a file id from POST /api/v1/files>"},
    image_fields=("image",),
)

IMAGE_GENERATION = Capability(
    name="image_generation",
    description="A seamless pattern from a prompt: classifier-guided synthesis on EfficientNet-Lite0. Costs "
    "n x steps x width x height / (64 x 256 x 256) units, rounded up: one default image is 1 unit.",
    input_serializer=ImageGenerationInput,
    params_serializer=ImageGenerationParams,
    default_model="alliance-pattern-artist",
    cost=lambda data, params: image_generation_units(params),
    example_input={"prompt": "golden daisies on a deep blue field"},
)
