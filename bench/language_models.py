"""The two offline language models side by side: load time, resident memory and greedy tokens/s on this machine.

Usage: .venv/bin/python bench/language_models.py [--quick] [--threads 2]

Each model is measured in its own fresh process (inference.backends.memory: the RSS the model adds once every
weight is read, and its load time from the prepared directory), then generates greedily through the platform's
dialogue runner: one conversation alone, then a batch of four, each up to --new-tokens tokens. Tokens/s counts the
completion tokens the runner reports over the wall time of the call. Other processes sharing the CPU slow both
models alike; compare the ratios, and the absolute figures only from the same machine and load.
Last line: `language_models: smollm2_tps=... qwen_tps=... qwen_vs_smollm2_tps=... smollm2_rss_mb=... qwen_rss_mb=...
qwen_vs_smollm2_rss=...`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"smollm2": "smollm2-135m-instruct", "qwen": "qwen2.5-coder-0.5b-instruct"}
QUESTIONS = [
    "Describe the sea on a windy day.",
    "한국의 전통 음식 두 가지를 소개해 주세요.",
    "Give three tips for a customer-service call.",
    "What does a bank teller do?",
]


def child(model: str, new_tokens: int) -> dict:
    import django

    django.setup()
    from inference.backends import run_batch
    from inference.backends.memory import measure_model

    figures = measure_model(model)
    params = {"temperature": 0.0, "max_new_tokens": new_tokens}
    run_batch("dialogue", model, [{"messages": [{"role": "user", "content": "Hi"}]}], [{**params, "max_new_tokens": 2}])
    for label, questions in (("single", QUESTIONS[:1]), ("batch4", QUESTIONS)):
        inputs = [{"messages": [{"role": "user", "content": question}]} for question in questions]
        started = time.perf_counter()
        outputs = run_batch("dialogue", model, inputs, [params] * len(inputs))
        seconds = time.perf_counter() - started
        completion = sum(output["tokens"]["completion"] for output in outputs)
        figures[f"{label}_tps"] = round(completion / seconds, 2)
        figures[f"{label}_tokens"] = completion
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="16 new tokens instead of 48")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (ALLIANCE_TORCH_THREADS)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--new-tokens", type=int, default=None)
    args = parser.parse_args()
    new_tokens = args.new_tokens or (16 if args.quick else 48)
    if args.child:
        print(json.dumps(child(args.child, new_tokens)))
        return
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "alliance.settings",
        "ALLIANCE_TORCH_THREADS": str(args.threads),
        "PYTHONPATH": str(ROOT),
    }
    results = {}
    for key, model in MODELS.items():
        run = subprocess.run(
            [sys.executable, __file__, "--child", model, "--new-tokens", str(new_tokens)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode:
            raise SystemExit(f"{model} failed:\n{run.stderr[-3000:]}")
        results[key] = json.loads(run.stdout.strip().splitlines()[-1])
        r = results[key]
        print(
            f"{model:28} load {r['load_seconds']:6.2f} s  rss {r['rss_mb']:5d} MB  "
            f"single {r['single_tps']:6.2f} tok/s ({r['single_tokens']} tokens)  "
            f"batch of 4 {r['batch4_tps']:6.2f} tok/s ({r['batch4_tokens']} tokens)",
            flush=True,
        )
    small, big = results["smollm2"], results["qwen"]
    print(
        f"language_models: smollm2_tps={small['single_tps']} qwen_tps={big['single_tps']} "
        f"qwen_vs_smollm2_tps={big['single_tps'] / small['single_tps']:.2f} "
        f"smollm2_batch4_tps={small['batch4_tps']} qwen_batch4_tps={big['batch4_tps']} "
        f"smollm2_rss_mb={small['rss_mb']} qwen_rss_mb={big['rss_mb']} "
        f"qwen_vs_smollm2_rss={big['rss_mb'] / small['rss_mb']:.2f} "
        f"smollm2_load_s={small['load_seconds']} qwen_load_s={big['load_seconds']} threads={args.threads}"
    )


if __name__ == "__main__":
    main()
