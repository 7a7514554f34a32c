"""Model backends: the only package that imports torch. Models load once per worker process."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings

from inference.registry import ModelNotAvailable, ModelSpec, get_model_spec, model_specs, resolve_source

logger = logging.getLogger(__name__)

_loaded: dict[str, Any] = {}
_lock = threading.Lock()


def pick_device(requested: str = "auto") -> str:
    import torch

    requested = settings.ALLIANCE_DEVICE if requested == "auto" else requested
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def configure_torch() -> None:
    import torch

    threads = int(os.environ.get("ALLIANCE_TORCH_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)


def _load(spec: ModelSpec) -> Any:
    path = resolve_source(spec.source)
    if not path.exists():
        raise ModelNotAvailable(f"Model {spec.name!r}: {path} does not exist. Set its source in ALLIANCE_MODELS_FILE.")
    loader = LOADERS.get(spec.backend)
    if loader is None:
        raise ModelNotAvailable(f"Model {spec.name!r}: unknown backend {spec.backend!r}.")
    logger.info("loading model %s (%s) from %s", spec.name, spec.backend, path)
    return loader(spec, str(path), pick_device(spec.device))


def get_model(name: str) -> Any:
    model = _loaded.get(name)
    if model is None:
        with _lock:
            model = _loaded.get(name)
            if model is None:
                model = _loaded[name] = _load(get_model_spec(name))
    return model


def warm_up(queues: set[str] | None = None) -> list[str]:
    """Loads every model whose family this worker serves and runs each once."""
    configure_torch()
    names = [spec.name for spec in model_specs().values() if queues is None or spec.queue in queues]
    for name in names:
        get_model(name)
    return names


def run_job_model(capability: str, model: str, data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    runner = RUNNERS.get(capability)
    if runner is None:
        raise ModelNotAvailable(f"No runner for capability {capability!r} on this worker.")
    return runner(get_model(model), [data], params)[0]


def _load_sentence_transformer(spec: ModelSpec, path: str, device: str) -> Any:
    from inference.backends.embeddings import load_sentence_transformer

    return load_sentence_transformer(path, device)


def _run_keywords(model: Any, inputs: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    from inference.backends.keywords import extract_keywords

    return extract_keywords(model, inputs, params)


LOADERS: dict[str, Callable[[ModelSpec, str, str], Any]] = {
    "sentence_transformers": _load_sentence_transformer,
}

RUNNERS: dict[str, Callable[[Any, list[dict[str, Any]], dict[str, Any]], list[dict[str, Any]]]] = {
    "keyword_extraction": _run_keywords,
}
