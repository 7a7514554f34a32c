"""Fair sharing between partners: a flood from partner A against partner B's latency, and A's throughput.

Usage: .venv/bin/python bench/fairness.py [--quick]

One worker (one process) of the embeddings family serves embedding jobs (the cheapest on CPU), all through the
platform (submit -> broker -> Celery worker -> database). Three runs side by side:
Uses one torch thread unless ALLIANCE_TORCH_THREADS says otherwise.
1. A alone: A submits N jobs (2,000; 300 with --quick) while the worker is stopped, then the worker drains them;
   A's throughput is N over the span from its first job's start to its last job's finish.
2. B idle: B submits 20 jobs to the idle worker; B's p50 latency (created -> finished).
3. Flood: A submits N jobs, the worker starts, and once a tenth of them has finished B submits 20; B's p50 latency
   and A's throughput as in 1.
Last line: `fairness: neighbour_ratio=<B's p50 under the flood / B's p50 idle; goal <= 2>
a_throughput_ratio=<A's throughput in 3 / in 1; goal >= 0.9> ...`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from platform_env import ROOT, platform_env

NEIGHBOUR_JOBS = 20


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "alliance.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


class Submitter:
    """One partner submitting embedding jobs through the submission service (as the API view does)."""

    def __init__(self, name: str) -> None:
        from capabilities import get_capability
        from partners.services import api_key_issue, partner_create, quota_set

        self.partner = partner_create(name=name, sector="it", actor="bench")
        self.quota = quota_set(
            partner=self.partner, capability="embeddings", monthly_units=10**12, rpm=10**9, actor="bench"
        )
        self.api_key, _ = api_key_issue(partner=self.partner, name="bench", actor="bench")
        self.capability = get_capability("embeddings")

    def submit(self, count: int, tag: str) -> list[str]:
        from inference import services

        return [
            str(
                services.job_submit(
                    api_key=self.api_key,
                    quota=self.quota,
                    capability=self.capability,
                    data={"texts": [f"{self.partner.name} {tag} {i}: an AI banker tuned on finance language."]},
                ).job.pk
            )
            for i in range(count)
        ]


@contextmanager
def worker(env: dict[str, str], log: Path):
    from inference.worker import worker_command

    command = worker_command(queues="embeddings", concurrency=1, loglevel="WARNING", standalone=True)
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def wait_finished(job_ids: list[str], process: subprocess.Popen, log: Path, count: int | None = None) -> None:
    from inference.models import Job

    jobs = Job.objects.filter(pk__in=job_ids)
    count = len(job_ids) if count is None else count
    deadline = time.monotonic() + 1800
    while jobs.filter(status__in=["succeeded", "failed"]).count() < count:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker stopped or timed out:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def throughput(job_ids: list[str]) -> float:
    from django.db.models import Max, Min

    from inference.models import Job

    jobs = Job.objects.filter(pk__in=job_ids)
    failed = jobs.exclude(status="succeeded").count()
    if failed:
        raise RuntimeError(f"{failed} jobs did not succeed")
    span = jobs.aggregate(start=Min("started_at"), end=Max("finished_at"))
    return len(job_ids) / (span["end"] - span["start"]).total_seconds()


def latencies(job_ids: list[str]) -> list[float]:
    from inference.models import Job

    return sorted(
        (job.finished_at - job.created_at).total_seconds()
        for job in Job.objects.filter(pk__in=job_ids, status="succeeded")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    flood = 300 if args.quick else 2000

    with ExitStack() as stack:
        # One torch thread: on shared cores a second thread slows the model far more than it helps.
        threads = os.environ.get("ALLIANCE_TORCH_THREADS", "1")
        env, tmp = platform_env(stack, database="alliance_bench_fairness", redis_db=5, ALLIANCE_TORCH_THREADS=threads)
        setup_django(env)
        from django.conf import settings

        from inference.models import Job

        a, b = Submitter("Flood Co"), Submitter("Neighbour Co")

        ids = a.submit(flood, "alone")
        log = tmp / "alone.log"
        with worker(env, log) as process:
            wait_finished(ids, process, log)
            alone = throughput(ids)
            print(f"A alone: {flood} jobs, {alone:.1f} jobs/s")
            time.sleep(1.0)
            idle_ids = b.submit(NEIGHBOUR_JOBS, "idle")
            wait_finished(idle_ids, process, log)
        idle = latencies(idle_ids)
        print(f"B idle: p50 {statistics.median(idle) * 1000:.0f} ms, max {idle[-1] * 1000:.0f} ms")

        ids = a.submit(flood, "flood")
        log = tmp / "flood.log"
        with worker(env, log) as process:
            wait_finished(ids, process, log, count=flood // 10)
            queued_ahead = Job.objects.filter(pk__in=ids, status="queued").count()
            neighbour_ids = b.submit(NEIGHBOUR_JOBS, "flood")
            wait_finished(ids + neighbour_ids, process, log)
        crowded = latencies(neighbour_ids)
        shared = throughput(ids)
        a_left = Job.objects.filter(
            pk__in=ids, started_at__gt=max(j.finished_at for j in Job.objects.filter(pk__in=neighbour_ids))
        ).count()
        print(
            f"B under the flood: p50 {statistics.median(crowded) * 1000:.0f} ms, max {crowded[-1] * 1000:.0f} ms "
            f"({queued_ahead} of A's jobs queued ahead of it; {a_left} still to start when B's last finished)"
        )
        print(f"A beside B: {shared:.1f} jobs/s")
        print(
            f"(first in, first out, B would have waited behind those {queued_ahead} jobs: "
            f"about {queued_ahead / shared:.0f} s at A's rate, an estimate, not measured)"
        )
        print(
            f"settings: tier weights {settings.ALLIANCE_TIER_WEIGHTS}, "
            f"window {settings.ALLIANCE_FAIR_WINDOW_SECONDS:g} s, running cap {settings.ALLIANCE_PARTNER_MAX_RUNNING}, "
            f"batch wait {settings.ALLIANCE_BATCH_WAIT_MS} ms, torch threads {threads}"
        )
        print(
            f"fairness: neighbour_ratio={statistics.median(crowded) / statistics.median(idle):.2f} "
            f"a_throughput_ratio={shared / alone:.2f} b_idle_p50_ms={statistics.median(idle) * 1000:.0f} "
            f"b_flood_p50_ms={statistics.median(crowded) * 1000:.0f} a_alone_per_s={alone:.1f} "
            f"a_shared_per_s={shared:.1f} flood={flood}"
        )


if __name__ == "__main__":
    main()
