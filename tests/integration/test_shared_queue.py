"""Adding capacity is starting one more worker on a family's queue (`celery -A alliance worker -Q embeddings` on
another machine): two workers share the queue, each job runs exactly once, and batching still gathers jobs."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from inference.models import Job
from partners.models import UsageRecord
from tests.factories import KEYWORD_TEXT, client_for, keyword_job, make_key, make_partner
from tests.integration.processes import start_worker

pytestmark = pytest.mark.services

JOBS = 30
MAX_BATCH = 4
BATCH_LINE = re.compile(r"claimed batch (\S+): (\d+) keyword_extraction job")


def test_two_workers_of_one_family_share_its_queue_and_run_each_job_once(live_services, tmp_path):
    partner = make_partner("LG CNS", sector="it")
    api = client_for(make_key(partner)[1])
    env = {"ALLIANCE_MAX_BATCH": str(MAX_BATCH), "ALLIANCE_BATCH_WAIT_MS": "50"}
    workers = [start_worker(tmp_path, name, queues="embeddings", beat=False, **env) for name in ("w-one", "w-two")]
    try:
        ids = []
        for i in range(JOBS):
            response = api.post("/api/v1/jobs", keyword_job(f"{KEYWORD_TEXT} Request {i}."), format="json")
            assert response.status_code == 202, response.json()
            ids.append(response.json()["id"])
        jobs = Job.objects.filter(pk__in=ids)
        deadline = time.monotonic() + 180
        while jobs.filter(status="succeeded").count() < JOBS:
            assert time.monotonic() < deadline, Counter(jobs.values_list("status", flat=True))
            time.sleep(0.3)
        time.sleep(2)  # a late duplicate delivery would show up in the logs below
    finally:
        for worker in workers:
            worker.stop()

    jobs = list(Job.objects.filter(pk__in=ids))
    assert all(job.status == "succeeded" and job.attempts == 1 and job.output["keywords"] for job in jobs)
    for job_id in ids:
        assert UsageRecord.objects.filter(job_id=job_id, kind="charge").count() == 1
        assert not UsageRecord.objects.filter(job_id=job_id, kind="refund").exists()

    # A batch is the jobs that share a claim token; each worker logs the batches it claimed.
    batches_in_db = Counter(str(job.claim_token) for job in jobs)
    logged = {worker.log_path.stem: BATCH_LINE.findall(worker.log()) for worker in workers}
    batches_in_logs = [(token, int(size)) for lines in logged.values() for token, size in lines]
    assert Counter(token for token, _ in batches_in_logs) == Counter(set(batches_in_db))  # each batch ran once
    assert dict(batches_in_logs) == dict(batches_in_db)
    assert sum(size for _, size in batches_in_logs) == JOBS
    assert all(lines for lines in logged.values()), {name: len(lines) for name, lines in logged.items()}
    assert max(batches_in_db.values()) > 1, "no batch gathered more than one job"
    assert max(batches_in_db.values()) <= MAX_BATCH
