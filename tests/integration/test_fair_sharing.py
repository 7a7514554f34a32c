"""Fair sharing between partners on the real worker (a Celery worker process, PostgreSQL, Redis): a flood from one
partner does not starve another, tier weights set the share, the per-partner running cap holds, and every job still
runs exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from inference.models import Job
from partners.models import UsageRecord
from tests.factories import client_for, make_key, make_partner
from tests.integration.processes import start_worker

pytestmark = pytest.mark.services

MAX_BATCH = 8


def _partner_api(name: str, tier: str = "standard"):
    partner = make_partner(name, tier=tier)
    return partner, client_for(make_key(partner)[1])


def _submit(api, count: int, tag: str) -> list[str]:
    """`count` embedding jobs of one short text each: the cheapest jobs on the worker."""
    ids = []
    for i in range(count):
        job = {"capability": "embeddings", "input": {"texts": [f"{tag} request {i}: an AI banker tuned on finance."]}}
        response = api.post("/api/v1/jobs", job, format="json")
        assert response.status_code == 202, response.json()
        ids.append(response.json()["id"])
    return ids


def _wait_for(ids: list[str], count: int | None = None, timeout: float = 300) -> None:
    jobs = Job.objects.filter(pk__in=ids)
    count = len(ids) if count is None else count
    deadline = time.monotonic() + timeout
    while jobs.filter(status="succeeded").count() < count:
        assert time.monotonic() < deadline, Counter(jobs.values_list("status", flat=True))
        time.sleep(0.2)


def _assert_exactly_once(ids: list[str]) -> None:
    jobs = list(Job.objects.filter(pk__in=ids))
    assert len(jobs) == len(ids)
    assert all(job.status == "succeeded" and job.attempts == 1 and job.output for job in jobs)
    charges = Counter(UsageRecord.objects.filter(job_id__in=ids, kind="charge").values_list("job_id", flat=True))
    assert len(charges) == len(ids) and set(charges.values()) == {1}
    assert not UsageRecord.objects.filter(job_id__in=ids, kind="refund").exists()


def _started_order(ids: list[str]) -> list[Job]:
    return list(Job.objects.filter(pk__in=ids).order_by("started_at", "created_at"))


def test_a_flood_from_one_partner_does_not_starve_another(live_services, tmp_path):
    flooder, api_a = _partner_api("Flood Co")
    neighbour, api_b = _partner_api("Neighbour Co")
    flood = _submit(api_a, 200, "flood")
    worker = start_worker(tmp_path, "w-fair", queues="embeddings", beat=False, ALLIANCE_MAX_BATCH=str(MAX_BATCH))
    try:
        _wait_for(flood, count=2 * MAX_BATCH)  # the flood is being served
        neighbours = _submit(api_b, 10, "neighbour")
        _wait_for(flood + neighbours, timeout=600)
    finally:
        worker.stop()

    _assert_exactly_once(flood + neighbours)
    b_jobs = list(Job.objects.filter(pk__in=neighbours))
    b_last_finish = max(job.finished_at for job in b_jobs)
    a_jobs = list(Job.objects.filter(pk__in=flood))
    # Each of B's jobs waited only for the batch in progress when it arrived: A's jobs claimed while it waited (strictly
    # between its arrival and its start) are none in principle; a batch's worth is the tolerance.
    for job in b_jobs:
        overtaking = [a for a in a_jobs if job.created_at < a.started_at < job.started_at]
        assert len(overtaking) <= MAX_BATCH, (job.pk, len(overtaking))
    # B finished long before the flood did: most of A's jobs were still waiting (FIFO would have run them all first).
    a_after_b = [job for job in a_jobs if job.started_at > b_last_finish]
    assert len(a_after_b) >= 100, len(a_after_b)
    order = [job.partner_id for job in _started_order(flood + neighbours)]
    assert max(i for i, partner_id in enumerate(order) if partner_id == neighbour.pk) < 100
    assert order.count(flooder.pk) == 200


def test_tier_weights_set_the_share_of_the_worker(live_services, tmp_path):
    standard, api_a = _partner_api("Standard Co")
    founding, api_b = _partner_api("Founding Co", tier="founding")  # weight 3 against 1
    ids_a = _submit(api_a, 40, "standard")
    ids_b = _submit(api_b, 40, "founding")  # submitted after all of A's
    worker = start_worker(tmp_path, "w-tiers", queues="embeddings", beat=False, ALLIANCE_MAX_BATCH=str(MAX_BATCH))
    try:
        _wait_for(ids_a + ids_b)
    finally:
        worker.stop()

    _assert_exactly_once(ids_a + ids_b)
    first = Counter(job.partner_id for job in _started_order(ids_a + ids_b)[:32])
    # Weights 3 : 1 give the founding partner 24 of the first 32 jobs (first in, first out would give it none).
    assert 20 <= first[founding.pk] <= 28, first
    assert first[standard.pk] >= 4, first


def test_the_per_partner_running_cap_holds_across_workers(live_services, tmp_path):
    cap = 3
    capped, api_a = _partner_api("Busy Co")
    other, api_b = _partner_api("Quiet Co")
    ids_a = _submit(api_a, 40, "busy")
    ids_b = _submit(api_b, 12, "quiet")
    env = {"ALLIANCE_MAX_BATCH": "4", "ALLIANCE_PARTNER_MAX_RUNNING": str(cap)}
    most_running: Counter[int] = Counter()
    stop = threading.Event()

    def sample() -> None:
        try:
            while not stop.is_set():
                running = Counter(
                    Job.objects.filter(status="running", pk__in=ids_a + ids_b).values_list("partner_id", flat=True)
                )
                for partner_id, count in running.items():
                    most_running[partner_id] = max(most_running[partner_id], count)
                time.sleep(0.005)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers = []
    try:
        workers = [start_worker(tmp_path, name, queues="embeddings", beat=False, **env) for name in ("w-a", "w-b")]
        _wait_for(ids_a + ids_b, timeout=600)
    finally:
        stop.set()
        sampler.join()
        for worker in workers:
            worker.stop()

    _assert_exactly_once(ids_a + ids_b)
    assert 1 < most_running[capped.pk] <= cap, most_running
    assert most_running[other.pk] <= cap, most_running
    per_batch = Counter((job.claim_token, job.partner_id) for job in Job.objects.filter(pk__in=ids_a + ids_b))
    assert max(per_batch.values()) <= cap, per_batch
    assert {token for token, partner_id in per_batch if partner_id == capped.pk} != set(), per_batch
