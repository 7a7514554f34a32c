"""A tiny random-weight Llama with the real SmolLM2 tokenizer, saved so that tests load it the way workers do."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from inference.backends.llm.smollm2 import SMOLLM2_GGUF, smollm2_gguf_dir


def save_tiny_llama(path: Path, *, hidden_size: int, heads: int, max_positions: int, initializer_range: float) -> Path:
    """Two layers `hidden_size` wide (MLP twice as wide), seeded, with SmolLM2's tokenizer, saved under `path`."""
    tokenizer = AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=SMOLLM2_GGUF, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        initializer_range=initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
