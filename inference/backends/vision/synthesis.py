"""The offline "pattern artist": classifier-guided synthesis of seamless tiles on EfficientNet-Lite0.

A prompt picks its nearest ImageNet classes by MiniLM similarity; a Lucid-style Fourier-space image with decorrelated
colour is optimised with Adam so that jittered, scaled and rotated 224 px windows of the (wrap-around) tile raise
those classes' logits. Colour words in the prompt add a soft pull towards their palette. ImageNet has concrete
subjects (daisies, honeycomb, butterflies, fur), so scenes and abstract words come out as colour-matched texture.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sentence_transformers import SentenceTransformer

from inference.backends.vision.efficientnet import (
    INPUT_SIZE,
    EfficientNetLite0,
    ImageNetClasses,
    imagenet_classes,
    load_efficientnet_lite0,
    normalize,
)

DEFAULT_SIZE = 256
MIN_SIZE, MAX_SIZE = 64, 512
DEFAULT_STEPS, MAX_STEPS = 64, 256
TOP_CLASSES = 3
SIMILARITY_TEMPERATURE = 0.08
LEARNING_RATE = 0.05
SAMPLES_PER_STEP = 2
DECAY_POWER = 1.25
INIT_STD = 0.01
SCALE_RANGE = (0.8, 1.2)
MAX_ROTATION_DEGREES = 20.0
PALETTE_WEIGHT = 40.0
# Lucid's colour decorrelation: the square root of ImageNet's colour covariance, normalised.
COLOR_CORRELATION = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_CORRELATION = COLOR_CORRELATION / COLOR_CORRELATION.norm(dim=0).max()
COLOR_WORDS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 40),
    "crimson": (170, 20, 50),
    "scarlet": (230, 40, 20),
    "orange": (240, 130, 20),
    "yellow": (245, 215, 40),
    "golden": (215, 165, 35),
    "gold": (215, 165, 35),
    "green": (40, 150, 60),
    "emerald": (20, 140, 90),
    "olive": (110, 120, 40),
    "teal": (20, 130, 130),
    "turquoise": (60, 200, 190),
    "blue": (30, 80, 200),
    "navy": (20, 30, 100),
    "indigo": (60, 30, 130),
    "purple": (120, 40, 150),
    "violet": (140, 80, 200),
    "lavender": (180, 160, 220),
    "pink": (240, 130, 170),
    "magenta": (210, 30, 150),
    "brown": (120, 75, 40),
    "beige": (220, 200, 160),
    "cream": (245, 235, 205),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "silver": (190, 190, 200),
}


@dataclass
class PatternArtist:
    classifier: EfficientNetLite0
    embedder: SentenceTransformer
    classes: ImageNetClasses
    class_embeddings: torch.Tensor  # (1000, dim), unit length
    device: str


def load_pattern_artist(
    embedder: SentenceTransformer, device: str = "cpu", classifier: EfficientNetLite0 | None = None
) -> PatternArtist:
    """Embeds "a photo of a {class}" for the 1000 classes once; pass `classifier` to share a loaded EfficientNet."""
    classes = imagenet_classes()
    texts = [f"a photo of a {phrase}" for phrase in classes.phrases]
    embeddings = embedder.encode(texts, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    classifier = classifier if classifier is not None else load_efficientnet_lite0(device)
    return PatternArtist(classifier, embedder, classes, embeddings.float().cpu(), device)


def prompt_classes(artist: PatternArtist, prompt: str) -> list[tuple[int, float]]:
    """The prompt's nearest ImageNet classes with softmax weights over their similarities."""
    query = artist.embedder.encode([prompt], convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    similarities = (query.float().cpu() @ artist.class_embeddings.T)[0]
    scores, indices = similarities.topk(TOP_CLASSES)
    weights = (scores / SIMILARITY_TEMPERATURE).softmax(dim=0)
    return [(int(index), float(weight)) for index, weight in zip(indices, weights, strict=True)]


def prompt_palette(prompt: str) -> torch.Tensor | None:
    """(k, 3) RGB in [0, 1] for the colour words in the prompt, or None."""
    colours = [COLOR_WORDS[word] for word in re.findall(r"[a-z]+", prompt.lower()) if word in COLOR_WORDS]
    return torch.tensor(colours, dtype=torch.float32) / 255.0 if colours else None


class FourierImage(torch.nn.Module):
    """A periodic image parameterised by its spectrum, scaled by 1/frequency^decay (Lucid's fft_image)."""

    def __init__(self, height: int, width: int, generator: torch.Generator) -> None:
        super().__init__()
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        frequencies = (fx * fx + fy * fy).sqrt()
        scale = frequencies.clamp(min=1.0 / max(height, width)).pow(-DECAY_POWER) * math.sqrt(height * width)
        self.register_buffer("scale", scale)
        self.size = height, width
        self.spectrum = torch.nn.Parameter(INIT_STD * torch.randn(2, 3, *scale.shape, generator=generator))

    def forward(self) -> torch.Tensor:
        """(1, 3, H, W) RGB in [0, 1]."""
        spectrum = torch.complex(self.spectrum[0], self.spectrum[1]) * self.scale
        pixels = torch.fft.irfft2(spectrum, s=self.size) / 4.0
        colour = torch.einsum("chw,dc->dhw", pixels, COLOR_CORRELATION.to(pixels.device))
        return colour.sigmoid()[None]


def random_windows(tile: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` 224 px views of a periodic tile: random position (wrapping around), scale and rotation."""
    _, _, height, width = tile.shape
    padded = F.pad(tile, (0, 1, 0, 1), mode="circular")
    offsets = torch.arange(INPUT_SIZE, dtype=torch.float32, device=tile.device) - (INPUT_SIZE - 1) / 2
    grid_y, grid_x = torch.meshgrid(offsets, offsets, indexing="ij")
    views = []
    for _ in range(count):
        scale, angle, cx, cy = torch.rand(4, generator=generator).tolist()
        scale = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * scale
        angle = math.radians((2 * angle - 1) * MAX_ROTATION_DEGREES)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        xs = (cos * grid_x - sin * grid_y + cx * width) % width
        ys = (sin * grid_x + cos * grid_y + cy * height) % height
        grid = torch.stack([xs / width * 2 - 1, ys / height * 2 - 1], dim=-1)[None]
        views.append(F.grid_sample(padded, grid, mode="bilinear", align_corners=True))
    return torch.cat(views)


def palette_distance(pixels: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of each pixel to its nearest palette colour."""
    flat = pixels.permute(0, 2, 3, 1).reshape(-1, 3)
    return torch.cdist(flat, palette.to(flat.device)).pow(2).min(dim=1).values.mean()


def synthesise(
    artist: PatternArtist,
    targets: list[tuple[int, float]],
    palette: torch.Tensor | None,
    size: tuple[int, int],
    steps: int,
    seed: int,
) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    image = FourierImage(*size, generator=generator).to(artist.device)
    indices = torch.tensor([index for index, _ in targets], device=artist.device)
    weights = torch.tensor([weight for _, weight in targets], device=artist.device)
    optimiser = torch.optim.Adam(image.parameters(), lr=LEARNING_RATE)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        tile = image()
        logits = artist.classifier(normalize(random_windows(tile, SAMPLES_PER_STEP, generator)))
        loss = -(logits[:, indices] * weights).sum(dim=1).mean()
        if palette is not None:
            loss = loss + PALETTE_WEIGHT * palette_distance(tile, palette)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        pixels = (image()[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")


def clamp_int(value: Any, default: int, low: int, high: int) -> int:
    return default if value is None else max(low, min(high, int(value)))


def run_image_generation(artist: PatternArtist, inputs: list[dict], params: list[dict]) -> list[dict[str, Any]]:
    """inputs: {"prompt"}; params: width, height (64..512, default 256), steps (default 64, up to 256), seed."""
    results = []
    for item, options in zip(inputs, params, strict=True):
        prompt = str(item["prompt"])
        targets = prompt_classes(artist, prompt)
        width = clamp_int(options.get("width"), DEFAULT_SIZE, MIN_SIZE, MAX_SIZE)
        height = clamp_int(options.get("height"), DEFAULT_SIZE, MIN_SIZE, MAX_SIZE)
        steps = clamp_int(options.get("steps"), DEFAULT_STEPS, 1, MAX_STEPS)
        seed = int(options["seed"]) if options.get("seed") is not None else secrets.randbits(31)
        with torch.inference_mode(False), torch.enable_grad():  # the worker may call us under inference_mode
            image = synthesise(artist, targets, prompt_palette(prompt), (height, width), steps, seed)
        classes = [{"label": artist.classes.phrases[index], "weight": round(weight, 4)} for index, weight in targets]
        results.append({"image": image, "classes": classes, "seed": seed})
    return results
