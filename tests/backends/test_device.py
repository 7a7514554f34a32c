"""A worker's torch threads: its pool processes share the machine's cores unless ALLIANCE_TORCH_THREADS says."""

from __future__ import annotations

import os

import torch

from inference.backends.device import torch_threads


def test_pool_processes_share_the_cores_and_the_setting_overrides(settings):
    settings.ALLIANCE_TORCH_THREADS = 0
    cores = len(os.sched_getaffinity(0))
    assert torch_threads(1) == torch.get_num_threads()  # a lone process keeps torch's default
    assert torch_threads(2) == max(1, cores // 2)
    assert torch_threads(4 * cores) == 1
    settings.ALLIANCE_TORCH_THREADS = 3
    assert torch_threads(1) == torch_threads(2) == 3
