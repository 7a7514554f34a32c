"""The model a text_classification job runs on when it names none: MiniLM for English, the bilingual language model
for a Korean text (MiniLM reads no Korean); a named model is honoured, and the language model refuses the
embedder-only params rather than ignoring them."""

from __future__ import annotations

import pytest

from capabilities.default_models import EMBEDDER, LLM, QWEN
from capabilities.language import is_korean
from inference.models import Job

pytestmark = pytest.mark.django_db

LABELS = ["satisfied", "confused", "worried", "frustrated"]
KOREAN = "인터넷이 이틀째 끊겼는데 고객센터에서 아무도 다시 전화를 주지 않아요. 정말 화가 납니다."
ENGLISH = "My internet has been down for two days and nobody from support has called me back."


def _submit(api, text: str, **extra):
    body = {"capability": "text_classification", "input": {"text": text, "labels": LABELS}, **extra}
    return api.post("/api/v1/jobs", body, format="json")


@pytest.mark.parametrize(("text", "model"), [(KOREAN, QWEN), (ENGLISH, EMBEDDER), ("인터넷이 안 돼요, WiFi", QWEN)])
def test_without_a_model_the_input_chooses_it(api, text, model):
    response = _submit(api, text)
    assert response.status_code == 202, response.json()
    assert response.json()["model"] == model
    assert Job.objects.get().model == model


@pytest.mark.parametrize(("text", "model"), [(KOREAN, EMBEDDER), (ENGLISH, QWEN)])
def test_a_named_model_is_honoured(api, text, model):
    response = _submit(api, text, model=model)
    assert response.status_code == 202, response.json()
    assert Job.objects.get().model == model


def test_the_small_language_model_serves_no_classification(api):
    """SmolLM2-135M answers the classifier's yes/no questions below chance: it is refused, not run badly."""
    response = _submit(api, ENGLISH, model=LLM)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("model", "model_mismatch"), error
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"multi_label": True}, "params.multi_label"),
        ({"hypothesis_template": "It is {}."}, "params.hypothesis_template"),
    ],
)
def test_a_language_model_refuses_the_embedder_only_params(api, params, param):
    response = _submit(api, KOREAN, params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, "unsupported_parameter"), error
    assert not Job.objects.exists()
    assert _submit(api, ENGLISH, params=params).status_code == 202  # MiniLM reads them
    assert _submit(api, KOREAN, params={"multi_label": False}).status_code == 202  # the default changes nothing


def test_the_hangul_check_reads_letters_only():
    assert is_korean(KOREAN) and not is_korean(ENGLISH)
    assert not is_korean("2024-01-01 !!") and is_korean("네, 확인했습니다 (OK)")
