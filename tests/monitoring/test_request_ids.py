"""Every request gets an id (kept from a proxy when it is a plain token) and one JSON log line, under WSGI and
ASGI alike; a job's Celery message carries the id of the request that submitted it."""

from __future__ import annotations

import json
import logging

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from alliance.celery import app
from monitoring import logs
from tests.factories import client_for, keyword_job, make_key, make_partner
from tests.services import skip_or_fail_without_services


@pytest.fixture
def events(db, caplog):
    skip_or_fail_without_services()
    caplog.set_level(logging.INFO, logger="alliance.events")
    return caplog


def _requests(caplog) -> list[dict]:
    formatter = logs.JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "alliance.events"]
    return [line for line in lines if line["event"] == "request"]


def test_a_request_id_is_kept_or_made_and_logged(events):
    response = Client().get("/api/v1/jobs", HTTP_X_REQUEST_ID="edge-proxy-id-1234")
    assert response.status_code == 401 and response["X-Request-ID"] == "edge-proxy-id-1234"
    made = Client().get("/api/v1/jobs", HTTP_X_REQUEST_ID="no spaces allowed; <script>")["X-Request-ID"]
    assert len(made) == 32 and made.isalnum()
    lines = _requests(events)
    assert lines[0]["request_id"] == "edge-proxy-id-1234" and lines[0]["status"] == 401
    assert lines[0]["path"] == "/api/v1/jobs" and lines[0]["duration_ms"] >= 0
    assert lines[1]["request_id"] == made


def test_the_asgi_stack_carries_the_request_id_too(events):
    async def fetch():
        client = AsyncClient()
        return await client.get("/healthz"), await client.get("/api/v1/jobs", headers={"X-Request-ID": "asgi-id-5678"})

    health, api = async_to_sync(fetch)()
    assert health.status_code == 200 and api["X-Request-ID"] == "asgi-id-5678"
    assert _requests(events)[-1]["request_id"] == "asgi-id-5678"


def test_a_submitted_job_message_carries_its_request_id(events, transactional_db):
    """Committed for real: the job is sent from its commit, inside the request, as in a live web process."""
    api = client_for(make_key(make_partner("Hanyang University Hospital", sector="medical"))[1])
    published: list[dict] = []

    def capture(headers=None, **_):
        published.append(dict(headers or {}))

    from celery.signals import before_task_publish

    before_task_publish.connect(capture, weak=False)
    try:
        job = api.post("/api/v1/jobs", keyword_job(), format="json", HTTP_X_REQUEST_ID="submit-req-0042").json()
    finally:
        before_task_publish.disconnect(capture)
    sent = [h for h in published if h.get("task") == "inference.tasks.run_job" and job["id"] in str(h.get("argsrepr"))]
    assert sent and sent[0][logs.TASK_HEADER] == "submit-req-0042"
    assert app.conf.task_serializer == "json"
    with app.connection_for_write() as conn:  # leave no message behind for later tests' workers
        conn.default_channel.queue_purge("embeddings")


def test_a_secret_in_the_path_is_not_logged(events):
    token = "inv-secret-token-abcdefghijklmnop"
    Client().get(f"/portal/invitations/{token}/")
    Client().generic("BREW", "/healthz-not-here")
    lines = _requests(events)
    assert lines[0]["path"] == "/portal/invitations/[redacted]/" and token not in json.dumps(lines)
    assert lines[1]["method"] == "other"  # label values stay bounded whatever a client sends


def test_a_cancellation_is_a_job_state_line(events):
    api = client_for(make_key(make_partner("LG Chem", sector="manufacturing"))[1])
    job = api.post("/api/v1/jobs", keyword_job(), format="json", HTTP_X_REQUEST_ID="cancel-req-0001").json()
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel", HTTP_X_REQUEST_ID="cancel-req-0002").status_code == 200
    formatter = logs.JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in events.records if r.name == "alliance.events"]
    canceled = [line for line in lines if line["event"] == "job.canceled"]
    assert canceled == [
        {
            **canceled[0],
            "job_id": job["id"],
            "partner": "lg-chem",
            "capability": "keyword_extraction",
            "request_id": "cancel-req-0002",
        }
    ]
