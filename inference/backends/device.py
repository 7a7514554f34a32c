"""Where models run and in which precision: one rule for every backend, and the worker's torch threads.

"auto" device: the worker's ALLIANCE_DEVICE, and when that is "auto" too, CUDA when present, else the CPU.
"auto" dtype: bfloat16 on CUDA, float32 elsewhere.
"""

from __future__ import annotations

import os

import torch
from django.conf import settings


def resolve_device(requested: str = "auto") -> str:
    """A torch device name ("cpu", "cuda", "cuda:1", ...) for a model spec's or a caller's `requested` device."""
    if requested == "auto":
        requested = settings.ALLIANCE_DEVICE
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def resolve_dtype(device: str, dtype: str = "auto") -> torch.dtype:
    """The torch dtype for a model spec's `dtype` ("auto", "float32", "bfloat16", "float16") on `device`."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'.")
    return resolved


def torch_threads(processes: int = 1) -> int:
    """The torch threads of one of a worker's `processes` pool processes: ALLIANCE_TORCH_THREADS when set, else
    (0) torch's own default for a lone process, and the cores this process may use shared out between several, so
    that they do not fight over them."""
    if settings.ALLIANCE_TORCH_THREADS > 0:
        return settings.ALLIANCE_TORCH_THREADS
    if processes <= 1:
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def configure_torch(processes: int = 1) -> None:
    """Applies torch_threads(processes) to this worker process."""
    if settings.ALLIANCE_TORCH_THREADS > 0 or processes > 1:
        torch.set_num_threads(torch_threads(processes))
