"""Each capability's input checks through the API: a clear 4xx in the one shape, nothing stored or charged."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from inference.models import Job, StoredFile
from partners.models import UsageRecord
from tests.factories import client_for, make_key

pytestmark = pytest.mark.django_db


def png_base64(width: int = 32, height: int = 24) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 60)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def bomb_base64() -> str:
    """A tiny PNG whose header declares 40,000 x 40,000 pixels."""
    buffer = io.BytesIO()
    Image.new("1", (40_000, 40_000)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


GOOD = {
    "question_answering": {"question": "Who?", "context": "Tilda is an AI artist."},
    "text_classification": {"text": "great food", "labels": ["great", "other"]},
    "summarization": {"text": "One sentence. Another sentence."},
    "dialogue": {"messages": [{"role": "user", "content": "Hello"}]},
    "text_generation": {"prompt": "Once upon a time"},
    "keyword_extraction": {"text": "fashion patterns"},
    "image_generation": {"prompt": "daisies"},
}


@pytest.mark.parametrize("capability", sorted(GOOD))
def test_each_capability_accepts_its_documented_input(api, capability):
    response = api.post("/api/v1/jobs", {"capability": capability, "input": GOOD[capability]}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["usage"]["units"] >= 1


@pytest.mark.parametrize(
    ("capability", "data", "params", "param", "code"),
    [
        ("dialogue", {"messages": []}, None, "input.messages", "min_length"),
        (
            "dialogue",
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            None,
            "input.messages",
            "invalid",
        ),
        (
            "dialogue",
            {"messages": [{"role": "robot", "content": "hi"}]},
            None,
            "input.messages[0].role",
            "invalid_choice",
        ),
        (
            "dialogue",
            {"messages": [{"role": "user", "content": "hi"}]},
            {"temperature": 3},
            "params.temperature",
            "max_value",
        ),
        ("text_generation", {"prompt": "x"}, {"stop": ["a", "b", "c", "d", "e"]}, "params.stop", "max_length"),
        ("text_generation", {"prompt": "x"}, {"max_new_tokens": "10"}, "params.max_new_tokens", "invalid"),
        ("text_classification", {"text": "x", "labels": ["only"]}, None, "input.labels", "min_length"),
        ("text_classification", {"text": "x", "labels": ["A", "a"]}, None, "input.labels", "invalid"),
        (
            "text_classification",
            {"text": "x", "labels": ["a", "b"]},
            {"hypothesis_template": "no slot"},
            "params.hypothesis_template",
            "invalid",
        ),
        ("question_answering", {"question": "Who?"}, None, "input.context", "required"),
        ("summarization", {"text": "x" * 20_001}, None, "input.text", "max_length"),
        ("summarization", {"text": "x"}, {"mode": "poetic"}, "params.mode", "invalid_choice"),
        ("image_generation", {"prompt": "x"}, {"width": 4096}, "params.width", "max_value"),
        ("image_captioning", {"image": "not base64!"}, None, "input.image", "invalid_image"),
        (
            "image_captioning",
            {"image": base64.b64encode(b"GIF89a not really").decode()},
            None,
            "input.image",
            "invalid_image",
        ),
        ("image_captioning", {"image": "file_doesnotexist"}, None, "input.image", "file_not_found"),
    ],
)
def test_bad_capability_input_is_refused(api, capability, data, params, param, code):
    body = {"capability": capability, "input": data, **({"params": params} if params else {})}
    response = api.post("/api/v1/jobs", body, format="json")
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert not Job.objects.exists() and not UsageRecord.objects.exists()


def test_a_decompression_bomb_is_refused_before_decoding(api):
    response = api.post(
        "/api/v1/jobs", {"capability": "image_captioning", "input": {"image": bomb_base64()}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_too_many_pixels"
    assert not StoredFile.objects.exists()


def test_a_base64_image_is_stored_once_and_the_job_refers_to_it(api, partner):
    response = api.post(
        "/api/v1/jobs", {"capability": "image_captioning", "input": {"image": png_base64()}}, format="json"
    )
    assert response.status_code == 202
    file_id = response.json()["input"]["image"]
    stored = StoredFile.objects.get(public_id=file_id)
    assert (stored.partner, stored.width, stored.height, stored.content_type) == (partner, 32, 24, "image/png")


def test_files_upload_get_content_and_delete(api):
    raw = base64.b64decode(png_base64(40, 30))
    upload = io.BytesIO(raw)
    upload.name = "../../etc/swatch.png"
    created = api.post("/api/v1/files", {"file": upload, "purpose": "image"}, format="multipart")
    assert created.status_code == 201
    body = created.json()
    assert (
        body["filename"] == "swatch.png" and body["bytes"] == len(raw) and (body["width"], body["height"]) == (40, 30)
    )
    assert api.get(f"/api/v1/files/{body['id']}").json() == body
    content = api.get(f"/api/v1/files/{body['id']}/content")
    assert content.status_code == 200 and b"".join(content.streaming_content) == raw
    job = api.post("/api/v1/jobs", {"capability": "image_captioning", "input": {"image": body["id"]}}, format="json")
    assert job.status_code == 202 and job.json()["input"]["image"] == body["id"]
    assert api.delete(f"/api/v1/files/{body['id']}").json()["deleted"] is True
    assert api.get(f"/api/v1/files/{body['id']}").status_code == 404


def test_a_file_that_is_not_an_image_is_refused(api):
    upload = io.BytesIO(b"%PDF-1.4 not an image")
    upload.name = "report.pdf"
    response = api.post("/api/v1/files", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_image"
    assert not StoredFile.objects.exists()


def test_another_partners_file_is_not_found(api, other_partner):
    _, raw_key = make_key(other_partner)
    theirs = client_for(raw_key)
    upload = io.BytesIO(base64.b64decode(png_base64()))
    upload.name = "theirs.png"
    file_id = theirs.post("/api/v1/files", {"file": upload}, format="multipart").json()["id"]
    assert api.get(f"/api/v1/files/{file_id}").status_code == 404
    assert api.get(f"/api/v1/files/{file_id}/content").status_code == 404
    assert api.delete(f"/api/v1/files/{file_id}").status_code == 404
    response = api.post("/api/v1/jobs", {"capability": "image_captioning", "input": {"image": file_id}}, format="json")
    assert response.status_code == 404 and response.json()["error"]["param"] == "input.image"
    assert StoredFile.objects.filter(public_id=file_id).exists()
