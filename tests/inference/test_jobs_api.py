"""The jobs API without a worker: submitted jobs stay queued, which is all these tests need."""

from __future__ import annotations

import pytest

from inference.models import Job
from partners.models import UsageRecord
from tests.factories import KEYWORD_TEXT, client_for, keyword_job, make_key

pytestmark = pytest.mark.django_db

JOB_FIELDS = {
    "id",
    "object",
    "capability",
    "model",
    "status",
    "input",
    "params",
    "output",
    "error",
    "usage",
    "webhook_url",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
}


def test_submit_answers_202_with_the_queued_job(api, partner):
    response = api.post("/api/v1/jobs", keyword_job(), format="json")
    assert response.status_code == 202
    job = response.json()
    assert set(job) == JOB_FIELDS
    assert job["status"] == "queued"
    assert job["capability"] == "keyword_extraction"
    assert job["model"] == "all-MiniLM-L6-v2"
    assert job["input"] == {"text": KEYWORD_TEXT, "top_k": 5}
    assert job["params"] == {"max_ngram": 2, "diversity": 0.0, "stop_words": "english"}
    assert job["output"] is None and job["started_at"] is None
    assert response["Location"] == f"/api/v1/jobs/{job['id']}"
    assert Job.objects.get(pk=job["id"]).partner == partner


def test_get_returns_the_same_job(api):
    job = api.post("/api/v1/jobs", keyword_job(), format="json").json()
    fetched = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert fetched == job


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": {"text": "x"}}, "capability", "required"),
        ({"capability": "telepathy", "input": {"text": "x"}}, "capability", "unknown_capability"),
        ({"capability": "keyword_extraction"}, "input.text", "required"),
        ({"capability": "keyword_extraction", "input": {"text": ""}}, "input.text", "blank"),
        ({"capability": "keyword_extraction", "input": {"text": 42}}, "input.text", "invalid"),
        ({"capability": "keyword_extraction", "input": "text"}, "input", "invalid_type"),
        ({"capability": "keyword_extraction", "input": {"text": "x", "top_k": 0}}, "input.top_k", "min_value"),
        ({"capability": "keyword_extraction", "input": {"text": "x", "colour": "red"}}, "input.colour", "invalid"),
        (
            {"capability": "keyword_extraction", "input": {"text": "x"}, "params": {"max_ngram": 9}},
            "params.max_ngram",
            "max_value",
        ),
        ({"capability": "keyword_extraction", "input": {"text": "x"}, "priority": 1}, "priority", "unknown_field"),
        ({"capability": "keyword_extraction", "input": {"text": "x" * 100_001}}, "input.text", "max_length"),
        ({"capability": "keyword_extraction", "input": {"text": "x"}, "model": "gpt-9"}, "model", "model_not_found"),
        (
            {"capability": "keyword_extraction", "input": {"text": "x"}, "webhook_url": "http://127.0.0.1:8000/hook"},
            "webhook_url",
            "unsafe_webhook_url",
        ),
        (
            {"capability": "keyword_extraction", "input": {"text": "x"}, "webhook_url": "ftp://example.com/"},
            "webhook_url",
            "unsafe_webhook_url",
        ),
    ],
)
def test_bad_input_is_a_4xx_in_the_error_shape_and_stores_nothing(api, body, param, code):
    response = api.post("/api/v1/jobs", body, format="json")
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"]
    assert not Job.objects.exists()
    assert not UsageRecord.objects.exists()


def test_malformed_json_is_a_400(api):
    response = api.post("/api/v1/jobs", data='{"capability": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_wrong_content_type_is_a_415(api):
    response = api.post("/api/v1/jobs", data="capability=x", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_oversized_body_is_a_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/jobs", keyword_job("y" * 2000), format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert not Job.objects.exists()


def test_idempotency_key_returns_the_same_job(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    first = api.post("/api/v1/jobs", keyword_job(), format="json", **headers)
    second = api.post("/api/v1/jobs", keyword_job(), format="json", **headers)
    assert first.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert Job.objects.count() == 1
    assert UsageRecord.objects.count() == 1
    conflict = api.post("/api/v1/jobs", keyword_job("another text"), format="json", **headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_partner(api, other_partner):
    _, raw = make_key(other_partner)
    mine = api.post("/api/v1/jobs", keyword_job(), format="json", HTTP_IDEMPOTENCY_KEY="k").json()
    theirs = client_for(raw).post("/api/v1/jobs", keyword_job(), format="json", HTTP_IDEMPOTENCY_KEY="k").json()
    assert mine["id"] != theirs["id"]


def test_list_filters_and_paginates_newest_first(api):
    ids = [api.post("/api/v1/jobs", keyword_job(f"text number {i}"), format="json").json()["id"] for i in range(5)]
    Job.objects.filter(pk=ids[0]).update(status="failed")
    page = api.get("/api/v1/jobs?limit=2").json()
    assert [job["id"] for job in page["data"]] == ids[::-1][:2]
    assert page["next"]
    second = api.get(page["next"]).json()
    assert [job["id"] for job in second["data"]] == ids[::-1][2:4]
    failed = api.get("/api/v1/jobs?status=failed").json()
    assert [job["id"] for job in failed["data"]] == [ids[0]]
    assert api.get("/api/v1/jobs?status=exploded").status_code == 400


def test_another_partners_job_is_not_found(api, other_partner):
    _, raw = make_key(other_partner)
    theirs = client_for(raw).post("/api/v1/jobs", keyword_job(), format="json").json()
    for response in (
        api.get(f"/api/v1/jobs/{theirs['id']}"),
        api.post(f"/api/v1/jobs/{theirs['id']}/cancel"),
        api.get("/api/v1/jobs/not-a-uuid"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found_error"
    assert api.get("/api/v1/jobs").json()["data"] == []
    assert Job.objects.get(pk=theirs["id"]).status == "queued"


def test_cancel_a_queued_job_refunds_it_and_a_second_cancel_conflicts(api, partner):
    job = api.post("/api/v1/jobs", keyword_job(), format="json").json()
    response = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert response.json()["finished_at"]
    assert UsageRecord.objects.filter(job_id=job["id"], kind="refund").count() == 1
    again = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"


def test_unknown_api_path_is_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_capabilities_lists_all_eight_and_what_this_key_may_call(partner):
    _, raw = make_key(partner, scopes=["keyword_extraction"])
    data = client_for(raw).get("/api/v1/capabilities").json()["data"]
    assert len(data) == 9
    assert all(row["available"] and row["example_input"] for row in data)
    keyword = next(row for row in data if row["name"] == "keyword_extraction")
    assert keyword["allowed"] and keyword["models"] == ["all-MiniLM-L6-v2"]
    assert not next(row for row in data if row["name"] == "dialogue")["allowed"]
