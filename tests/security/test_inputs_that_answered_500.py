"""Inputs that made the platform answer 500: each now answers 400 in the error shape (or, for a file's name, a
header Django builds)."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest
from django.urls import reverse
from PIL import Image

from inference.models import StoredFile
from tests.factories import client_for, make_key
from tests.inference.test_datasets_and_tuning_api import upload
from tests.web.conftest import make_member, signed_in

pytestmark = pytest.mark.django_db


def _error(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"} and {"type", "code", "message", "param"} <= set(body["error"])
    return body["error"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [63, 900, 100_000], ids=["just-too-deep", "parseable", "recursion-error"])
def test_deeply_nested_json_bodies_answer_400(api, depth):
    body = '{"capability": "keyword_extraction", "input": {"text": ' + _nested(depth) + "}}"  # depth + 2 levels
    error = _error(api.generic("POST", "/api/v1/jobs", body, content_type="application/json"))
    assert error["code"] == "json_too_deep" and "64 levels" in error["message"]


def test_deeply_nested_json_answers_400_on_the_openai_surface_too(api):
    body = '{"model": "x", "messages": ' + _nested(100_000) + "}"
    error = _error(api.generic("POST", "/v1/chat/completions", body, content_type="application/json"))
    assert error["code"] == "json_too_deep"


def test_json_at_the_depth_limit_reaches_validation(api):
    body = '{"capability": "keyword_extraction", "input": {"text": ' + _nested(62) + "}}"  # 64 levels
    error = _error(api.generic("POST", "/api/v1/jobs", body, content_type="application/json"))
    assert error["code"] != "json_too_deep" and error["param"] == "input.text"


def _rows(count: int = 12) -> list[dict]:
    return [{"text": f"row {i}", "label": "ab"[i % 2]} for i in range(count)]


def test_a_dataset_line_nested_too_deeply_answers_400_with_its_line(api):
    lines = [json.dumps(row) for row in _rows()]
    lines.insert(3, '{"text": ' + _nested(100_000) + ', "label": "a"}')
    error = _error(upload(api, "\n".join(lines).encode()))
    assert error["code"] == "invalid_rows" and "line 4" in error["message"] and "nest too deeply" in error["message"]


def test_a_csv_field_over_the_csv_limit_answers_400_with_its_line(api):
    rows = ["text,label", *(f"row {i},{'ab'[i % 2]}" for i in range(12))]
    rows.insert(4, f'"{"x" * 200_000}",a')
    error = _error(upload(api, "\n".join(rows).encode(), name="reviews.csv"))
    assert error["code"] == "invalid_csv" and "line 5" in error["message"]


@pytest.mark.parametrize("limit", ["abc", "-1", "0", "101", "1.5", "", "²"])
def test_a_bad_limit_on_fine_tuning_jobs_answers_400_naming_it(api, limit):
    error = _error(api.get("/v1/fine_tuning/jobs", {"limit": limit}))
    assert error["param"] == "limit" and error["code"] == "invalid_value"


def test_a_good_limit_on_fine_tuning_jobs_still_lists(api):
    response = api.get("/v1/fine_tuning/jobs", {"limit": "2"})
    assert response.status_code == 200 and response.json()["object"] == "list"


def _png_named(api, name: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = name
    response = api.post("/api/v1/files", {"file": buffer}, format="multipart")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


NAME = '사진 "final".png'


def test_a_non_ascii_file_name_is_served_with_a_header_django_builds(partner):
    _, raw = make_key(partner)
    api = client_for(raw)
    file_id = _png_named(api, NAME)
    response = api.get(f"/api/v1/files/{file_id}/content")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f"inline; filename*=utf-8''{quote(NAME)}"
    owner = make_member(partner, "owner")
    page = signed_in(owner).get(reverse("portal:file", args=[file_id]))
    assert page.status_code == 200 and page["Content-Disposition"] == response["Content-Disposition"]


@pytest.mark.parametrize(
    ("stored_name", "header"),
    [
        ('a"; filename=evil.html; x=".png', 'inline; filename="a\\"; filename=evil.html; x=\\".png"'),
        ("a\r\nSet-Cookie: session=x.png", "inline; filename*=utf-8''a%0D%0ASet-Cookie%3A%20session%3Dx.png"),
    ],
    ids=["quote", "newline"],
)
def test_a_hostile_stored_file_name_cannot_add_header_parameters_or_headers(api, stored_name, header):
    file_id = _png_named(api, "plain.png")
    StoredFile.objects.filter(public_id=file_id).update(filename=stored_name)
    response = api.get(f"/api/v1/files/{file_id}/content")
    assert response.status_code == 200 and response["Content-Disposition"] == header
    assert not response.has_header("Set-Cookie")


def test_deeply_nested_json_in_a_playground_field_answers_400(partner):
    client = signed_in(make_member(partner, "developer", "devon"))
    response = client.post("/playground/jobs", {"capability": "keyword_extraction", "input": _nested(100_000)})
    error = _error(response)
    assert error["code"] == "invalid_json" and error["param"] == "input" and "64 levels" in error["message"]


def test_deeply_nested_json_in_a_showcase_example_is_a_form_error(partner):
    client = signed_in(make_member(partner, "admin", "ada"))
    response = client.post(
        reverse("portal:showcase-new"),
        {
            "title": "Deep",
            "sector": "finance",
            "capabilities": ["keyword_extraction"],
            "summary": "s",
            "try_capability": "keyword_extraction",
            "example_input": _nested(100_000),
        },
    )
    assert response.status_code == 400 and "64 levels" in response.content.decode()


def test_a_fine_tune_file_whose_first_line_nests_too_deeply_is_refused_not_a_500(api):
    content = (_nested(100_000) + "\n" + "\n".join(json.dumps(row) for row in _rows())).encode()
    response = api.post("/v1/files", {"file": io.BytesIO(content), "purpose": "fine-tune"}, format="multipart")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert set(response.json()) == {"error"}
