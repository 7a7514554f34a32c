"""Operating the platform on the real stack: /readyz follows PostgreSQL and Redis outages (through a proxy and a
throwaway Redis, so the machine's shared servers keep running), and a live worker's heartbeat, metrics and log
lines reach the web."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from tests.integration.processes import database_url, free_port, start_web
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.services


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def _until(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _throwaway_redis(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    assert _until(
        lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG",
        10,
    )
    return server


def test_readyz_goes_unready_while_postgresql_or_redis_is_down_and_ready_after(live_services, tmp_path):
    redis_port, pg_port = free_port(), free_port()
    redis_server = _throwaway_redis(redis_port)
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432), port=pg_port)
    proxy.start()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    web_database = database_url().replace(f":{connection.settings_dict['PORT'] or 5432}/", f":{pg_port}/")
    token = "operators-scrape-token-outage"
    web, port = start_web(
        tmp_path,
        workers=1,
        DATABASE_URL=web_database,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        ALLIANCE_METRICS_TOKEN=token,
    )
    try:
        status, body = _get(port, "/readyz")
        assert status == 200, body
        assert _get(port, "/healthz")[0] == 200

        redis_server.terminate()
        redis_server.wait(10)
        status, body = _get(port, "/readyz")
        assert status == 503 and body["status"] == "unready"
        assert not body["checks"]["broker"]["ok"] and body["checks"]["database"]["ok"], body
        assert body["checks"]["broker"]["error"] == "ConnectionError"  # a probe learns no address
        assert _get(port, "/healthz")[0] == 200  # alive, only not ready

        redis_server = _throwaway_redis(redis_port)
        assert _until(lambda: _get(port, "/readyz")[0] == 200), _get(port, "/readyz")

        proxy.stop()
        status, body = _get(port, "/readyz")
        assert status == 503 and not body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"], body
        assert _get(port, "/healthz")[0] == 200
        assert _total(_scrape(port, token), "alliance_database_up") == 0  # the scrape still answers, and says so

        proxy.start()
        assert _until(lambda: _get(port, "/readyz")[0] == 200), _get(port, "/readyz")
        assert _total(_scrape(port, token), "alliance_database_up") == 1
    finally:
        web.stop()
        proxy.stop()
        redis_server.terminate()
        redis_server.wait(10)


def _post_job(port: int, key: str, payload: dict, request_id: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/jobs",
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "X-Request-ID": request_id},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["X-Request-ID"] == request_id
        return json.loads(response.read())


def _scrape(port: int, token: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


def _events(log: str) -> list[dict]:
    lines = []
    for line in log.splitlines():
        start = line.find('{"ts"')
        if start >= 0:
            lines.append(json.loads(line[start:]))
    return lines


def test_metrics_heartbeats_and_request_ids_follow_real_jobs(live_services, tmp_path):
    from tests.factories import KEYWORD_TEXT, keyword_job, make_key, make_partner
    from tests.integration.processes import start_worker

    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    token = "operators-scrape-token-for-this-test"
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc), "ALLIANCE_WORKER_HEARTBEAT_SECONDS": "0.5"}
    _, key = make_key(make_partner("Elsevier", sector="education"))
    web, port = start_web(tmp_path, workers=2, ALLIANCE_METRICS_TOKEN=token, **shared)
    worker = None
    try:
        assert _get(port, "/metrics")[0] == 401
        assert _get(port, "/metrics", {"Authorization": "Bearer wrong-token"})[0] == 403
        before = _scrape(port, token)
        assert _total(before, "alliance_queue_depth", family="embeddings") == 0

        n = 3  # submitted while no worker consumes: the queue depth rises
        ids = {}
        for i in range(n):
            request_id = f"req-ops-test-{i:04d}"
            ids[_post_job(port, key, keyword_job(f"{KEYWORD_TEXT} {i}"), request_id)["id"]] = request_id
        queued = _scrape(port, token)
        assert _total(queued, "alliance_queue_depth", family="embeddings") == n
        assert _total(queued, "alliance_queue_oldest_age_seconds", family="embeddings") > 0
        assert _total(queued, "alliance_jobs_submitted_total", capability="keyword_extraction") == n
        assert _get(port, "/readyz?family=embeddings")[0] == 503

        # The job delivered first finds its request id in its task's header alone; its batch companions find theirs
        # where the web left them for the worker (the cache).
        from django.core.cache import cache

        cache.delete(f"monitoring:job-request:{next(iter(ids))}")
        worker_port = free_port()
        worker = start_worker(
            tmp_path,
            "ops-embeddings",
            queues="embeddings,default",
            ALLIANCE_WORKER_METRICS_PORT=str(worker_port),
            **shared,
        )
        assert _until(
            lambda: _total(_scrape(port, token), "alliance_jobs_finished_total", status="succeeded") == n, 120
        )
        after = _scrape(port, token)
        assert _total(after, "alliance_queue_depth", family="embeddings") == 0
        assert _total(after, "alliance_job_queue_wait_seconds_count", family="embeddings") == n
        assert _total(after, "alliance_job_run_seconds_count", capability="keyword_extraction") == n
        assert _total(after, "alliance_batch_size_sum", capability="keyword_extraction") == n
        assert _total(after, "alliance_workers_live", family="embeddings") == 1
        own = _scrape(worker_port, "")  # the worker's own port (a machine apart from the web): its processes' counters
        assert _total(own, "alliance_jobs_finished_total", status="succeeded") == n
        status, body = _get(port, "/readyz?family=embeddings", {"Authorization": f"Bearer {token}"})
        assert status == 200 and body["families"]["embeddings"]["workers"][0].startswith("ops-embeddings@")

        web_events, worker_events = _events(web.log()), _events(worker.log())
        for job_id, request_id in ids.items():
            assert any(
                e["event"] == "job.queued" and e["job_id"] == job_id and e["request_id"] == request_id
                for e in web_events
            ), job_id
            done = [e for e in worker_events if e["event"] == "job.succeeded" and e["job_id"] == job_id]
            assert done and done[0]["request_id"] == request_id, (job_id, done)
            assert done[0]["partner"] == "elsevier" and done[0]["capability"] == "keyword_extraction"
            assert done[0]["run_ms"] >= 0 and done[0]["queue_wait_ms"] > 0
        requests = [e for e in web_events if e["event"] == "request" and e["path"] == "/api/v1/jobs"]
        assert {e["request_id"] for e in requests} >= set(ids.values()) and requests[0]["partner"] == "elsevier"
        assert "foundation model" not in web.log() + worker.log()  # no input text in any log line
        assert key not in web.log()

        worker.stop()
        assert _until(lambda: _get(port, "/readyz?family=embeddings")[0] == 503, 15)
    finally:
        if worker is not None:
            worker.stop()
        web.stop()
