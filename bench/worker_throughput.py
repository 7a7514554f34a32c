"""Worker throughput: the bare model in a tight batched loop, against jobs through the whole platform
(submit -> broker -> Celery worker -> database) with dynamic batching on, and with it off; jobs arriving
continuously; and two worker processes of one family against one.

Usage: .venv/bin/python bench/worker_throughput.py [--quick] [--skip-generation] [--database NAME] [--redis-db N]

Queue filled in advance: jobs are submitted while the worker (started, its model loaded and run once) is stopped,
then it drains them; throughput is the number of jobs over the span from the first job's start to the last job's
finish, read from the database. Continuous arrival: client processes submit jobs at 80% of the bare model's rate
while the worker runs; throughput, and latency from submission to finish. Last line (text_classification on
MiniLM): `worker: raw_per_s=... batched_per_s=... unbatched_per_s=... batched_vs_raw=... batched_vs_unbatched=...
continuous_offered_per_s=... continuous_per_s=... continuous_ratio=... continuous_p50_s=... continuous_p99_s=...
two_procs_per_s=... two_procs_ratio=...`; the line before it gives tokens/s for text_generation.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import signal
import statistics
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
# The models the bare loops run, named in each job (text generation's default model is another one).
MODELS = {"text_classification": "all-MiniLM-L6-v2", "text_generation": "smollm2-135m-instruct"}
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


def bench_key(capability: str) -> tuple:
    from capabilities import get_capability
    from partners.models import Partner
    from partners.services import api_key_issue, quota_set

    partner = Partner.objects.get(slug="lg-ai-research")
    quota = quota_set(partner=partner, capability=capability, monthly_units=10**12, rpm=10**9, actor="bench")
    api_key, _ = api_key_issue(partner=partner, name="bench", actor="bench")
    return api_key, quota, get_capability(capability)


def submit_jobs(capability: str, inputs: list[dict], params: dict) -> list[str]:
    from inference import services

    api_key, quota, spec = bench_key(capability)
    model = MODELS[capability]
    return [
        str(
            services.job_submit(
                api_key=api_key, quota=quota, capability=spec, data=data, params=params, model=model
            ).job.pk
        )
        for data in inputs
    ]


class Worker:
    """One Celery worker (its own process group) on `queue`: started, its model loaded and run once (a warm-up
    job), so that what is measured starts from a warm process, as the bare loop does."""

    def __init__(self, env: dict[str, str], queue: str, log: Path, *, max_batch: int, processes: int = 1) -> None:
        from inference.worker import worker_command

        worker_env = {**env, "ALLIANCE_MAX_BATCH": str(max_batch)}
        command = worker_command(queues=queue, concurrency=processes, loglevel="WARNING", standalone=True)
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=worker_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def signal(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def wait_for(self, job_ids: list[str], timeout: float = 1800) -> None:
        from inference.models import Job

        jobs = Job.objects.filter(pk__in=job_ids)
        deadline = time.monotonic() + timeout
        while jobs.exclude(status__in=["succeeded", "failed"]).exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker stopped or timed out:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        failed = jobs.filter(status="failed").count()
        if failed:
            raise RuntimeError(f"{failed} jobs failed: {jobs.filter(status='failed').first().error}")

    def stop(self) -> None:
        """A warm shutdown (the running delivery finishes), then the whole group killed if it takes over 60 s."""
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(30)


def drain(worker: Worker, capability: str, inputs: list[dict], params: dict, warm: list[dict]) -> tuple[list, float]:
    """Warms the worker up, stops it, fills the queue, lets it go; answers the job ids and jobs per second over the
    working span."""
    from django.db.models import Max, Min

    from inference.models import Job

    worker.wait_for(submit_jobs(capability, warm, params))
    worker.signal(signal.SIGSTOP)
    try:
        job_ids = submit_jobs(capability, inputs, params)
    finally:
        worker.signal(signal.SIGCONT)
    worker.wait_for(job_ids)
    span = Job.objects.filter(pk__in=job_ids).aggregate(start=Min("started_at"), end=Max("finished_at"))
    return job_ids, len(job_ids) / (span["end"] - span["start"]).total_seconds()


def drain_with_worker(
    env: dict[str, str], queue: str, capability: str, inputs: list[dict], params: dict, log: Path, **worker: int
) -> tuple[list[str], float]:
    """A fresh worker drains a queue filled in advance (drain); stopped afterwards."""
    running = Worker(env, queue, log, **worker)
    try:
        return drain(running, capability, inputs, params, inputs[:1])
    finally:
        running.stop()


def client(env: dict[str, str], capability: str, inputs: list[dict], rate: float, start: float) -> list[str]:
    """One client process: submits its inputs one at a time at `rate` per second from wall time `start` (an open
    loop: a late submission does not push the next ones back)."""
    setup_django(env)
    from inference import services

    api_key, quota, spec = bench_key(capability)
    ids = []
    for i, data in enumerate(inputs):
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        submitted = services.job_submit(
            api_key=api_key, quota=quota, capability=spec, data=data, model=MODELS[capability]
        )
        ids.append(str(submitted.job.pk))
    return ids


def continuous(worker: Worker, capability: str, inputs: list[dict], rate: float, clients: int) -> dict[str, float]:
    """`clients` processes submit `inputs` at `rate` jobs/s in all, spread evenly, while the worker runs."""
    from inference.models import Job

    context = multiprocessing.get_context("spawn")
    start = time.time() + 8  # every client set up before the first submission
    shares = [inputs[i::clients] for i in range(clients)]
    with context.Pool(clients) as pool:
        env = dict(os.environ)
        waiting = [
            pool.apply_async(client, (env, capability, share, rate / clients, start + i / rate))
            for i, share in enumerate(shares)
        ]
        job_ids = [job_id for result in waiting for job_id in result.get(timeout=3600)]
    worker.wait_for(job_ids)
    rows = list(Job.objects.filter(pk__in=job_ids).values_list("created_at", "finished_at"))
    first, last = min(c for c, _ in rows), max(c for c, _ in rows)
    latencies = sorted((finished - created).total_seconds() for created, finished in rows)
    offered = (len(rows) - 1) / (last - first).total_seconds()
    served = len(rows) / (max(f for _, f in rows) - first).total_seconds()
    return {
        "offered": offered,
        "served": served,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


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
    parser.add_argument("--database", default="alliance_bench_worker", help="PostgreSQL database (created, dropped)")
    parser.add_argument("--redis-db", type=int, default=12, help="Redis db number (flushed before and after)")
    parser.add_argument("--clients", type=int, default=4, help="client processes of the continuous run")
    args = parser.parse_args()
    classify_jobs = 256 if args.quick else 1024
    unbatched_jobs = 64 if args.quick else 256
    continuous_seconds = 20 if args.quick else 60
    generate_jobs = 8 if args.quick else 32

    with ExitStack() as stack:
        env, tmp = platform_env(stack, database=args.database, redis_db=args.redis_db)
        setup_django(env)
        from django.conf import settings

        from inference.backends.device import configure_torch, torch_threads
        from inference.registry import get_model_spec

        configure_torch()
        cores = len(os.sched_getaffinity(0))
        batch = get_model_spec("all-MiniLM-L6-v2").batch_size
        texts = review_texts(classify_jobs)
        inputs = [{"text": text, "labels": LABELS} for text in texts]
        raw_before = raw_classification(texts, batch)
        print(f"text_classification raw: {raw_before:.1f} jobs/s ({classify_jobs} texts, batches of {batch})")

        worker = Worker(env, "embeddings", tmp / "classify-batched.log", max_batch=0)
        stack.callback(worker.stop)
        _, batched = drain(worker, "text_classification", inputs, {}, inputs[:1])
        print(f"text_classification batched: {batched:.1f} jobs/s (queue filled in advance, 1 process)")
        rate = 0.8 * raw_before
        count = max(args.clients, int(rate * continuous_seconds))
        arriving = [{"text": text, "labels": LABELS} for text in review_texts(classify_jobs + count)[classify_jobs:]]
        flow = continuous(worker, "text_classification", arriving, rate, args.clients)
        worker.stop()
        print(
            f"text_classification continuous: offered {flow['offered']:.1f} jobs/s ({count} jobs from {args.clients} "
            f"client processes, 80% of raw), served {flow['served']:.1f} jobs/s, latency p50 {flow['p50']:.2f} s "
            f"p99 {flow['p99']:.2f} s"
        )
        _, two_procs = drain_with_worker(
            env,
            "embeddings",
            "text_classification",
            inputs[:classify_jobs],
            {},
            tmp / "classify-two.log",
            max_batch=0,
            processes=2,
        )
        print(
            f"text_classification two processes: {two_procs:.1f} jobs/s (torch threads {torch_threads(2)} each, "
            f"against {torch_threads(1)} in one process)"
        )
        _, unbatched = drain_with_worker(
            env, "embeddings", "text_classification", inputs[:unbatched_jobs], {}, tmp / "classify-un.log", max_batch=1
        )
        print(f"text_classification unbatched: {unbatched:.1f} jobs/s ({unbatched_jobs} jobs)")
        raw_after = raw_classification(texts, batch)
        raw = (raw_before + raw_after) / 2
        print(f"text_classification raw again: {raw_after:.1f} jobs/s; raw = their mean, {raw:.1f}")

        if not args.skip_generation:
            params = {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0, "stop": []}
            prompts = [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(generate_jobs)]
            llm_batch = get_model_spec("smollm2-135m-instruct").batch_size
            raw_tokens = raw_generation(prompts, params, llm_batch)
            generation = {}
            for name, max_batch in (("batched", 0), ("unbatched", 1)):
                ids, per_s = drain_with_worker(
                    env,
                    "llm",
                    "text_generation",
                    [{"prompt": p} for p in prompts],
                    params,
                    tmp / f"generate-{name}.log",
                    max_batch=max_batch,
                )
                generation[name] = tokens_per_second(ids, per_s)
            print(
                f"generation: raw_tokens_per_s={raw_tokens:.1f} batched_tokens_per_s={generation['batched']:.1f} "
                f"unbatched_tokens_per_s={generation['unbatched']:.1f} "
                f"batched_vs_raw={generation['batched'] / raw_tokens:.2f} "
                f"batched_vs_unbatched={generation['batched'] / generation['unbatched']:.2f}"
            )
        print(
            f"settings: batch wait {settings.ALLIANCE_BATCH_WAIT_MS} ms, torch threads "
            f"{settings.ALLIANCE_TORCH_THREADS or 'default'}, {cores} cores, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        print(
            f"worker: raw_per_s={raw:.1f} batched_per_s={batched:.1f} "
            f"unbatched_per_s={unbatched:.1f} batched_vs_raw={batched / raw:.2f} "
            f"batched_vs_unbatched={batched / unbatched:.2f} continuous_offered_per_s={flow['offered']:.1f} "
            f"continuous_per_s={flow['served']:.1f} continuous_ratio={flow['served'] / flow['offered']:.2f} "
            f"continuous_p50_s={flow['p50']:.2f} continuous_p99_s={flow['p99']:.2f} "
            f"two_procs_per_s={two_procs:.1f} two_procs_ratio={two_procs / batched:.2f}"
        )


if __name__ == "__main__":
    main()
