"""Datasets and tuning jobs through the API, without a worker: validation, encryption, charging, isolation."""

from __future__ import annotations

import io
import json

import pytest

from inference.encryption import DecryptionFailed, decrypt_for
from inference.models import Dataset, Job, TunedModel, TuningJob
from inference.services.tuning_datasets import dataset_path
from partners.models import QuotaPeriod, UsageRecord
from tests.factories import client_for, make_key

pytestmark = pytest.mark.django_db

SECRET_PHRASE = "our confidential merger with Acme closes on 3 March"


def classification_jsonl(rows: int = 20) -> bytes:
    lines = [
        {
            "text": f"{SECRET_PHRASE} review {i}" if i == 0 else f"review number {i} is {'great' if i % 2 else 'bad'}",
            "label": "great" if i % 2 else "other",
        }
        for i in range(rows)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def upload(api, data: bytes, name: str = "reviews.jsonl", task: str = "classification"):
    file = io.BytesIO(data)
    file.name = name
    return api.post("/api/v1/datasets", {"file": file, "task": task}, format="multipart")


def test_upload_validates_reports_stats_and_an_estimate(api):
    response = upload(api, classification_jsonl())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["stats"]["rows"] == 20
    assert body["stats"]["labels"] == {"great": 10, "other": 10}
    assert body["stats"]["tokens"] > 0
    estimate = body["estimate"]
    assert estimate["training_tokens"] > 0 and estimate["units"] == estimate["training_tokens"]
    assert estimate["expected_seconds"] > 0


def test_files_are_encrypted_at_rest_with_a_key_only_their_partner_has(api, partner, other_partner):
    dataset = Dataset.objects.get(public_id=upload(api, classification_jsonl()).json()["id"])
    stored = dataset_path(dataset).read_bytes()
    assert SECRET_PHRASE.encode() not in stored and b"great" not in stored
    assert SECRET_PHRASE.encode() in decrypt_for(partner, stored)
    with pytest.raises(DecryptionFailed):
        decrypt_for(other_partner, stored)


def test_deleting_a_dataset_removes_its_file(api):
    dataset_id = upload(api, classification_jsonl()).json()["id"]
    path = dataset_path(Dataset.objects.get(public_id=dataset_id))
    assert path.exists()
    assert api.delete(f"/api/v1/datasets/{dataset_id}").json()["deleted"] is True
    assert not path.exists() and not Dataset.objects.exists()


def test_csv_is_accepted_and_path_like_names_are_cut_to_a_file_name(api):
    rows = "text,label\n" + "".join(f"row {i},{'a' if i % 2 else 'b'}\n" for i in range(12))
    response = upload(api, rows.encode(), name="../../../etc/passwd.csv")
    assert response.status_code == 201, response.json()
    assert response.json()["filename"] == "passwd.csv" and response.json()["format"] == "csv"


@pytest.mark.parametrize(
    ("data", "name", "task", "code", "line"),
    [
        (
            b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n',
            "x.jsonl",
            "classification",
            "invalid_encoding",
            2,
        ),
        (b"text,category\nhello,a\n", "x.csv", "classification", "missing_columns", 1),
        (
            b'{"text": "ok", "label": "a"}\n{"text": "no label"}\n{"text": 5, "label": "b"}\n',
            "x.jsonl",
            "classification",
            "invalid_rows",
            2,
        ),
        (b'{"text": "ok", "label": "a"}\nnot json\n', "x.jsonl", "classification", "invalid_rows", 2),
        (b"\n".join([b'{"text": "same", "label": "only"}'] * 12), "x.jsonl", "classification", "too_few_labels", None),
        (b'{"prompt": "p"}\n', "x.jsonl", "generation", "invalid_rows", 1),
        (b'{"messages": [{"role": "user", "content": "hi"}]}\n', "x.jsonl", "chat", "invalid_rows", 1),
        (b'{"text": "ok", "label": "a"}\n', "x.jsonl", "classification", "too_few_rows", None),
    ],
)
def test_bad_files_are_refused_with_line_numbers_and_nothing_is_stored(api, data, name, task, code, line):
    response = upload(api, data, name=name, task=task)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == code
    assert error["details"] and error["details"][0]["line"] == line
    if line:
        assert f"line {line}" in error["message"]
    assert not Dataset.objects.exists()


def test_an_oversized_file_is_a_413(api, settings):
    settings.ALLIANCE_DATASET_MAX_BYTES = 100
    response = upload(api, classification_jsonl())
    assert response.status_code == 413
    assert not Dataset.objects.exists()


def test_a_tuning_job_is_charged_its_estimate_and_refunded_when_canceled(api, partner):
    dataset = upload(api, classification_jsonl()).json()
    estimate = api.post(
        "/api/v1/tuning-jobs/estimate",
        {"dataset": dataset["id"], "task": "classification", "hyperparameters": {"epochs": 2}},
        format="json",
    ).json()
    created = api.post(
        "/api/v1/tuning-jobs",
        {"dataset": dataset["id"], "task": "classification", "hyperparameters": {"epochs": 2}},
        format="json",
    )
    assert created.status_code == 201, created.json()
    job = created.json()
    assert job["status"] == "queued" and job["method"] == "default" and job["base_model"] == "all-MiniLM-L6-v2"
    assert job["usage"]["units"] == estimate["units"] and estimate["epochs"] == 2
    assert QuotaPeriod.objects.get(quota__partner=partner, quota__capability="tuning").used == estimate["units"]
    assert api.get(f"/api/v1/tuning-jobs/{job['id']}").json()["id"] == job["id"]
    canceled = api.post(f"/api/v1/tuning-jobs/{job['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert QuotaPeriod.objects.get(quota__partner=partner, quota__capability="tuning").used == 0
    events = api.get(f"/api/v1/tuning-jobs/{job['id']}/events").json()["data"]
    assert [event["message"] for event in events][-1].startswith("Canceled")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"task": "classification"}, "dataset", "required"),
        ({"dataset": "ds_x", "task": "poetry"}, "task", "invalid_choice"),
        ({"dataset": "ds_x", "task": "classification", "method": "magic"}, "method", "invalid_choice"),
        (
            {"dataset": "ds_x", "task": "classification", "hyperparameters": {"epochs": 99}},
            "hyperparameters.epochs",
            "max_value",
        ),
        (
            {"dataset": "ds_x", "task": "classification", "hyperparameters": {"warp": 9}},
            "hyperparameters.warp",
            "invalid",
        ),
        ({"dataset": "ds_x", "task": "classification", "base_model": "smollm2-135m-instruct"}, "base_model", "invalid"),
        (
            {"dataset": "ds_x", "task": "classification", "hyperparameters": {"early_stopping_patience": 0}},
            "hyperparameters.early_stopping_patience",
            "min_value",
        ),
        (
            {"dataset": "ds_x", "task": "chat", "hyperparameters": {"early_stopping_patience": 0}},
            "hyperparameters.early_stopping_patience",
            "min_value",
        ),
    ],
)
def test_bad_tuning_requests_are_refused(api, body, param, code):
    response = api.post("/api/v1/tuning-jobs", body, format="json")
    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)
    assert not TuningJob.objects.exists() and not UsageRecord.objects.exists()


@pytest.mark.parametrize("task", ["classification", "generation"])
def test_every_task_may_ask_for_early_stopping(api, task):
    data = (
        classification_jsonl()
        if task == "classification"
        else "\n".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(12)).encode()
    )
    dataset = upload(api, data, task=task).json()
    body = {"dataset": dataset["id"], "task": task, "hyperparameters": {"early_stopping_patience": 2}}
    created = api.post("/api/v1/tuning-jobs", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["hyperparameters"] == {"early_stopping_patience": 2}
    assert TuningJob.objects.get(pk=created.json()["id"]).hyperparameters["early_stopping_patience"] == 2


def test_the_bilingual_model_is_a_chat_base_model_estimated_by_its_own_tokenizer_and_speed(api, prepared_qwen):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"질문 {i}: 적금이 뭔가요?"},
                {"role": "assistant", "content": "적금은 매달 넣는 예금입니다."},
            ]
        }
        for i in range(12)
    ]
    dataset = upload(api, "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode(), task="chat").json()
    figures = {}
    for model in ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"):
        body = {"dataset": dataset["id"], "task": "chat", "base_model": model}
        response = api.post("/api/v1/tuning-jobs/estimate", body, format="json")
        assert response.status_code == 200, response.json()
        figures[model] = response.json()
    smollm2, qwen = figures["smollm2-135m-instruct"], figures["qwen2.5-coder-0.5b-instruct"]
    assert smollm2["token_count"] == qwen["token_count"] == "tokenizer"
    assert qwen["training_tokens"] != smollm2["training_tokens"]  # each model's own tokenizer and chat template
    # Qwen trains about a third as many tokens per second as SmolLM2 on CPU (bench/tuning_generation.py).
    assert (qwen["expected_seconds"] - 10) / qwen["training_tokens"] > 2.5 * (smollm2["expected_seconds"] - 10) / (
        smollm2["training_tokens"]
    )
    created = api.post(
        "/api/v1/tuning-jobs",
        {"dataset": dataset["id"], "task": "chat", "base_model": "qwen2.5-coder-0.5b-instruct"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["base_model"] == "qwen2.5-coder-0.5b-instruct"


def test_datasets_tuning_jobs_and_models_of_another_partner_are_not_found(api, other_partner):
    _, raw = make_key(other_partner)
    theirs = client_for(raw)
    dataset = upload(theirs, classification_jsonl()).json()
    job = theirs.post("/api/v1/tuning-jobs", {"dataset": dataset["id"], "task": "classification"}, format="json").json()
    for response in (
        api.get(f"/api/v1/datasets/{dataset['id']}"),
        api.delete(f"/api/v1/datasets/{dataset['id']}"),
        api.post("/api/v1/tuning-jobs", {"dataset": dataset["id"], "task": "classification"}, format="json"),
        api.get(f"/api/v1/tuning-jobs/{job['id']}"),
        api.get(f"/api/v1/tuning-jobs/{job['id']}/events"),
        api.post(f"/api/v1/tuning-jobs/{job['id']}/cancel"),
    ):
        assert response.status_code == 404, response.json()
    assert api.get("/api/v1/datasets").json()["data"] == []
    assert api.get("/api/v1/tuning-jobs").json()["data"] == []
    tuned = TunedModel.objects.create(
        name="ft:all-MiniLM-L6-v2:lg-chem:abc",
        partner=other_partner,
        tuning_job=TuningJob.objects.get(pk=job["id"]),
        task="classification",
        base_model="all-MiniLM-L6-v2",
        adapter_path="adapters/x",
        labels=["a", "b"],
    )
    response = api.post(
        "/api/v1/jobs",
        {"capability": "text_classification", "model": tuned.name, "input": {"text": "hello"}},
        format="json",
    )
    assert response.status_code == 404 and response.json()["error"]["param"] == "model"
    assert tuned.name not in [model["id"] for model in api.get("/api/v1/models").json()["data"]]
    assert tuned.name in [model["id"] for model in theirs.get("/api/v1/models").json()["data"]]
    own = theirs.post(
        "/api/v1/jobs",
        {"capability": "text_classification", "model": tuned.name, "input": {"text": "hello"}},
        format="json",
    )
    assert own.status_code == 202 and own.json()["model"] == tuned.name
    assert Job.objects.get(pk=own.json()["id"]).queue == "embeddings"
    wrong = theirs.post(
        "/api/v1/jobs",
        {"capability": "dialogue", "model": tuned.name, "input": {"messages": [{"role": "user", "content": "hi"}]}},
        format="json",
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "model_mismatch"


def test_zero_shot_classification_needs_labels(api):
    response = api.post(
        "/api/v1/jobs", {"capability": "text_classification", "input": {"text": "hello"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input.labels"
