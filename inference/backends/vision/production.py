"""Production vision backends: any local Hugging Face image-to-text model (transformers) or text-to-image
pipeline (diffusers) directory, in the model spec's dtype ("auto": bf16 on CUDA, float32 on CPU). The same code runs
tiny random models in tests."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from inference.backends.device import resolve_dtype

DEFAULT_MAX_NEW_TOKENS = 30
DEFAULT_GENERATION_STEPS = 30
SIZE_MULTIPLE = 8


@dataclass
class HfCaptioner:
    model: Any  # a transformers image-to-text model (VisionEncoderDecoderModel, BLIP, GIT, ...)
    processor: Any | None  # a joint processor when the directory has one (needed for text prompts)
    image_processor: Any
    tokenizer: Any
    device: str


def load_hf_captioner(path: Path, device: str, dtype: str = "auto") -> HfCaptioner:
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=resolve_dtype(device, dtype), local_files_only=True)
    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError):
        processor = None
    image_processor = getattr(processor, "image_processor", None)
    tokenizer = getattr(processor, "tokenizer", None)
    if image_processor is None or tokenizer is None:
        processor = None
        image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return HfCaptioner(model.eval().to(device), processor, image_processor, tokenizer, device)


def generation_settings(options: dict) -> tuple[str | None, int, int]:
    prompt = options.get("prompt") or None
    return prompt, int(options.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)), int(options.get("num_beams", 1))


def model_inputs(captioner: HfCaptioner, images: list[Image.Image], prompt: str | None) -> dict[str, torch.Tensor]:
    if prompt is not None and captioner.processor is not None:
        batch = captioner.processor(images=images, text=[prompt] * len(images), return_tensors="pt")
    else:
        batch = captioner.image_processor(images=images, return_tensors="pt")
    dtype = captioner.model.dtype
    return {
        key: value.to(captioner.device, dtype=dtype if value.is_floating_point() else None)
        for key, value in batch.items()
        if isinstance(value, torch.Tensor)
    }


@torch.inference_mode()
def run_hf_image_captioning(captioner: HfCaptioner, inputs: list[dict], params: list[dict]) -> list[dict[str, Any]]:
    """Batched generation; items that share generation settings (prompt, max_new_tokens, num_beams) run together."""
    captions: list[str] = [""] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda index: repr(generation_settings(params[index])))
    for settings, group in groupby(order, key=lambda index: generation_settings(params[index])):
        indices = list(group)
        prompt, max_new_tokens, num_beams = settings
        batch = model_inputs(captioner, [inputs[index]["image"].convert("RGB") for index in indices], prompt)
        generated = captioner.model.generate(**batch, max_new_tokens=max_new_tokens, num_beams=num_beams)
        texts = captioner.tokenizer.batch_decode(generated, skip_special_tokens=True)
        for index, text in zip(indices, texts, strict=True):
            captions[index] = text.strip()
    return [{"caption": caption} for caption in captions]


def load_diffusers_pipeline(path: Path, device: str, dtype: str = "auto") -> DiffusionPipeline:
    pipe = DiffusionPipeline.from_pretrained(path, dtype=resolve_dtype(device, dtype), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def round_size(value: Any) -> int | None:
    return None if value is None else max(SIZE_MULTIPLE, int(value) // SIZE_MULTIPLE * SIZE_MULTIPLE)


def pipeline_call(options: dict) -> dict[str, Any]:
    """Pipeline keyword arguments from a job's params; absent width, height and guidance keep the pipeline's own."""
    call: dict[str, Any] = {"num_inference_steps": int(options.get("steps", DEFAULT_GENERATION_STEPS))}
    for key, value in (("width", round_size(options.get("width"))), ("height", round_size(options.get("height")))):
        if value is not None:
            call[key] = value
    if options.get("guidance_scale") is not None:
        call["guidance_scale"] = float(options["guidance_scale"])
    if options.get("negative_prompt"):
        call["negative_prompt"] = str(options["negative_prompt"])
    return call


@torch.inference_mode()
def run_diffusers_image_generation(
    pipe: DiffusionPipeline, inputs: list[dict], params: list[dict]
) -> list[dict[str, Any]]:
    """One pipeline call per group of items with the same settings; each item gets its own seeded CPU generator,
    so a seed gives the same image whatever else is in the batch."""
    images: list[Image.Image | None] = [None] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda index: repr(sorted(pipeline_call(params[index]).items())))
    for _, group in groupby(order, key=lambda index: repr(sorted(pipeline_call(params[index]).items()))):
        indices = list(group)
        call = pipeline_call(params[indices[0]])
        if "negative_prompt" in call:
            call["negative_prompt"] = [call["negative_prompt"]] * len(indices)
        generators = [torch.Generator("cpu").manual_seed(seed_of(params[index])) for index in indices]
        output = pipe(prompt=[str(inputs[index]["prompt"]) for index in indices], generator=generators, **call)
        for index, image in zip(indices, output.images, strict=True):
            images[index] = image.convert("RGB")
    return [{"image": image} for image in images]


def seed_of(options: dict) -> int:
    seed = options.get("seed")
    return int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, (1,)).item())
