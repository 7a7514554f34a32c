"""/healthz and /readyz in one process against the real PostgreSQL and Redis: the checks, the families and the
heartbeats the web reads (the outage tests with live processes are in tests/integration/test_operations.py)."""

from __future__ import annotations

import pytest
from django.test import Client

from monitoring import heartbeats
from tests.services import skip_or_fail_without_services


@pytest.fixture
def services(db):
    skip_or_fail_without_services()
    yield
    for record in heartbeats.store().live():
        heartbeats.store().delete(record["name"])


def test_healthz_answers_without_a_known_host(services):
    response = Client().get("/healthz", HTTP_HOST="10.1.2.3:8000")  # a probe addresses the pod's IP
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_migrations_and_broker(services):
    response = Client().get("/readyz", HTTP_HOST="10.1.2.3")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert {name for name, check in body["checks"].items() if check["ok"]} >= {"database", "migrations", "broker"}
    assert set(body["families"]) == {"default", "embeddings", "llm", "vision", "tuning", "webhooks"}


def test_a_required_family_needs_a_live_worker(services, settings):
    settings.ALLIANCE_METRICS_TOKEN = "ops-token-for-readyz"
    assert Client().get("/readyz?family=llm").status_code == 503
    beat = heartbeats.WorkerBeat(hostname="llm@test-host", pid=1, queues=["llm"], models=["smollm2-135m-instruct"])
    beat.beat()
    try:
        response = Client().get("/readyz?family=llm")
        assert response.status_code == 200, response.json()
        assert response.json()["families"]["llm"] == {"live_workers": 1, "required": True}  # a probe: a count
        detailed = Client(HTTP_AUTHORIZATION="Bearer ops-token-for-readyz").get("/readyz?family=llm").json()
        assert detailed["families"]["llm"]["workers"] == ["llm@test-host"]
        assert Client().get("/readyz?family=vision").status_code == 503
    finally:
        beat.stop()
    assert Client().get("/readyz?family=llm").status_code == 503  # a stopped worker removes its record


def test_an_unknown_family_is_a_clear_400(services):
    response = Client().get("/readyz?family=gpu")
    assert response.status_code == 400 and response.json()["error"]["param"] == "family"


def test_a_heartbeat_expires_when_the_worker_stops_beating(services, settings):
    settings.ALLIANCE_WORKER_HEARTBEAT_SECONDS = 0.1  # live for 3 beats + 1 s
    heartbeats.WorkerBeat(hostname="vision@gone", pid=2, queues=["vision"], models=[]).beat()
    assert heartbeats.live_by_family()["vision"] == ["vision@gone"]
    import time

    time.sleep(1.6)
    assert heartbeats.live_by_family()["vision"] == []


def test_the_database_store_serves_the_embedded_mode(services):
    store = heartbeats.DatabaseStore()
    store.put("embeddings@laptop", heartbeats.WORKER, {"hostname": "embeddings@laptop", "queues": ["embeddings"]}, 30)
    store.put("embeddings@laptop/7", heartbeats.BATCH, {"hostname": "embeddings@laptop", "job_id": "j"}, 30)
    assert {r["kind"] for r in store.live()} == {"worker", "batch"}
    store.put("old@laptop", heartbeats.WORKER, {"hostname": "old@laptop"}, -1)
    assert "old@laptop" not in {r.get("hostname") for r in store.live() if r["kind"] == "worker"}
