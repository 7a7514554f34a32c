"""A saved peft adapter as plain tensors that can be switched onto a shared base model for one batch.

LoRA adds scale * B(A(x)) to a linear layer's output and IA3 scales a layer's output (or, for feed-forward layers,
its input), so both are applied with forward hooks on the untouched base and removed after the batch; prompt
tuning and P-tuning adapters are their saved virtual-token embeddings, prepended to the input embeddings. Many
partners' adapters thus share one loaded base model, whatever their peft type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from inference.backends.tuning.heads import Head
from inference.backends.tuning.types import HEAD_FILE, METADATA_FILE

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
PROMPT_TYPES = ("PROMPT_TUNING", "P_TUNING")


class AdapterError(ValueError):
    """The adapter directory is missing, incomplete or of a kind the pool cannot serve."""


@dataclass
class LoraUpdate:
    a: torch.Tensor  # (r, in)
    b: torch.Tensor  # (out, r)
    scale: float


@dataclass
class Ia3Scale:
    vector: torch.Tensor
    on_input: bool  # feed-forward layers scale their input


@dataclass
class LoadedAdapter:
    adapter_id: str
    metadata: dict
    peft_type: str
    layers: dict[str, LoraUpdate | Ia3Scale] = field(default_factory=dict)
    prompt: torch.Tensor | None = None  # (virtual tokens, hidden) for prompt methods
    head: Head | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.metadata.get("labels") or [])

    @property
    def virtual_tokens(self) -> int:
        return 0 if self.prompt is None else int(self.prompt.shape[0])


def load_adapter(directory: Path, adapter_id: str, device: str = "cpu") -> LoadedAdapter:
    directory = Path(directory)
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text())
        config = json.loads((directory / ADAPTER_CONFIG).read_text())
        weights = load_file(str(directory / ADAPTER_WEIGHTS), device=device)
    except (OSError, json.JSONDecodeError) as exc:
        raise AdapterError(f"Adapter {adapter_id!r} in {directory} cannot be read: {exc}") from exc
    peft_type = str(config.get("peft_type"))
    adapter = LoadedAdapter(adapter_id, metadata, peft_type)
    if peft_type in PROMPT_TYPES:
        adapter.prompt = weights["prompt_embeddings"]
    elif peft_type == "LORA":
        adapter.layers = _lora_layers(config, weights)
    elif peft_type == "IA3":
        adapter.layers = _ia3_layers(config, weights)
    else:
        raise AdapterError(f"Adapter {adapter_id!r}: peft type {peft_type} is not served.")
    if metadata.get("task") == "classification":
        if not (directory / HEAD_FILE).exists():
            raise AdapterError(f"Adapter {adapter_id!r} has no classification head ({HEAD_FILE}).")
        adapter.head = Head.load(directory, metadata.get("pooling", "cls"), device)
    return adapter


def _module_name(key: str, suffix: str) -> str:
    return key.removeprefix(PEFT_PREFIX).removesuffix(suffix)


def _lora_layers(config: dict, weights: dict[str, torch.Tensor]) -> dict[str, LoraUpdate | Ia3Scale]:
    unsupported = [name for name in ("use_dora", "fan_in_fan_out") if config.get(name)]
    if unsupported or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterError(f"LoRA options not served: {', '.join(unsupported) or 'rank/alpha patterns'}.")
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    layers: dict[str, LoraUpdate | Ia3Scale] = {}
    for key, a in weights.items():
        if key.endswith(".lora_A.weight"):
            name = _module_name(key, ".lora_A.weight")
            layers[name] = LoraUpdate(a=a, b=weights[f"{PEFT_PREFIX}{name}.lora_B.weight"], scale=scale)
    return layers


def _ia3_layers(config: dict, weights: dict[str, torch.Tensor]) -> dict[str, LoraUpdate | Ia3Scale]:
    feedforward = config.get("feedforward_modules") or []
    feedforward = [feedforward] if isinstance(feedforward, str) else list(feedforward)
    layers: dict[str, LoraUpdate | Ia3Scale] = {}
    for key, vector in weights.items():
        if key.endswith(".ia3_l"):
            name = _module_name(key, ".ia3_l")
            on_input = any(name == f or name.endswith(f".{f}") for f in feedforward)
            layers[name] = Ia3Scale(vector=vector.flatten(), on_input=on_input)
    return layers


@contextmanager
def applied(model: nn.Module, adapter: LoadedAdapter) -> Iterator[None]:
    """The adapter's layer changes hooked onto `model` for the duration of the block."""
    modules = dict(model.named_modules())
    handles = []
    try:
        for name, change in adapter.layers.items():
            if name not in modules:
                raise AdapterError(f"Adapter {adapter.adapter_id!r} targets {name!r}, absent from the base model.")
            module = modules[name]
            if isinstance(change, LoraUpdate):
                handles.append(module.register_forward_hook(_lora_hook(change)))
            elif change.on_input:
                handles.append(module.register_forward_pre_hook(_input_scale_hook(change.vector)))
            else:
                handles.append(module.register_forward_hook(_output_scale_hook(change.vector)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _lora_hook(update: LoraUpdate) -> Callable[..., torch.Tensor]:
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0].to(update.a.dtype)
        return output + (update.scale * nn.functional.linear(nn.functional.linear(x, update.a), update.b)).to(
            output.dtype
        )

    return hook


def _input_scale_hook(vector: torch.Tensor) -> Callable[..., tuple]:
    def hook(module: nn.Module, args: tuple) -> tuple:
        return (args[0] * vector.to(args[0].dtype), *args[1:])

    return hook


def _output_scale_hook(vector: torch.Tensor) -> Callable[..., torch.Tensor]:
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output * vector.to(output.dtype)

    return hook


def prepend_prompt(
    embeddings: torch.Tensor, attention_mask: torch.Tensor, prompt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Virtual tokens before each row (before its left padding too, as peft places them)."""
    rows = embeddings.shape[0]
    virtual = prompt.to(embeddings.dtype).unsqueeze(0).expand(rows, -1, -1)
    ones = torch.ones(rows, prompt.shape[0], dtype=attention_mask.dtype, device=attention_mask.device)
    return torch.cat([virtual, embeddings], dim=1), torch.cat([ones, attention_mask], dim=1)
