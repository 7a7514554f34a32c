"""`manage.py models`: each model's memory, as documented in the registry or measured in a fresh process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command

from capabilities.default_models import LLM, QWEN


def test_models_lists_both_language_models_with_their_documented_memory(prepared_llm, prepared_qwen):
    out = io.StringIO()
    call_command("models", stdout=out)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()}
    assert "ready" in lines[LLM] and "rss ~557 MB (documented)" in lines[LLM]
    assert "ready" in lines[QWEN] and "rss ~2530 MB (documented)" in lines[QWEN]


@pytest.mark.slow
def test_a_measurement_loads_the_model_in_a_fresh_process_and_counts_its_weights(prepared_llm):
    run = subprocess.run(
        [sys.executable, "-m", "inference.backends.memory", LLM],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "alliance.settings", "ALLIANCE_TORCH_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    # 134.5 M float32 parameters are 513 MiB: once read, they are resident (on load, safetensors are only mapped).
    assert figures["model"] == LLM
    assert 480 <= figures["rss_mb"] <= 800, figures
    assert figures["rss_on_load_mb"] < figures["rss_mb"]
    assert figures["load_seconds"] > 0
