"""Worker throughput: the bare model in a tight batched loop, against jobs through the whole platform
(submit -> broker -> Celery worker -> database) with dynamic batching on, and with it off.

Usage: .venv/bin/python bench/worker_throughput.py [--quick] [--skip-generation]

Jobs are submitted while no worker runs, then one worker (one process) starts and drains them; throughput is
the number of jobs over the span from the first job's start to the last job's finish, read from the database.
Last line: `worker: raw_per_s=... batched_per_s=... unbatched_per_s=... batched_vs_raw=... batched_vs_unbatched=...`
for text_classification on MiniLM; the line before it gives tokens/s for text_generation on SmolLM2.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from platform_env import ROOT, platform_env

SUBJECTS = ["coffee", "tea", "chocolate", "granola", "dog food", "olive oil", "pasta", "honey", "rice", "crackers"]
VERDICTS = [
    "is wonderful, rich and fresh; I will buy it again",
    "arrived stale and tasted awful, a waste of money",
    "is fine for the price but nothing special",
    "was delivered late and the box was crushed",
    "became my family's favourite within a week",
    "has a strange aftertaste that I could not get used to",
]
LABELS = ["praise", "complaint", "neutral"]
PROMPTS = [
    "Write one sentence about the sea.",
    "Name a colour and describe it.",
    "Give a short tip for learning to cook.",
    "Describe a cat in one sentence.",
]


def review_texts(count: int) -> list[str]:
    pairs = itertools.cycle(itertools.product(SUBJECTS, VERDICTS))
    return [f"The {subject} {verdict} (order {i})." for i, (subject, verdict) in zip(range(count), pairs, strict=False)]


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "alliance.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def submit_jobs(capability: str, inputs: list[dict], params: dict) -> list[str]:
    from capabilities import get_capability
    from inference import services
    from partners.models import Partner
    from partners.services import api_key_issue, quota_set

    partner = Partner.objects.get(slug="lg-ai-research")
    quota = quota_set(partner=partner, capability=capability, monthly_units=10**12, rpm=10**9, actor="bench")
    api_key, _ = api_key_issue(partner=partner, name="bench", actor="bench")
    spec = get_capability(capability)
    return [
        str(services.job_submit(api_key=api_key, quota=quota, capability=spec, data=data, params=params).job.pk)
        for data in inputs
    ]


def drain_with_worker(env: dict[str, str], queue: str, job_ids: list[str], max_batch: int, log: Path) -> float:
    """Starts one worker, waits for every job to finish, returns jobs per second over the working span."""
    from django.db.models import Max, Min

    from inference.models import Job
    from inference.worker import worker_command

    worker_env = {**env, "ALLIANCE_MAX_BATCH": str(max_batch)}
    command = worker_command(queues=queue, concurrency=1, loglevel="WARNING", standalone=True)
    with log.open("w") as out:
        worker = subprocess.Popen(command, cwd=ROOT, env=worker_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        jobs = Job.objects.filter(pk__in=job_ids)
        deadline = time.monotonic() + 1800
        while jobs.exclude(status__in=["succeeded", "failed"]).exists():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker stopped or timed out:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(30)
    failed = jobs.filter(status="failed").count()
    if failed:
        raise RuntimeError(f"{failed} jobs failed: {jobs.filter(status='failed').first().error}")
    span = jobs.aggregate(start=Min("started_at"), end=Max("finished_at"))
    return len(job_ids) / (span["end"] - span["start"]).total_seconds()


def raw_classification(texts: list[str], batch: int) -> float:
    from inference.backends import get_model
    from inference.backends.zero_shot import classify_zero_shot

    model = get_model("all-MiniLM-L6-v2")
    params = {"multi_label": False, "hypothesis_template": "This text is about {}."}
    inputs = [{"text": text, "labels": LABELS} for text in texts]
    classify_zero_shot(model, inputs[:batch], [params] * batch)
    start = time.perf_counter()
    for i in range(0, len(inputs), batch):
        chunk = inputs[i : i + batch]
        classify_zero_shot(model, chunk, [params] * len(chunk))
    return len(inputs) / (time.perf_counter() - start)


def raw_generation(prompts: list[str], params: dict, batch: int) -> float:
    from inference.backends import get_model
    from inference.backends.llm.runners import run_text_generation

    model = get_model("smollm2-135m-instruct")
    run_text_generation(model, [{"prompt": prompts[0]}], [params])
    start, tokens = time.perf_counter(), 0
    for i in range(0, len(prompts), batch):
        chunk = [{"prompt": prompt} for prompt in prompts[i : i + batch]]
        tokens += sum(out["tokens"]["completion"] for out in run_text_generation(model, chunk, [params] * len(chunk)))
    return tokens / (time.perf_counter() - start)


def tokens_per_second(job_ids: list[str], jobs_per_s: float) -> float:
    from inference.models import Job

    tokens = [job.output["tokens"]["completion"] for job in Job.objects.filter(pk__in=job_ids)]
    return jobs_per_s * sum(tokens) / len(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-generation", action="store_true")
    args = parser.parse_args()
    classify_jobs = 256 if args.quick else 1024
    generate_jobs = 8 if args.quick else 32

    with ExitStack() as stack:
        env, tmp = platform_env(stack, database="alliance_bench_worker", redis_db=12)
        setup_django(env)
        from django.conf import settings

        from inference.backends.device import configure_torch
        from inference.registry import get_model_spec

        configure_torch()
        batch = get_model_spec("all-MiniLM-L6-v2").batch_size
        texts = review_texts(classify_jobs)
        inputs = [{"text": text, "labels": LABELS} for text in texts]
        raw = raw_classification(texts, batch)
        print(f"text_classification raw: {raw:.1f} jobs/s ({classify_jobs} texts, batches of {batch})")
        rates = {}
        for name, max_batch in (("batched", 0), ("unbatched", 1)):
            ids = submit_jobs("text_classification", inputs, {})
            rates[name] = drain_with_worker(env, "embeddings", ids, max_batch, tmp / f"classify-{name}.log")
            print(f"text_classification {name}: {rates[name]:.1f} jobs/s")

        if not args.skip_generation:
            params = {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0, "stop": []}
            prompts = [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(generate_jobs)]
            llm_batch = get_model_spec("smollm2-135m-instruct").batch_size
            raw_tokens = raw_generation(prompts, params, llm_batch)
            generation = {}
            for name, max_batch in (("batched", 0), ("unbatched", 1)):
                ids = submit_jobs("text_generation", [{"prompt": p} for p in prompts], params)
                per_s = drain_with_worker(env, "llm", ids, max_batch, tmp / f"generate-{name}.log")
                generation[name] = tokens_per_second(ids, per_s)
            print(
                f"generation: raw_tokens_per_s={raw_tokens:.1f} batched_tokens_per_s={generation['batched']:.1f} "
                f"unbatched_tokens_per_s={generation['unbatched']:.1f} "
                f"batched_vs_raw={generation['batched'] / raw_tokens:.2f} "
                f"batched_vs_unbatched={generation['batched'] / generation['unbatched']:.2f}"
            )
        print(
            f"settings: batch wait {settings.ALLIANCE_BATCH_WAIT_MS} ms, torch threads "
            f"{settings.ALLIANCE_TORCH_THREADS or 'default'}"
        )
        print(
            f"worker: raw_per_s={raw:.1f} batched_per_s={rates['batched']:.1f} "
            f"unbatched_per_s={rates['unbatched']:.1f} batched_vs_raw={rates['batched'] / raw:.2f} "
            f"batched_vs_unbatched={rates['batched'] / rates['unbatched']:.2f}"
        )


if __name__ == "__main__":
    main()
