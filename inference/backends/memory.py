"""What one model costs a worker process: the resident memory (RSS) it adds and its load time, measured by loading
it in a fresh process (`python -m inference.backends.memory <model>`, which `manage.py models --measure` runs).

The figure is the RSS growth from loading the model and reading each of its weights once (safetensors are mapped
lazily: a model that has served a job holds all of them), after torch and transformers are imported and the models
it uses (e.g. the LLM's retriever) are loaded: what adding this model to a worker costs, not the whole process.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _modules(loaded: Any, depth: int = 3) -> list[Any]:
    """The torch modules a loaded model object holds: itself, or found through its attributes (a few levels down)."""
    import torch

    if isinstance(loaded, torch.nn.Module):
        return [loaded]
    if depth == 0 or not hasattr(loaded, "__dict__"):
        return []
    return [module for value in vars(loaded).values() for module in _modules(value, depth - 1)]


def _touch_weights(loaded: Any) -> None:
    import torch

    with torch.no_grad():
        for module in _modules(loaded):
            for tensor in [*module.parameters(), *module.buffers()]:
                tensor.sum()


def measure_model(name: str) -> dict[str, Any]:
    """Loads `name` (after what it uses) in this process and reports the RSS it added (on loading, and once every
    weight is read) and the seconds loading took."""
    import torch  # noqa: F401 - imported before the baseline: every worker pays for it once
    import transformers  # noqa: F401

    from inference.backends import get_model
    from inference.backends.device import configure_torch
    from inference.registry import get_model_spec

    configure_torch()
    spec = get_model_spec(name)
    for used in spec.options.get("uses", []):
        get_model(used)
    before = _rss_bytes()
    started = time.perf_counter()
    loaded = get_model(name)
    seconds = time.perf_counter() - started
    on_load = _rss_bytes() - before
    _touch_weights(loaded)
    added = _rss_bytes() - before
    return {
        "model": name,
        "rss_mb": round(added / 2**20),
        "rss_on_load_mb": round(on_load / 2**20),
        "load_seconds": round(seconds, 2),
    }


def main(argv: list[str]) -> int:
    import django

    django.setup()
    print(json.dumps(measure_model(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
