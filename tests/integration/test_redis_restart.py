"""Redis restarted during a run (it keeps nothing on disk): PostgreSQL is the truth, the reaper sends the lost
jobs again, every job finishes once and is charged once; submissions during the outage get a clear 503."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from inference.models import Job
from partners.models import UsageRecord
from tests.factories import KEYWORD_TEXT, client_for, keyword_job, make_key, make_partner
from tests.integration.processes import start_worker

pytestmark = pytest.mark.services

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_jobs_survive_a_redis_restart(live_services, tmp_path):
    api = client_for(make_key(make_partner("LG CNS"))[1])
    # Seconds of work: 64 texts of 256 tokens each through MiniLM (keyword extraction is bounded now, and quick).
    slow_texts = [" ".join(f"partner{(i * 7 + j) % 97} adapter{j % 89}" for j in range(120)) for i in range(64)]
    slow_job = {"capability": "embeddings", "input": {"texts": slow_texts}}
    worker = start_worker(tmp_path, "w-redis", queues="embeddings,default", ALLIANCE_JOB_REENQUEUE_SECONDS="4")
    try:
        ids = [
            api.post("/api/v1/jobs", slow_job if i == 0 else keyword_job(f"{KEYWORD_TEXT} {i}"), format="json").json()[
                "id"
            ]
            for i in range(4)
        ]
        assert _wait(lambda: Job.objects.get(pk=ids[0]).status == "running", 60)
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, timeout=30)
        assert _wait(lambda: not _redis_up(), 10)
        during = api.post("/api/v1/jobs", keyword_job("submitted while Redis is down"), format="json")
        assert during.status_code == 503 and during.json()["error"]["code"] == "rate_limiter_unavailable"
        subprocess.run(REDIS_START, check=True, timeout=30)
        assert _wait(_redis_up, 30)
        assert _wait(lambda: Job.objects.filter(pk__in=ids, status="succeeded").count() == 4, 180), list(
            Job.objects.filter(pk__in=ids).values_list("status", flat=True)
        )
    finally:
        if not _redis_up():
            subprocess.run(REDIS_START, check=False, timeout=30)
        worker.stop()
    assert Job.objects.count() == 4
    for job_id in ids:
        assert UsageRecord.objects.filter(job_id=job_id, kind="charge").count() == 1
        assert not UsageRecord.objects.filter(job_id=job_id, kind="refund").exists()
