"""Waiting holds no thread: one web process (gunicorn, one uvicorn worker) holds 100 `?wait=` requests while an
unrelated request answers as fast as when it is idle; a waiter wakes on the job's announcement, not at a polling
cadence; a real worker's finished job wakes its waiter (native and /v1); a refused wait leaves no job and no charge.
Without Redis (the embedded default) a waiter polls asynchronously."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import override_settings

from inference import services
from inference.models import Job
from inference.services import waiting
from partners import ratelimit
from partners.models import UsageRecord
from tests.factories import client_for, keyword_job, make_key, make_partner
from tests.integration.processes import start_web, start_worker

WAITERS = 100


class Site:
    def __init__(self, port: int, raw_key: str) -> None:
        self.port, self.raw_key = port, raw_key

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 90) -> tuple[int, dict, float]:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {self.raw_key}", "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        payload = json.loads(response.read() or b"{}")
        conn.close()
        return response.status, payload, time.monotonic() - started

    def list_p50(self, n: int = 15) -> float:
        times = []
        for _ in range(n):
            status, _, elapsed = self.call("GET", "/api/v1/jobs?capability=keyword_extraction")
            assert status == 200
            times.append(elapsed)
        return statistics.median(times)


def web_worker_pid(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.fixture
def web(live_services, tmp_path):
    server, port = start_web(
        tmp_path, workers=1, ALLIANCE_API_KEY_MAX_WAITING=str(WAITERS + 10), ALLIANCE_JOB_MAX_WAIT_SECONDS="60"
    )
    yield server, port
    server.stop()


@pytest.mark.services
def test_one_web_process_holds_a_hundred_waits_without_a_thread_each_and_answers_others_at_idle_speed(web):
    server, port = web
    partner = make_partner("LG Uplus", sector="telecom")
    key, raw = make_key(partner)
    site = Site(port, raw)
    site.list_p50(5)  # warm
    idle = site.list_p50()
    worker_pid = web_worker_pid(server.process.pid)

    # No worker runs: every job stays queued, so each of these requests waits until its job is canceled below.
    pool = ThreadPoolExecutor(max_workers=WAITERS)
    futures = [pool.submit(site.call, "POST", "/api/v1/jobs?wait=50", keyword_job()) for _ in range(WAITERS)]
    deadline = time.monotonic() + 60
    while Job.objects.filter(partner=partner).count() < WAITERS:
        assert time.monotonic() < deadline and not any(f.done() for f in futures), [f.result() for f in futures[:3]]
        time.sleep(0.1)
    time.sleep(0.5)  # the last ones subscribe
    threads = len(list(Path(f"/proc/{worker_pid}/task").iterdir()))
    loaded = site.list_p50()
    assert not any(f.done() for f in futures)  # all still waiting
    assert threads < 40, threads  # a thread per waiting request would be over 100
    # The old threaded server (threads busy polling for the waiters) would answer only when the waits end.
    assert loaded <= max(2 * idle, idle + 0.05), (round(idle * 1000, 1), round(loaded * 1000, 1))

    canceled_at = time.monotonic()
    for job_id in Job.objects.filter(partner=partner).values_list("pk", flat=True):
        assert site.call("POST", f"/api/v1/jobs/{job_id}/cancel")[0] == 200
    results = [f.result(timeout=30) for f in futures]
    woke_within = time.monotonic() - canceled_at
    pool.shutdown()
    assert {(status, body["status"]) for status, body, _ in results} == {(200, "canceled")}
    assert woke_within < 20, woke_within  # woken by the cancels, not by the 50 s limit
    assert ratelimit.waiting_count(key.public_id) == 0  # every slot given back


@pytest.mark.services
def test_a_waiter_wakes_on_the_announcement_not_at_a_polling_cadence(web):
    _, port = web
    partner = make_partner("EBS", sector="education")
    key, raw = make_key(partner)
    site = Site(port, raw)
    lags = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        for _ in range(5):
            waiter = pool.submit(site.call, "POST", "/api/v1/jobs?wait=30", keyword_job())
            deadline = time.monotonic() + 30
            while (job := Job.objects.filter(partner=partner, status="queued").first()) is None:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.5)  # long enough for the old poll to have slowed to its 250 ms steps
            services.job_cancel(job=job)  # commits; announced after the commit
            canceled = time.monotonic()
            status, body, _ = waiter.result(timeout=30)
            lags.append(time.monotonic() - canceled)
            assert status == 200 and body["status"] == "canceled", body
    assert statistics.median(lags) < 0.1, [round(lag, 3) for lag in lags]
    assert ratelimit.waiting_count(key.public_id) == 0


@pytest.mark.services
def test_a_real_workers_finished_job_wakes_its_waiters_native_and_v1(web, tmp_path):
    _, port = web
    partner = make_partner("Elsevier", sector="education")
    key, raw = make_key(partner)
    site = Site(port, raw)
    worker = start_worker(tmp_path, "embeddings", queues="embeddings,default", beat=False)
    try:
        status, job, _ = site.call("POST", "/api/v1/jobs?wait=60", keyword_job())
        answered = time.time()
        assert status == 200 and job["status"] == "succeeded" and job["output"]["keywords"], job
        finished_at = Job.objects.get(pk=job["id"]).finished_at.timestamp()
        assert answered - finished_at < 1.0, answered - finished_at
        status, body, _ = site.call(
            "POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": ["a partner's private data"]}
        )
        assert status == 200 and len(body["data"][0]["embedding"]) == 384, body
    finally:
        worker.stop()
    assert ratelimit.waiting_count(key.public_id) == 0


@pytest.mark.services
def test_a_client_that_goes_away_gives_its_slot_back_at_once(web):
    _, port = web
    partner = make_partner("Korea University Medical Center", sector="medical")
    key, raw = make_key(partner)
    headers = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/v1/jobs?wait=50", json.dumps(keyword_job()), headers)
    deadline = time.monotonic() + 30
    while ratelimit.waiting_count(key.public_id) != 1 or not Job.objects.filter(partner=partner).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    conn.close()  # the client goes away mid-wait: the wait is canceled and its slot given back
    deadline = time.monotonic() + 3
    while ratelimit.waiting_count(key.public_id):
        assert time.monotonic() < deadline, "the slot outlived its client"
        time.sleep(0.05)
    assert Job.objects.get(partner=partner).status == "queued"  # the job itself runs on (a webhook or poll finds it)


@pytest.mark.services
def test_a_refused_wait_leaves_no_job_and_no_charge(live_services, tmp_path):
    server, port = start_web(tmp_path, workers=1, ALLIANCE_API_KEY_MAX_WAITING="1")
    try:
        partner = make_partner("Hanyang University Hospital", sector="medical")
        key, raw = make_key(partner)
        site = Site(port, raw)
        holder = threading.Thread(target=site.call, args=("POST", "/api/v1/jobs?wait=4", keyword_job()))
        holder.start()
        deadline = time.monotonic() + 30
        while not Job.objects.filter(partner=partner).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status, body, elapsed = site.call("POST", "/api/v1/jobs?wait=4", keyword_job())
        assert status == 429 and body["error"]["code"] == "too_many_waiting" and elapsed < 2, (status, body)
        status, body, _ = site.call("POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "x"})
        assert status == 429 and body["error"]["code"] == "too_many_waiting", body
        holder.join(timeout=30)
        assert Job.objects.filter(partner=partner).count() == 1
        assert UsageRecord.objects.filter(partner=partner).count() == 1  # the waiting job's charge only
        assert ratelimit.waiting_count(key.public_id) == 0
    finally:
        server.stop()


def cancel_from_another_thread(job: Job) -> None:
    try:
        services.job_cancel(job=job)
    finally:
        connection.close()


@pytest.fixture
def embedded():
    """No Redis: waits poll, slots and windows count in the process."""
    with override_settings(REDIS_URL=""):
        ratelimit._waits.cache_clear()
        ratelimit._counter.cache_clear()
        yield
    ratelimit._waits.cache_clear()
    ratelimit._counter.cache_clear()


def test_the_embedded_mode_waits_by_an_asynchronous_poll(transactional_db, embedded):
    partner = make_partner("VA Corporation", sector="content")
    _, raw = make_key(partner)
    api = client_for(raw)
    job = Job.objects.get(pk=api.post("/api/v1/jobs", keyword_job(), format="json").json()["id"])
    timer = threading.Timer(0.5, cancel_from_another_thread, args=(job,))
    started = time.monotonic()
    timer.start()
    finished = async_to_sync(waiting.job_await)(job_id=job.pk, timeout=10)
    elapsed = time.monotonic() - started
    assert finished.status == "canceled" and 0.4 < elapsed < 1.0, (finished.status, elapsed)

    started = time.monotonic()
    response = api.post("/api/v1/jobs?wait=1", keyword_job(), format="json")  # through the async view
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert 0.9 < time.monotonic() - started < 3
    assert response["x-ratelimit-limit-requests"] and response["Location"].startswith("/api/v1/jobs/")


def test_a_v1_call_whose_job_does_not_finish_answers_504_in_the_error_shape_with_its_headers(db, settings):
    settings.ALLIANCE_JOB_MAX_WAIT_SECONDS = 1.0
    partner = make_partner("LG Electronics", sector="manufacturing")
    key, raw = make_key(partner)
    started = time.monotonic()
    response = client_for(raw).post(
        "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "no worker runs"}, format="json"
    )
    assert 0.9 < time.monotonic() - started < 5
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout", response.json()
    assert response["x-ratelimit-remaining-requests"] and response["x-ratelimit-limit-tokens"]
    assert ratelimit.waiting_count(key.public_id) == 0


def test_with_redis_unreachable_a_waiter_still_sees_its_job_finish(transactional_db):
    partner = make_partner("Shutterstock", sector="content")
    _, raw = make_key(partner)
    job = Job.objects.get(pk=client_for(raw).post("/api/v1/jobs", keyword_job(), format="json").json()["id"])
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):  # nothing listens there
        timer = threading.Timer(0.5, cancel_from_another_thread, args=(job,))  # its announcement is lost
        started = time.monotonic()
        timer.start()
        finished = async_to_sync(waiting.job_await)(job_id=job.pk, timeout=10)
        timer.join()
    elapsed = time.monotonic() - started
    assert finished.status == "canceled" and elapsed < 5, (finished.status, elapsed)
