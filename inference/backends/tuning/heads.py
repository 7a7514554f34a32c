"""Classification heads over an encoder's output, shared by training and serving so both compute the same thing.

"cls": [CLS] through the encoder's pooler (dense + tanh), dropout, linear, as AutoModelForSequenceClassification
does (with prompt methods position 0 is the first virtual token, as in peft). "mean": the mean of the text's token
states (virtual tokens left out), L2-normalised as sentence-transformers does for MiniLM, then linear.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression
from torch import nn

from inference.backends.tuning.types import HEAD_FILE

POOLINGS = ("cls", "mean")
LINEAR_PROBE_C = 10.0  # inverse L2 strength of the probe on unit-norm features


def pool(
    last_hidden_state: torch.Tensor,
    pooler_output: torch.Tensor | None,
    attention_mask: torch.Tensor,
    pooling: str,
    virtual_tokens: int = 0,
) -> torch.Tensor:
    if pooling == "cls":
        if pooler_output is None:
            raise ValueError("The encoder has no pooler; use pooling='mean'.")
        return pooler_output
    states = last_hidden_state[:, virtual_tokens:]
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    summed = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return nn.functional.normalize(summed, dim=-1)


class Head(nn.Module):
    def __init__(self, hidden_size: int, labels: int, pooling: str, dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout if pooling == "cls" else 0.0)
        self.linear = nn.Linear(hidden_size, labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(pooled))

    def fit_linear_probe(self, features: np.ndarray, targets: np.ndarray, seed: int) -> None:
        """Starts the head at a logistic regression on frozen features (the LP of LP-FT)."""
        probe = LogisticRegression(C=LINEAR_PROBE_C, max_iter=2000, random_state=seed).fit(features, targets)
        coef, intercept = probe.coef_, probe.intercept_
        if coef.shape[0] == 1:  # binary: softmax([-z/2, z/2]) == sigmoid(z)
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        full_weight = np.zeros((self.linear.out_features, coef.shape[1]), dtype=np.float32)
        full_bias = np.full(self.linear.out_features, -1e4, dtype=np.float32)  # classes absent from the rows
        full_weight[probe.classes_] = coef
        full_bias[probe.classes_] = intercept
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(full_weight))
            self.linear.bias.copy_(torch.from_numpy(full_bias))

    def save(self, directory: Path) -> None:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.linear.state_dict().items()}, directory / HEAD_FILE
        )

    @classmethod
    def load(cls, directory: Path, pooling: str, device: str = "cpu") -> Head:
        state = load_file(str(directory / HEAD_FILE), device=device)
        labels, hidden = state["weight"].shape
        head = cls(hidden, labels, pooling)
        head.linear.load_state_dict(state)
        return head.to(device).eval()
