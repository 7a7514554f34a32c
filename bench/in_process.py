"""Django and torch set up inside a benchmark's own process, for the scripts that run the workers' model code
directly (no worker process): the project importable, the settings loaded, torch on `threads` threads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_in_process(threads: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alliance.settings")
    os.environ["ALLIANCE_TORCH_THREADS"] = str(threads)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from inference.backends.device import configure_torch

    configure_torch()
