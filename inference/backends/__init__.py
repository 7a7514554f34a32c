"""Model backends: the only package that imports torch. Models load once per worker process.

A backend is a loader (spec, path, device) -> model object; a runner serves one capability on one backend
and takes a whole batch of jobs' inputs and params at once.

Importing this package (or inference.backends.tuning, whose METHODS the web process reads) loads no torch:
modules that need it are imported where they are used. Models are only ever read from local directories.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from capabilities.default_models import EMBEDDER
from inference.registry import ModelNotAvailable, ModelSpec, get_model_spec, resolve_source

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

logger = logging.getLogger(__name__)

Loader = Callable[[ModelSpec, Path, str], Any]

_loaded: dict[str, Any] = {}
_lock = threading.RLock()


def _load(spec: ModelSpec) -> Any:
    path = prepare(spec)
    if not path.exists():
        hint = "run `python manage.py prepare_models`" if spec.options.get("prepare") else "set its source"
        raise ModelNotAvailable(f"Model {spec.name!r}: {path} does not exist; {hint} (ALLIANCE_MODELS_FILE).")
    loader = LOADERS.get(spec.backend)
    if loader is None:
        raise ModelNotAvailable(f"Model {spec.name!r}: unknown backend {spec.backend!r}.")
    from inference.backends.device import resolve_device

    logger.info("loading model %s (%s) from %s", spec.name, spec.backend, path)
    return loader(spec, path, resolve_device(spec.device))


def get_model(name: str) -> Any:
    model = _loaded.get(name)
    if model is None:
        with _lock:
            model = _loaded.get(name)
            if model is None:
                model = _loaded[name] = _load(get_model_spec(name))
    return model


def warm_up(names: list[str], processes: int = 1) -> list[str]:
    """Loads each model, in one of a worker's `processes` pool processes (its torch threads:
    device.torch_threads); one that fails is logged and left out, and its jobs fail with the reason."""
    from inference.backends.device import configure_torch

    configure_torch(processes)
    loaded = []
    for name in names:
        try:
            get_model(name)
        except Exception:
            logger.exception("model %s failed to load", name)
        else:
            loaded.append(name)
    return loaded


def prepare(spec: ModelSpec) -> Path:
    """Runs the model's one-time conversion (e.g. GGUF to a model directory) if it has one and it is missing."""
    path = resolve_source(spec.source)
    hook = spec.options.get("prepare")
    if hook and not path.exists():
        module, _, function = hook.partition(":")
        logger.info("preparing model %s into %s", spec.name, path)
        getattr(importlib.import_module(module), function)(path)
    return path


JobDelta = Callable[[int, int, str], None]  # (job index in the batch, choice index, text)


def run_batch(
    capability: str,
    model: str,
    inputs: list[dict[str, Any]],
    params: list[dict[str, Any]],
    on_delta: JobDelta | None = None,
) -> list[dict[str, Any]]:
    """Runs one batch of jobs of one capability on one model; one output per input, in order.

    A job asking for `n` > 1 results (chat choices, images) becomes n items of the batch, with consecutive
    seeds, and its output gains `choices`: all n results, the first of which is also the output itself.
    on_delta(job index, choice index, text), for runners that stream (text generation and dialogue), receives each
    choice's text as it is generated.
    """
    owners: list[int] = []
    choice_of: list[int] = []
    expanded_inputs: list[dict[str, Any]] = []
    expanded_params: list[dict[str, Any]] = []
    for index, (data, options) in enumerate(zip(inputs, params, strict=True)):
        copies = int(options.get("n", 1))
        for copy in range(copies):
            seed = options.get("seed")
            varied = options if copies == 1 else {**options, "seed": (seed or 0) + copy if seed is not None else None}
            owners.append(index)
            choice_of.append(copy)
            expanded_inputs.append(data)
            expanded_params.append({key: value for key, value in varied.items() if key != "n"})
    row_delta = None
    if on_delta is not None:

        def row_delta(row: int, text: str) -> None:
            on_delta(owners[row], choice_of[row], text)

    outputs = _call_runner(get_model_spec(model), capability, expanded_inputs, expanded_params, row_delta)
    if len(outputs) != len(expanded_inputs):
        raise RuntimeError(f"{capability} runner returned {len(outputs)} outputs for {len(expanded_inputs)} inputs")
    grouped: list[list[dict[str, Any]]] = [[] for _ in inputs]
    for owner, output in zip(owners, outputs, strict=True):
        grouped[owner].append(output)
    return [group[0] if len(group) == 1 else {**group[0], "choices": group} for group in grouped]


def _embedder(spec: ModelSpec) -> Any:
    return get_model(spec.options.get("embedder", EMBEDDER))


# ---------------------------------------------------------------- loaders


def _load_sentence_transformer(spec: ModelSpec, path: Path, device: str) -> Any:
    from inference.backends.embeddings import load_sentence_transformer

    return load_sentence_transformer(str(path), device)


def _load_causal_lm(spec: ModelSpec, path: Path, device: str) -> Any:
    from inference.backends.llm.engine import load_causal_lm

    return load_causal_lm(path, device, spec.dtype, context_window=spec.options.get("context_window"))


def _load_offline_captioner(spec: ModelSpec, path: Path, device: str) -> Any:
    from inference.backends.vision import load_captioner

    return load_captioner(device)


def _load_pattern_artist(spec: ModelSpec, path: Path, device: str) -> Any:
    from inference.backends.vision import load_pattern_artist

    return load_pattern_artist(_embedder(spec), device)


def _load_hf_image_to_text(spec: ModelSpec, path: Path, device: str) -> Any:
    from inference.backends.vision import load_hf_captioner

    return load_hf_captioner(path, device, spec.dtype)


def _load_diffusers(spec: ModelSpec, path: Path, device: str) -> Any:
    from inference.backends.vision import load_diffusers_pipeline

    return load_diffusers_pipeline(path, device, spec.dtype)


LOADERS: dict[str, Loader] = {
    "sentence_transformers": _load_sentence_transformer,
    "causal_lm": _load_causal_lm,
    "offline_captioner": _load_offline_captioner,
    "pattern_artist": _load_pattern_artist,
    "hf_image_to_text": _load_hf_image_to_text,
    "diffusers_text_to_image": _load_diffusers,
}


# ---------------------------------------------------------------- runners

# (backend, capability) -> (runner "module:function", whether it also takes the spec's embedder).
# A runner takes (model, [embedder,] inputs, params) and returns one output per input.
RUNNERS: dict[tuple[str, str], tuple[str, bool]] = {
    ("sentence_transformers", "keyword_extraction"): ("inference.backends.keywords:extract_keywords", False),
    ("sentence_transformers", "text_classification"): ("inference.backends.zero_shot:classify_zero_shot", False),
    ("sentence_transformers", "embeddings"): ("inference.backends.embeddings:embed", False),
    ("causal_lm", "text_generation"): ("inference.backends.llm.runners:run_text_generation", False),
    ("causal_lm", "dialogue"): ("inference.backends.llm.runners:run_dialogue", False),
    ("causal_lm", "summarization"): ("inference.backends.llm.runners:run_summarization", True),
    ("causal_lm", "question_answering"): ("inference.backends.llm.runners:run_question_answering", True),
    ("causal_lm", "text_classification"): ("inference.backends.llm.classify:classify_by_likelihood", False),
    ("offline_captioner", "image_captioning"): ("inference.backends.vision:run_image_captioning", False),
    ("pattern_artist", "image_generation"): ("inference.backends.vision:run_image_generation", False),
    ("hf_image_to_text", "image_captioning"): ("inference.backends.vision:run_hf_image_captioning", False),
    ("diffusers_text_to_image", "image_generation"): (
        "inference.backends.vision:run_diffusers_image_generation",
        False,
    ),
}


# The runners that take on_delta: their output's text is the generated text itself.
STREAMING_RUNNERS = {("causal_lm", "text_generation"), ("causal_lm", "dialogue")}


def _call_runner(
    spec: ModelSpec,
    capability: str,
    inputs: list[dict],
    params: list[dict],
    on_delta: Callable[[int, str], None] | None = None,
) -> list[dict]:
    entry = RUNNERS.get((spec.backend, capability))
    if entry is None:
        raise ModelNotAvailable(f"Model {spec.name!r} ({spec.backend}) cannot serve {capability}.")
    target, with_embedder = entry
    module, _, function = target.partition(":")
    runner = getattr(importlib.import_module(module), function)
    model = get_model(spec.name)
    streaming = (
        {"on_delta": on_delta} if on_delta is not None and (spec.backend, capability) in STREAMING_RUNNERS else {}
    )
    if with_embedder:
        return runner(model, _embedder(spec), inputs, params, **streaming)
    return runner(model, inputs, params, **streaming)


_adapter_pool: Any = None


def adapter_pool() -> Any:
    """One pool per worker process: base models loaded once, partners' adapters swapped in per batch."""
    global _adapter_pool
    with _lock:
        if _adapter_pool is None:
            from inference.backends.device import resolve_device
            from inference.backends.tuning import AdapterPool

            _adapter_pool = AdapterPool(device=resolve_device(), capacity=settings.ALLIANCE_ADAPTER_CACHE)
    return _adapter_pool


def run_tuned_batch(
    *,
    task: str,
    base_model: str,
    adapter_dir: Path,
    adapter_id: str,
    inputs: list[dict],
    params: list[dict],
    on_delta: JobDelta | None = None,
) -> list[dict]:
    """A batch of jobs on a partner's adapter swapped into its shared base model; generation and chat stream each
    job's text through on_delta(job index, 0, text) as run_batch does."""
    base_path = prepare(get_model_spec(base_model))
    if not adapter_dir.exists():
        raise ModelNotAvailable(f"The adapter of {adapter_id} is missing from this worker's MEDIA_ROOT.")
    pool = adapter_pool()
    if task == "classification":
        return pool.classify(base_path, adapter_dir, adapter_id, inputs, params)
    row_delta = None if on_delta is None else (lambda row, text: on_delta(row, 0, text))
    return pool.generate(base_path, adapter_dir, adapter_id, inputs, params, chat=task == "chat", on_delta=row_delta)


def run_job_model(capability: str, model: str, data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """One job alone (tests and tools); workers go through run_batch."""
    return run_batch(capability, model, [data], [params])[0]
