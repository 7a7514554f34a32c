"""Serving tuned adapters: one loaded base model per base path, many partners' adapters swapped in per batch."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from inference.backends.device import resolve_device
from inference.backends.llm.engine import CausalLM, OnDelta, load_causal_lm
from inference.backends.llm.runners import run_dialogue, run_text_generation
from inference.backends.tuning.adapters import AdapterError, LoadedAdapter, applied, load_adapter, prepend_prompt
from inference.backends.tuning.heads import pool
from inference.errors import JobInputError

CLASSIFY_BATCH = 32


@dataclass
class _Encoder:
    tokenizer: PreTrainedTokenizerBase
    model: nn.Module
    device: str


class AdapterPool:
    """One loaded base model per base path serves many partners' adapters: adapters are loaded on demand,
    swapped in per batch (hooks or virtual tokens on the shared base, never a copy of the model), and cached
    (LRU, `capacity` adapters). A lock per base keeps batches of different adapters from mixing."""

    def __init__(self, device: str = "cpu", capacity: int = 16) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.device = device
        self.capacity = capacity
        self._bases: dict[str, _Encoder | CausalLM] = {}
        self._base_locks: dict[str, threading.Lock] = {}
        self._adapters: OrderedDict[str, LoadedAdapter] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def base_paths(self) -> list[str]:
        return list(self._bases)

    @property
    def cached_adapters(self) -> list[str]:
        return list(self._adapters)

    def evict(self, adapter_id: str) -> None:
        with self._lock:
            self._adapters.pop(adapter_id, None)

    # Classification ------------------------------------------------------------------------------------------------

    def classify(
        self, base_model_path: Path, adapter_dir: Path, adapter_id: str, inputs: list[dict], params: list[dict]
    ) -> list[dict]:
        """{"label", "scores": {label: p}} per input over the adapter's labels, or over the input's "labels" when it
        names a subset of them (renormalised)."""
        key, encoder = self._base(base_model_path, "encoder")
        adapter = self._adapter(adapter_dir, adapter_id, "classification")
        if adapter.head is None:
            raise AdapterError(f"Adapter {adapter_id!r} is not a classifier.")
        max_length = int(adapter.metadata.get("max_length", 128))
        probabilities = torch.zeros(len(inputs), len(adapter.labels))
        with self._base_locks[key], torch.inference_mode(), applied(encoder.model, adapter):
            for start in range(0, len(inputs), CLASSIFY_BATCH):
                texts = [str(item["text"]) for item in inputs[start : start + CLASSIFY_BATCH]]
                encoded = encoder.tokenizer(
                    texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
                ).to(encoder.device)
                logits = self._classifier_logits(encoder, adapter, encoded["input_ids"], encoded["attention_mask"])
                probabilities[start : start + len(texts)] = logits.float().softmax(dim=-1).cpu()
        return [_labelled(adapter, row, item.get("labels")) for row, item in zip(probabilities, inputs, strict=True)]

    @staticmethod
    def _classifier_logits(
        encoder: _Encoder, adapter: LoadedAdapter, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        assert adapter.head is not None
        if adapter.prompt is None:
            output = encoder.model(input_ids=input_ids, attention_mask=attention_mask)
        else:
            embeddings = encoder.model.get_input_embeddings()(input_ids)
            embeddings, extended = prepend_prompt(embeddings, attention_mask, adapter.prompt)
            output = encoder.model(inputs_embeds=embeddings, attention_mask=extended)
        pooled = pool(
            output.last_hidden_state,
            getattr(output, "pooler_output", None),
            attention_mask,
            adapter.head.pooling,
            adapter.virtual_tokens,
        )
        return adapter.head(pooled)

    # Generation and chat -------------------------------------------------------------------------------------------

    def generate(
        self,
        base_model_path: Path,
        adapter_dir: Path,
        adapter_id: str,
        inputs: list[dict],
        params: list[dict],
        chat: bool,
        on_delta: OnDelta | None = None,
    ) -> list[dict]:
        """{"text", ...} per prompt, or {"message": {"role": "assistant", "content"}, ...} per conversation when
        `chat`, through inference.backends.llm's batched generation with the adapter switched on; on_delta(index,
        text) streams each row's text as a base model's does (LoRA and IA3 adapters; a prompt-tuning adapter's text
        arrives whole at the end)."""
        key, lm = self._base(base_model_path, "causal_lm")
        adapter = self._adapter(adapter_dir, adapter_id, "chat" if chat else "generation")
        runner = run_dialogue if chat else run_text_generation
        assert isinstance(lm, CausalLM)
        with self._base_locks[key], applied(lm.model, adapter):
            if adapter.prompt is None:
                return runner(lm, inputs, params, on_delta=on_delta)
            window = None if lm.window is None else lm.window - adapter.virtual_tokens  # the prompt's rows count
            prompted = CausalLM(lm.tokenizer, _PromptedModel(lm.model, adapter.prompt), lm.device, window)  # type: ignore[arg-type]
            return runner(prompted, inputs, params)  # generate() from embeddings: the text arrives whole at the end

    # Loading -------------------------------------------------------------------------------------------------------

    def _base(self, path: Path, kind: str) -> tuple[str, Any]:
        key = f"{kind}:{Path(path).resolve()}"
        with self._lock:
            if key not in self._bases:
                path = Path(path)
                loaded = _load_encoder(path, self.device) if kind == "encoder" else load_causal_lm(path, self.device)
                self._bases[key] = loaded
                self._base_locks[key] = threading.Lock()
            return key, self._bases[key]

    def _adapter(self, directory: Path, adapter_id: str, task: str) -> LoadedAdapter:
        with self._lock:
            adapter = self._adapters.get(adapter_id)
            if adapter is None:
                adapter = load_adapter(Path(directory), adapter_id, resolve_device(self.device))
                self._adapters[adapter_id] = adapter
                while len(self._adapters) > self.capacity:
                    self._adapters.popitem(last=False)
            self._adapters.move_to_end(adapter_id)
        served = adapter.metadata.get("task")
        if (served == "classification") != (task == "classification"):
            raise AdapterError(f"Adapter {adapter_id!r} was tuned for {served}, not {task}.")
        return adapter


def _load_encoder(path: Path, device: str) -> _Encoder:
    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32).to(device).eval()
    return _Encoder(tokenizer, model, device)


def _labelled(adapter: LoadedAdapter, probabilities: torch.Tensor, wanted: list[str] | None) -> dict:
    labels = adapter.labels
    if wanted:
        unknown = [label for label in wanted if label not in labels]
        if unknown:
            raise JobInputError(
                f"Labels {', '.join(map(repr, unknown))} are not among this model's labels ({', '.join(labels)})."
            )
        kept = [labels.index(label) for label in wanted]
        subset = probabilities[kept]
        probabilities, labels = subset / subset.sum().clamp(min=1e-12), list(wanted)
    scores = {label: round(float(p), 4) for label, p in zip(labels, probabilities, strict=True)}
    return {"label": labels[int(torch.argmax(probabilities))], "scores": scores}


class _PromptedModel(nn.Module):
    """A causal LM whose generate() puts a prompt-tuning adapter's virtual tokens before every row, for
    inference.backends.llm.engine.generate (which slices the prompt off the returned ids)."""

    def __init__(self, model: nn.Module, prompt: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.prompt = prompt

    @property
    def generation_config(self) -> Any:
        return self.model.generation_config

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        embeddings = self.model.get_input_embeddings()(input_ids)
        embeddings, extended = prepend_prompt(embeddings, attention_mask, self.prompt)
        new = self.model.generate(inputs_embeds=embeddings, attention_mask=extended, use_cache=False, **kwargs)
        return torch.cat([input_ids, new], dim=1)
