"""Faults: the database unreachable, a model that cannot load. Clear errors, refunds, and a worker that goes on."""

from __future__ import annotations

import http.client
import json

import pytest

from inference.models import Job
from inference.registry import model_specs
from partners.models import QuotaPeriod, UsageRecord
from tests.factories import client_for, keyword_job, make_key, make_partner
from tests.integration.processes import start_web, start_worker

pytestmark = pytest.mark.services


def test_an_unreachable_database_answers_503_in_the_error_shape(live_services, tmp_path):
    web, port = start_web(tmp_path, workers=1, DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    try:
        for method, path, body in (("GET", "/api/v1/jobs", None), ("POST", "/api/v1/jobs", keyword_job())):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(
                method,
                path,
                json.dumps(body) if body else None,
                {"Authorization": "Bearer alk_aaaaaaaaaaaa_secret", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            payload = json.loads(response.read())
            assert response.status == 503, payload
            assert payload["error"]["code"] == "database_unavailable"
            assert response.getheader("Retry-After") == "5"
            conn.close()
    finally:
        web.stop()


def test_a_model_that_cannot_load_fails_its_jobs_with_a_refund_and_the_worker_goes_on(
    live_services, tmp_path, settings
):
    models_file = tmp_path / "models.json"
    models_file.write_text(
        json.dumps(
            {
                "broken-embedder": {
                    "backend": "sentence_transformers",
                    "source": str(tmp_path / "no-such-model"),
                    "family": "embeddings",
                    "capabilities": ["keyword_extraction"],
                }
            }
        )
    )
    settings.ALLIANCE_MODELS_FILE = str(models_file)
    model_specs.cache_clear()
    partner = make_partner("VA Corporation", sector="content")
    api = client_for(make_key(partner)[1])
    worker = start_worker(tmp_path, "w-faults", queues="embeddings", ALLIANCE_MODELS_FILE=str(models_file))
    try:
        broken = api.post("/api/v1/jobs?wait=60", keyword_job(model="broken-embedder"), format="json").json()
        fine = api.post("/api/v1/jobs?wait=60", keyword_job(), format="json").json()
    finally:
        worker.stop()
        model_specs.cache_clear()
    assert broken["status"] == "failed", broken
    assert broken["error"]["code"] == "model_unavailable" and "ALLIANCE_MODELS_FILE" in broken["error"]["message"]
    assert UsageRecord.objects.filter(job_id=broken["id"], kind="refund").count() == 1
    assert fine["status"] == "succeeded" and fine["output"]["keywords"]
    assert QuotaPeriod.objects.get(quota__partner=partner).used == Job.objects.get(pk=fine["id"]).units
