"""The playground's session endpoints: the same job_submit as the API, on the partner's quota."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from PIL import Image

from inference.models import Job
from partners.models import ApiKey, UsageRecord
from tests.web.conftest import signed_in

pytestmark = pytest.mark.django_db

KEYWORDS = {"capability": "keyword_extraction", "input": json.dumps({"text": "Tilda designs patterns.", "top_k": 3})}


def test_anonymous_visitors_see_examples_and_are_asked_to_sign_in(client):
    page = client.get("/playground/").content.decode()
    assert 'data-testid="sign-in-to-run"' in page and "Sign in to run" in page
    for name in ("question_answering", "dialogue", "image_generation", "image_captioning"):
        assert f'value="{name}"' in page
    response = client.post("/playground/jobs", KEYWORDS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_developer_runs_a_job_under_one_playground_key(developer):
    client = signed_in(developer)
    first = client.post("/playground/jobs", KEYWORDS)
    assert first.status_code == 202, first.json()
    job = first.json()
    assert job["status"] == "queued" and job["capability"] == "keyword_extraction" and job["usage"]["units"] > 0
    second = client.post("/playground/jobs", KEYWORDS).json()
    keys = ApiKey.objects.filter(name="playground:devon")
    assert keys.count() == 1
    assert set(Job.objects.values_list("api_key", flat=True)) == {keys.get().pk}
    assert UsageRecord.objects.filter(job_id__in=[job["id"], second["id"]], kind="charge").count() == 2
    polled = client.get(f"/playground/jobs/{job['id']}")
    assert polled.status_code == 200 and polled.json()["id"] == job["id"]


def test_a_revoked_playground_key_is_replaced(developer):
    client = signed_in(developer)
    client.post("/playground/jobs", KEYWORDS)
    key = ApiKey.objects.get(name="playground:devon")
    client.post(f"/portal/keys/{key.public_id}/revoke/")
    assert client.post("/playground/jobs", KEYWORDS).status_code == 202
    assert ApiKey.objects.filter(name="playground:devon", revoked_at__isnull=True).exclude(pk=key.pk).count() == 1


def test_bad_input_answers_the_api_error_shape_and_charges_nothing(developer):
    client = signed_in(developer)
    response = client.post("/playground/jobs", {"capability": "keyword_extraction", "input": json.dumps({"top_k": 3})})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "input.text"
    unknown = client.post("/playground/jobs", {"capability": "telepathy", "input": "{}"}).json()["error"]
    assert unknown["code"] == "unknown_capability"
    assert client.post("/playground/jobs", {"capability": "summarization", "input": "{"}).status_code == 400
    assert not Job.objects.exists() and not UsageRecord.objects.exists()


def test_a_viewer_cannot_run_jobs(viewer):
    response = signed_in(viewer).post("/playground/jobs", KEYWORDS)
    assert response.status_code == 403 and response.json()["error"]["code"] == "role_denied"
    assert not Job.objects.exists()


def test_an_exhausted_quota_is_a_429_like_the_api(developer, partner):
    from partners.services import quota_set

    quota_set(partner=partner, capability="keyword_extraction", actor="test", monthly_units=1)
    response = signed_in(developer).post("/playground/jobs", KEYWORDS)
    assert response.status_code == 429 and response.json()["error"]["code"] == "quota_exceeded"
    assert "Retry-After" in response


def test_an_uploaded_image_is_stored_and_captioned_by_file_id(developer):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "blue").save(buffer, "PNG")
    buffer.seek(0)
    buffer.name = "blue.png"
    response = signed_in(developer).post(
        "/playground/jobs", {"capability": "image_captioning", "input": "{}", "image": buffer}
    )
    assert response.status_code == 202, response.json()
    file_id = response.json()["input"]["image"]
    assert file_id.startswith("file_")
    assert signed_in(developer).get(f"/portal/files/{file_id}").status_code == 200


def test_the_api_docs_list_endpoints_and_every_capability(client):
    from capabilities import CAPABILITY_NAMES

    page = client.get("/api/guide/").content.decode()
    assert "/api/v1/jobs" in page
    for name in CAPABILITY_NAMES:
        assert f'id="{name}"' in page


def test_anonymous_playground_poll_is_refused(client, partner):
    assert Client().get("/playground/jobs/00000000-0000-0000-0000-000000000000").status_code == 401


def _tuned_classifier(owner, name: str):
    from inference.models import TunedModel, TuningJob

    tuning = TuningJob.objects.create(
        partner=owner, task="classification", base_model="all-MiniLM-L6-v2", method="lora", status="succeeded"
    )
    return TunedModel.objects.create(
        partner=owner,
        name=name,
        tuning_job=tuning,
        base_model="all-MiniLM-L6-v2",
        task="classification",
        adapter_path="x",
        labels=["loans", "cards"],
    )


def test_the_playground_runs_the_partners_own_tuned_models_and_only_theirs(developer, partner):
    from tests.factories import make_partner

    own = _tuned_classifier(partner, "ft:all-MiniLM-L6-v2:woori-bank:own")
    other = _tuned_classifier(make_partner("Google"), "ft:all-MiniLM-L6-v2:google:theirs")
    client = signed_in(developer)
    page = client.get("/playground/").content.decode()
    assert f'value="{own.name}" data-for="text_classification" data-tuned' in page and other.name not in page
    text = json.dumps({"text": "How do I repay my mortgage early?"})  # no labels: the tuned model knows its own
    response = client.post("/playground/jobs", {"capability": "text_classification", "input": text, "model": own.name})
    assert response.status_code == 202, response.json()
    assert Job.objects.get().model == own.name
    theirs = client.post("/playground/jobs", {"capability": "text_classification", "input": text, "model": other.name})
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "model_not_found"
    base = client.post("/playground/jobs", {"capability": "text_classification", "input": text})
    assert base.status_code == 400 and base.json()["error"]["param"] == "input.labels"
    assert Job.objects.count() == 1
