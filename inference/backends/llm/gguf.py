"""Converting a packaged GGUF checkpoint once into a plain float32 model directory, with its tokenizer and chat
template.

Both offline language models go through here: SmolLM2 (one GGUF in one package) and Qwen (one GGUF split over six
packages, joined and checked first). Packages are located with importlib.util.find_spec and never imported.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, found without importing it (its code is never run)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Model weights are missing (package {package!r}): {install_hint}")
    return Path(spec.submodule_search_locations[0])


def prepare_from_gguf(target: Path, source_dir: Path, gguf_file: str) -> Path:
    """Dequantizes `source_dir/gguf_file` into a model directory at `target` (idempotent, atomic).

    Loading a GGUF dequantizes it (tens of seconds); the saved float32 directory then loads in seconds. The directory
    appears only complete: it is written to a hidden staging folder beside `target` and renamed into place.
    """
    target = Path(target)
    if (target / "config.json").exists():
        return target
    ensure_preparable(target)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=gguf_file, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        source_dir,
        gguf_file=gguf_file,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
        local_files_only=True,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as staging_root:
        staging = Path(staging_root) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.replace(target)
        except OSError:
            if not (target / "config.json").exists():  # not a concurrent preparer that finished first
                raise
    return target


def ensure_preparable(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists but holds no model (no config.json); remove it and retry.")
