"""Qwen2.5-Coder-0.5B-Instruct's six hash-pinned GGUF parts: joined and checked before anything reads them."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from inference.backends.llm.qwen import (
    QWEN_GGUF_SHA256,
    QWEN_GGUF_SIZE,
    GgufIntegrityError,
    join_parts,
    prepare_qwen,
    qwen_part_files,
)


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_the_installed_parts_join_into_the_published_gguf(tmp_path):
    parts = qwen_part_files()
    assert [part.name for part in parts] == [f"part0{n}.bin" for n in range(1, 7)]
    joined = join_parts(parts, tmp_path / "qwen.gguf")
    assert joined.stat().st_size == QWEN_GGUF_SIZE
    assert joined.read_bytes()[:4] == b"GGUF"


@pytest.mark.slow
def test_a_tampered_part_is_refused_with_both_hashes_and_leaves_no_model_behind(tmp_path):
    installed = qwen_part_files()
    copies = tmp_path / "parts"
    copies.mkdir()
    parts = []
    for part in installed[:-1]:  # the installed files stay untouched: links to them, and a copy of the last
        (copies / part.name).symlink_to(part)
        parts.append(copies / part.name)
    tampered = copies / installed[-1].name
    shutil.copyfile(installed[-1], tampered)
    with tampered.open("r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    parts.append(tampered)
    actual = _sha256(parts)
    assert actual != QWEN_GGUF_SHA256
    models = tmp_path / "models"
    target = models / "qwen2.5-coder-0.5b-instruct"

    with pytest.raises(GgufIntegrityError) as refused:
        prepare_qwen(target, parts=parts)

    message = str(refused.value)
    assert f"expected {QWEN_GGUF_SIZE} bytes with sha256 {QWEN_GGUF_SHA256}" in message
    assert f"got {QWEN_GGUF_SIZE} bytes with sha256 {actual}" in message
    assert "Refusing to load it" in message
    assert not target.exists()
    assert list(models.iterdir()) == []  # the joined file and its scratch folder are gone too


def test_parts_in_the_wrong_order_are_refused(tmp_path):
    small = [tmp_path / "a.bin", tmp_path / "b.bin"]
    small[0].write_bytes(b"GGUF-first")
    small[1].write_bytes(b"-second")
    right = hashlib.sha256(b"GGUF-first-second").hexdigest()
    assert join_parts(small, tmp_path / "ok.gguf", size=17, sha256=right).read_bytes() == b"GGUF-first-second"
    with pytest.raises(GgufIntegrityError, match=f"expected 17 bytes with sha256 {right}"):
        join_parts(small[::-1], tmp_path / "bad.gguf", size=17, sha256=right)
    assert not (tmp_path / "bad.gguf").exists()
