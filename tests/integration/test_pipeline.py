"""Submit -> real Celery worker -> result, on PostgreSQL and Redis; and a worker killed mid-job."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from inference.models import Job
from inference.webhook_security import signing_secret, verify_signature
from partners.models import QuotaPeriod, UsageRecord
from tests.factories import KEYWORD_TEXT, client_for, keyword_job, make_key, make_partner
from tests.integration.processes import start_worker

pytestmark = pytest.mark.services


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def partner_api(live_services):
    partner = make_partner("LG Uplus", sector="telecom")
    _, raw = make_key(partner)
    return partner, client_for(raw)


def test_a_key_holder_gets_real_keywords_from_the_worker(partner_api, tmp_path):
    _, api = partner_api
    worker = start_worker(tmp_path, "w-basic", queues="embeddings")
    try:
        response = api.post("/api/v1/jobs?wait=60", keyword_job(), format="json")
    finally:
        worker.stop()
    assert response.status_code == 200, response.json()
    job = response.json()
    assert job["status"] == "succeeded"
    assert job["started_at"] and job["finished_at"] and job["attempts"] == 1
    words = set(re.findall(r"\w+", KEYWORD_TEXT.lower()))
    keywords = [item["keyword"] for item in job["output"]["keywords"]]
    assert len(keywords) == 5
    assert all(set(keyword.split()) <= words for keyword in keywords)


def test_a_worker_for_other_families_does_not_take_embedding_jobs(partner_api, tmp_path):
    _, api = partner_api
    worker = start_worker(tmp_path, "w-vision", queues="vision")
    try:
        job = api.post("/api/v1/jobs", keyword_job(), format="json").json()
        time.sleep(3)
        assert Job.objects.get(pk=job["id"]).status == "queued"
    finally:
        worker.stop()
    embeddings = start_worker(tmp_path, "w-embeddings", queues="embeddings")
    try:
        _wait_until(lambda: Job.objects.get(pk=job["id"]).status == "succeeded", 60, "the embeddings worker")
    finally:
        embeddings.stop()


def test_a_worker_killed_mid_job_loses_nothing_and_runs_nothing_twice(partner_api, tmp_path):
    partner, api = partner_api
    # Seconds of work: 64 texts of 256 tokens each through MiniLM (keyword extraction is bounded now, and quick).
    slow_texts = [" ".join(f"partner{(i * 7 + j) % 97} adapter{j % 89}" for j in range(120)) for i in range(64)]
    first = start_worker(tmp_path, "w-doomed")
    try:
        slow_job = {"capability": "embeddings", "input": {"texts": slow_texts}}
        slow = api.post("/api/v1/jobs", slow_job, format="json").json()
        _wait_until(lambda: Job.objects.get(pk=slow["id"]).status == "running", 60, "the slow job to start")
        quick = [api.post("/api/v1/jobs", keyword_job(f"{KEYWORD_TEXT} {i}"), format="json").json() for i in range(3)]
        time.sleep(1)
        assert Job.objects.get(pk=slow["id"]).status == "running"
    finally:
        first.kill()
    second = start_worker(tmp_path, "w-survivor")
    try:
        ids = [slow["id"]] + [job["id"] for job in quick]
        _wait_until(lambda: Job.objects.filter(pk__in=ids, status="succeeded").count() == 4, 180, "all jobs")
        time.sleep(12)  # past the broker's visibility timeout: a redelivered message must change nothing
    finally:
        second.stop()
    jobs = {str(job.pk): job for job in Job.objects.filter(pk__in=ids)}
    assert all(job.status == "succeeded" for job in jobs.values())
    assert len(jobs[slow["id"]].output["embeddings"]) == 64
    assert all(jobs[job["id"]].output["keywords"] for job in quick)
    assert jobs[slow["id"]].attempts == 2
    assert [jobs[job["id"]].attempts for job in quick] == [1, 1, 1]
    for job_id in ids:
        assert UsageRecord.objects.filter(job_id=job_id, kind="charge").count() == 1
        assert not UsageRecord.objects.filter(job_id=job_id, kind="refund").exists()
    used = QuotaPeriod.objects.filter(quota__partner=partner).values_list("used", flat=True)
    assert sum(used) == sum(job.units for job in jobs.values())


class _Receiver(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        self.send_response(500 if len(type(self).calls) == 1 else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_is_signed_and_retried_until_delivered(partner_api, tmp_path, settings):
    partner, api = partner_api
    settings.ALLIANCE_WEBHOOK_ALLOW_PRIVATE = True
    _Receiver.calls = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/alliance"
    worker = start_worker(tmp_path, "w-hooks", ALLIANCE_WEBHOOK_ALLOW_PRIVATE="1")
    try:
        job = api.post("/api/v1/jobs", keyword_job(webhook_url=url), format="json").json()
        _wait_until(lambda: len(_Receiver.calls) >= 2, 60, "two webhook deliveries")
    finally:
        worker.stop()
        server.shutdown()
    headers, body = _Receiver.calls[-1]
    assert verify_signature(signing_secret(partner), body, headers["X-Alliance-Signature"])
    payload = json.loads(body)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"] and payload["data"]["output"]["keywords"]
    deliveries = list(Job.objects.get(pk=job["id"]).webhook_deliveries.order_by("attempt"))
    assert [(d.attempt, d.status_code, d.delivered) for d in deliveries] == [(1, 500, False), (2, 204, True)]
