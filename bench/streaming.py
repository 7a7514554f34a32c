"""Streaming latency: time to first token (TTFT) and inter-token latency (ITL) through the platform, against the
bare model in this process, side by side in one run (rounds alternate, so both see the same machine load).

Usage: .venv/bin/python bench/streaming.py [--quick] [--rounds N] [--max-tokens N]

Platform: POST /v1/chat/completions with stream=true on one gunicorn server, one Celery worker (one process, the
llm queue) and no queue ahead of it; TTFT = from sending the request to the first SSE chunk with content.
Bare: inference.backends.llm.engine.generate on the same SmolLM2 directory, same prompt and greedy settings, with
the same torch threads as the worker; TTFT = from the call to the first delta. For both, ITL = (last delta - first
delta) / (completion tokens - 1), so chunks that carry more than one token are counted fairly.
Uses PostgreSQL (a fresh `alliance_bench_stream` database) and Redis (db 11) when they answer.

Sections: `streaming` (here); a `waiting_clients` section can be added as another function of the same shape
(env, port, key) -> dict, and its figures joined into the last line.
Last line: `streaming: ttft_ratio=... ttft_added_ms=... itl_ratio=... ...`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from platform_env import HOST, ROOT, free_port, manage, platform_env, start_gunicorn

MODEL = "smollm2-135m-instruct"
PROMPTS = [
    "Write a short story about a robot who learns to paint.",
    "Explain how a bank keeps customers' money safe.",
    "Describe a walk through Seoul in autumn.",
    "Give three tips for writing clear emails.",
]
THREADS = "1"


def start_worker(env: dict[str, str], log: Path, stack: ExitStack) -> None:
    sys.path.insert(0, str(ROOT))
    from inference.worker import worker_command

    command = worker_command(queues="llm", concurrency=1, hostname="bench-stream@%h", standalone=True)
    log_file = stack.enter_context(log.open("w"))
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    stack.callback(stop)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "worker process ready" in text and " ready." in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{text[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError("worker did not start within 300 s")


def job_times(env: dict[str, str]) -> tuple[float, float] | None:
    """(created_at, started_at) of the newest job as epoch seconds, read from PostgreSQL (None on SQLite)."""
    if "DATABASE_URL" not in env:
        return None
    import psycopg

    with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT extract(epoch from created_at), extract(epoch from started_at) FROM inference_job "
            "ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    return (float(row[0]), float(row[1])) if row else None


def platform_once(port: int, key: str, prompt: str, max_tokens: int) -> tuple[float, float, float, float]:
    """(TTFT s, ITL s, send wall time, first token wall time) of one streamed chat completion."""
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started, sent_at = time.perf_counter(), time.time()
    conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:500]!r}")
    first = last = None
    tokens = 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data:") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[5:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            if first is None:
                first, first_at = last, time.time()
    conn.close()
    if first is None or tokens < 2:
        raise RuntimeError("no tokens streamed")
    return first - started, (last - first) / (tokens - 1), sent_at, first_at


class Bare:
    def __init__(self, models_dir: Path) -> None:
        import torch

        from inference.backends.llm.engine import load_causal_lm

        torch.set_num_threads(int(THREADS))
        self.lm = load_causal_lm(models_dir / MODEL)

    def once(self, prompt: str, max_tokens: int) -> tuple[float, float]:
        from inference.backends.llm.engine import chat_prompt, generate

        times: list[float] = []
        started = time.perf_counter()
        text = chat_prompt(self.lm, [{"role": "user", "content": prompt}])
        [generation] = generate(
            self.lm,
            [text],
            [{"max_new_tokens": max_tokens, "temperature": 0}],
            add_special_tokens=not self.lm.has_chat_template,
            on_delta=lambda _, piece: times.append(time.perf_counter()),
        )
        return times[0] - started, (times[-1] - times[0]) / (generation.completion_tokens - 1)


def streaming(env: dict[str, str], port: int, key: str, rounds: int, max_tokens: int) -> dict[str, float]:
    bare = Bare(Path(env["ALLIANCE_MODELS_DIR"]))
    platform_once(port, key, "Hello", 8)  # warm both paths up
    bare.once("Hello", 8)
    results: dict[str, list[float]] = {"bare_ttft": [], "bare_itl": [], "platform_ttft": [], "platform_itl": []}
    handoffs: list[float] = []
    for index in range(rounds):
        prompt = PROMPTS[index % len(PROMPTS)]
        order = ("platform", "bare") if index % 2 == 0 else ("bare", "platform")
        for side in order:
            detail = ""
            if side == "platform":
                ttft, itl, sent_at, first_at = platform_once(port, key, prompt, max_tokens)
                times = job_times(env)
                if times is not None:  # where the added time goes: to the worker's claim, then to the first token
                    handoffs.append(times[1] - sent_at)
                    detail = f" (send->claim {(times[1] - sent_at) * 1000:.0f} ms, claim->first token "
                    detail += f"{(first_at - times[1]) * 1000:.0f} ms)"
            else:
                ttft, itl = bare.once(prompt, max_tokens)
            results[f"{side}_ttft"].append(ttft)
            results[f"{side}_itl"].append(itl)
            print(f"round {index} {side:8s} ttft={ttft * 1000:7.1f} ms itl={itl * 1000:6.1f} ms{detail}", flush=True)
    median = {name: statistics.median(values) * 1000 for name, values in results.items()}
    return {
        "ttft_ratio": median["platform_ttft"] / median["bare_ttft"],
        "ttft_added_ms": median["platform_ttft"] - median["bare_ttft"],
        "itl_ratio": statistics.mean(results["platform_itl"]) / statistics.mean(results["bare_itl"]),
        "bare_ttft_ms": median["bare_ttft"],
        "platform_ttft_ms": median["platform_ttft"],
        "bare_itl_ms": statistics.mean(results["bare_itl"]) * 1000,
        "platform_itl_ms": statistics.mean(results["platform_itl"]) * 1000,
        "send_to_claim_ms": statistics.median(handoffs) * 1000 if handoffs else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    rounds = 4 if args.quick else args.rounds
    with ExitStack() as stack:
        env, tmp = platform_env(stack, database="alliance_bench_stream", redis_db=11, ALLIANCE_TORCH_THREADS=THREADS)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("ALLIANCE_", "DJANGO_", "DATABASE", "REDIS"))})
        key = manage(env, "issue_api_key", "lg-ai-research", "--name", "bench-stream")
        port = free_port()
        start_gunicorn(env, port, workers=1, threads=8, log=tmp / "web.log", stack=stack)
        start_worker(env, tmp / "worker.log", stack)
        figures = streaming(env, port, key, rounds, args.max_tokens)
    print(
        f"streaming (median TTFT, mean ITL over {rounds} rounds of {args.max_tokens} tokens): "
        f"bare ttft={figures['bare_ttft_ms']:.1f} ms itl={figures['bare_itl_ms']:.1f} ms; "
        f"platform ttft={figures['platform_ttft_ms']:.1f} ms itl={figures['platform_itl_ms']:.1f} ms"
    )
    print("streaming: " + " ".join(f"{name}={value:.3f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
