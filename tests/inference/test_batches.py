"""Batches without a worker: accepting (one transaction, charged once per job, all or nothing against the quota),
refusing invalid files, cancelling, expiring, and finishing once the jobs do (their rows moved here as a worker
would move them). The Batch API end to end with a real worker and the openai SDK: tests/integration."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from inference.models import Batch, Job, JobStatus
from inference.services import batches
from inference.services.batches import BatchRequest
from partners.models import QuotaPeriod, UsageKind, UsageRecord
from partners.services import quota_set
from tests.factories import client_for, make_key, make_partner

pytestmark = pytest.mark.django_db

TEXT_OF_10_UNITS = "a forty character text for quota tests.."


def _requests(n: int, prefix: str = "r") -> list[dict]:
    return [{"custom_id": f"{prefix}{i}", "input": {"text": TEXT_OF_10_UNITS, "top_k": 3}} for i in range(n)]


def _create(api, n: int = 3, **extra):
    return api.post(
        "/api/v1/batches", {"capability": "keyword_extraction", "requests": _requests(n), **extra}, format="json"
    )


def _used(partner) -> int:
    period = QuotaPeriod.objects.filter(quota__partner=partner, quota__capability="keyword_extraction").first()
    return period.used if period else 0


def _finish_jobs(batch_id: str, status: str = JobStatus.SUCCEEDED, **fields) -> None:
    """What the worker does to the jobs' rows (tests of the worker itself: tests/integration)."""
    output = {"keywords": [{"keyword": "quota", "score": 0.5}]} if status == JobStatus.SUCCEEDED else None
    Job.objects.filter(batch_id=batch_id.removeprefix("batch_"), status=JobStatus.QUEUED).update(
        status=status, output=output, finished_at=timezone.now(), **fields
    )


def test_a_batch_is_accepted_in_one_transaction_and_each_job_charged_once(api, partner, django_assert_max_num_queries):
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=5000, actor="test")
    with django_assert_max_num_queries(30):  # a constant number of statements, however many requests
        response = _create(api, 200)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "in_progress" and body["object"] == "batch" and body["id"].startswith("batch_")
    assert body["request_counts"] == {"total": 200, "completed": 0, "failed": 0}
    assert body["usage"] == {"units": 2000}
    jobs = Job.objects.filter(batch__partner=partner)
    assert jobs.count() == 200 and {job.status for job in jobs} == {JobStatus.QUEUED}
    assert sorted(jobs.values_list("custom_id", flat=True)) == sorted(f"r{i}" for i in range(200))
    charges = UsageRecord.objects.filter(partner=partner, kind=UsageKind.CHARGE)
    assert charges.count() == 200 and set(charges.values_list("job_id", flat=True)) == set(
        jobs.values_list("pk", flat=True)
    )
    assert _used(partner) == 2000
    assert response["Location"] == f"/api/v1/batches/{body['id']}"


def test_a_batch_over_the_remaining_quota_is_refused_whole(api, partner):
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=25, actor="test")
    response = _create(api, 3)
    assert response.status_code == 429 and response.json()["error"]["code"] == "quota_exceeded"
    assert not Batch.objects.exists() and not Job.objects.exists() and not UsageRecord.objects.exists()
    assert _used(partner) == 0
    assert _create(api, 2).status_code == 201
    assert _used(partner) == 20
    assert _create(api, 1).status_code == 429  # 5 units left, 10 needed
    assert Job.objects.count() == 2 and UsageRecord.objects.count() == 2


def test_invalid_lines_refuse_the_native_batch_with_their_line_numbers(api):
    rows = _requests(4)
    rows[1]["input"] = {"text": ""}
    rows[2]["colour"] = "blue"
    rows[3]["custom_id"] = "r0"
    response = api.post("/api/v1/batches", {"capability": "keyword_extraction", "requests": rows}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_batch" and error["message"].startswith("Line 2:")
    assert [(d["line"], d["code"]) for d in error["details"]] == [
        (2, "blank"),
        (3, "unknown_field"),
        (4, "duplicate_custom_id"),
    ]
    assert not Batch.objects.exists() and not Job.objects.exists() and not UsageRecord.objects.exists()


def test_a_batch_line_gets_the_model_and_the_param_checks_a_single_submission_gets(api, partner):
    """No model named: a Korean text to classify runs on the bilingual language model, an English one on MiniLM,
    as POST /api/v1/jobs chooses; a param the language model cannot honour refuses the batch naming it."""
    quota_set(partner=partner, capability="text_classification", monthly_units=5000, actor="test")
    labels = ["frustrated", "satisfied"]
    rows = [
        {"custom_id": "ko", "input": {"text": "인터넷이 이틀째 끊겼어요. 정말 화가 납니다.", "labels": labels}},
        {"custom_id": "en", "input": {"text": "My internet has been down for two days.", "labels": labels}},
    ]
    response = api.post("/api/v1/batches", {"capability": "text_classification", "requests": rows}, format="json")
    assert response.status_code == 201, response.json()
    models = dict(Job.objects.values_list("custom_id", "model"))
    assert models == {"ko": "qwen2.5-coder-0.5b-instruct", "en": "all-MiniLM-L6-v2"}
    for job in Job.objects.all():
        single = api.post(
            "/api/v1/jobs?wait=0", {"capability": "text_classification", "input": job.input}, format="json"
        )
        assert single.json()["model"] == job.model

    refused = [
        {**rows[1], "custom_id": "multi", "model": "qwen2.5-coder-0.5b-instruct", "params": {"multi_label": True}}
    ]
    response = api.post("/api/v1/batches", {"capability": "text_classification", "requests": refused}, format="json")
    assert response.status_code == 400
    [detail] = response.json()["error"]["details"]
    assert detail["code"] == "unsupported_parameter" and "params.multi_label" in detail["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"capability": "keyword_extraction"}, "requests"),
        ({"capability": "keyword_extraction", "requests": [], "extra": 1}, "extra"),
        (
            {"capability": "keyword_extraction", "requests": _requests(1), "completion_window": "1h"},
            "completion_window",
        ),
        ({"capability": "keyword_extraction", "requests": _requests(1), "metadata": {"a": 1}}, "metadata"),
        ({"capability": "telepathy", "requests": _requests(1)}, "capability"),
    ],
)
def test_bad_batch_parameters_answer_400_naming_them(api, body, param):
    response = api.post("/api/v1/batches", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert not Batch.objects.exists()


def test_cancel_refunds_the_queued_jobs_and_running_ones_finish(api, partner):
    batch = _create(api, 3).json()
    assert _used(partner) == 30
    running = Job.objects.filter(custom_id="r0").first()
    Job.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())
    cancelled = api.post(f"/api/v1/batches/{batch['id']}/cancel").json()
    assert cancelled["status"] == "cancelling"
    assert _used(partner) == 10  # the running job keeps its charge
    assert UsageRecord.objects.filter(kind=UsageKind.REFUND).count() == 2
    assert api.post(f"/api/v1/batches/{batch['id']}/cancel").json()["status"] == "cancelling"
    Job.objects.filter(pk=running.pk).update(
        status=JobStatus.SUCCEEDED, output={"keywords": []}, finished_at=timezone.now()
    )
    done = api.get(f"/api/v1/batches/{batch['id']}").json()
    assert done["status"] == "cancelled" and done["cancelled_at"]
    assert done["request_counts"] == {"total": 3, "completed": 1, "failed": 0}
    output = _lines(api, done["output_file"])
    assert [line["custom_id"] for line in output] == ["r0"] and output[0]["job"]["status"] == "succeeded"
    assert sorted(line["custom_id"] for line in _lines(api, done["error_file"])) == ["r1", "r2"]
    again = api.post(f"/api/v1/batches/{batch['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "batch_finished"
    assert _used(partner) == 10


def _lines(api, file_id: str) -> list[dict]:
    response = api.get(f"/api/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_a_batch_completes_when_its_last_job_finishes_and_builds_its_files_once(api, partner):
    batch = _create(api, 3).json()
    Job.objects.filter(custom_id="r2").update(
        status=JobStatus.FAILED, error={"code": "model_error", "message": "boom"}, finished_at=timezone.now()
    )
    assert api.get(f"/api/v1/batches/{batch['id']}").json()["request_counts"] == {
        "total": 3,
        "completed": 0,
        "failed": 1,
    }
    _finish_jobs(batch["id"])
    done = api.get(f"/api/v1/batches/{batch['id']}").json()
    assert done["status"] == "completed" and done["completed_at"]
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    assert sorted(line["custom_id"] for line in _lines(api, done["output_file"])) == ["r0", "r1"]
    [error] = _lines(api, done["error_file"])
    assert error["custom_id"] == "r2" and error["job"]["error"]["code"] == "model_error"
    assert api.get(f"/api/v1/batches/{batch['id']}").json() == done  # built once
    listed = api.get("/api/v1/batches").json()
    assert [item["id"] for item in listed["data"]] == [batch["id"]]


def test_a_batch_past_its_window_expires_and_its_unrun_jobs_are_refunded(api, partner):
    batch = _create(api, 2).json()
    Batch.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert batches.batches_expire() == 1  # the reaper's sweep
    assert _used(partner) == 0
    expired = api.get(f"/api/v1/batches/{batch['id']}").json()
    assert expired["status"] == "expired" and expired["expired_at"] and expired["output_file"] is None
    assert len(_lines(api, expired["error_file"])) == 2


def test_another_partners_batch_is_not_found(api, partner):
    batch = _create(api, 1).json()
    _, raw = make_key(make_partner("LG Chem", sector="manufacturing"))
    theirs = client_for(raw)
    for path in (f"/api/v1/batches/{batch['id']}", "/v1/batches/" + batch["id"]):
        assert theirs.get(path).status_code == 404
    assert theirs.post(f"/api/v1/batches/{batch['id']}/cancel").status_code == 404
    assert theirs.post(f"/v1/batches/{batch['id']}/cancel").status_code == 404
    assert theirs.get("/api/v1/batches").json()["data"] == []
    assert theirs.get("/v1/batches/batch_nothex").status_code == 404
    assert Job.objects.filter(status=JobStatus.QUEUED).count() == 1


def test_keys_outside_their_scope_answer_403(partner):
    _, raw = make_key(partner, scopes=["jobs:read", "summarization"])
    scoped = client_for(raw)
    refused = _create(scoped, 1)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    _, full = make_key(partner)
    batch = _create(client_for(full), 1).json()
    assert scoped.get(f"/api/v1/batches/{batch['id']}").status_code == 404  # a capability it may not see
    _, no_jobs_read = make_key(partner, scopes=["keyword_extraction"])
    assert client_for(no_jobs_read).get("/api/v1/batches").status_code == 403
    assert client_for(no_jobs_read).post(f"/api/v1/batches/{batch['id']}/cancel").status_code == 403
    assert not Batch.objects.exclude(pk=batch["id"].removeprefix("batch_")).exists()


# ---------------------------------------------------------------- /v1 without a worker


def _upload(api, lines: list[dict] | bytes) -> dict:
    data = lines if isinstance(lines, bytes) else "\n".join(json.dumps(line) for line in lines).encode()
    upload = io.BytesIO(data)
    upload.name = "batch.jsonl"
    response = api.post("/v1/files", {"file": upload, "purpose": "batch"}, format="multipart")
    assert response.status_code == 200, response.json()
    return response.json()


def _embedding_line(custom_id: str, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "all-MiniLM-L6-v2", "input": "a bank", **body},
    }


def test_openai_batch_with_invalid_lines_fails_in_validation_with_line_errors(api):
    lines = [_embedding_line("a"), {**_embedding_line("b"), "url": "/v1/completions"}, _embedding_line("c")]
    lines[2]["body"]["encoding_format"] = "base64"
    lines.append(_embedding_line("d", user_tag="x"))  # a field /v1/embeddings itself refuses
    data = ("\n".join(json.dumps(line) for line in lines) + "\n{not json\n").encode()
    uploaded = _upload(api, data)
    assert uploaded["purpose"] == "batch" and uploaded["id"].startswith("file_")
    created = api.post(
        "/v1/batches",
        {"input_file_id": uploaded["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"},
        format="json",
    )
    assert created.status_code == 200
    batch = created.json()
    assert batch["status"] == "failed" and batch["failed_at"]
    assert [(e["line"], e["code"]) for e in batch["errors"]["data"]] == [
        (2, "mismatched_url"),
        (3, "invalid_value"),
        (4, "unsupported_parameter"),
        (5, "invalid_json"),
    ]
    assert batch["errors"]["data"][2]["param"] == "body.user_tag"
    assert not Job.objects.exists() and not UsageRecord.objects.exists()


def test_openai_batch_parameters_and_files(api, partner):
    uploaded = _upload(api, [_embedding_line("a")])
    base = {"input_file_id": uploaded["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}
    for body, param in [
        ({**base, "endpoint": "/v1/images/generations"}, "endpoint"),
        ({**base, "completion_window": "1h"}, "completion_window"),
        ({**base, "priority": "high"}, "priority"),
        ({**base, "input_file_id": "file_missing"}, None),
    ]:
        response = api.post("/v1/batches", body, format="json")
        assert response.status_code in (400, 404) and response.json()["error"]["param"] == param, body
    assert not Batch.objects.exists()
    batch = api.post("/v1/batches", base, format="json").json()
    assert batch["status"] == "in_progress" and batch["input_file_id"] == uploaded["id"]
    assert batch["request_counts"] == {"total": 1, "completed": 0, "failed": 0}
    assert api.get(f"/v1/files/{uploaded['id']}").json()["purpose"] == "batch"
    assert api.get(f"/v1/files/{uploaded['id']}/content").status_code == 200
    listed = api.get("/v1/batches").json()
    assert [item["id"] for item in listed["data"]] == [batch["id"]] and listed["has_more"] is False
    assert api.get(f"/v1/batches?after={batch['id']}").json()["data"] == []
    _, datasets_only = make_key(partner, scopes=["datasets:write"])
    upload = io.BytesIO(b"{}")
    upload.name = "b.jsonl"
    response = client_for(datasets_only).post("/v1/files", {"file": upload, "purpose": "batch"}, format="multipart")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


def test_two_batches_racing_for_the_last_units_one_is_accepted(transactional_db):
    """Two batches that each fit the remaining quota but not together, accepted concurrently on two connections:
    exactly one is accepted, and the quota is charged exactly once per accepted job."""
    partner = make_partner("Shutterstock", sector="content")
    key, _ = make_key(partner)
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=30, actor="test")
    for attempt in range(5):
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def submit(name: str, barrier: threading.Barrier = barrier, outcomes: list[str] = outcomes) -> None:
            requests = [
                BatchRequest(line=i + 1, custom_id=f"{name}{i}", data={"text": TEXT_OF_10_UNITS}) for i in range(2)
            ]
            barrier.wait()
            try:
                batches.batch_create(
                    api_key=key,
                    api="native",
                    capability="keyword_extraction",
                    endpoint="/api/v1/jobs",
                    requests=requests,
                )
                outcomes.append("accepted")
            except Exception as exc:  # noqa: BLE001 - the refusal is what is counted
                outcomes.append(getattr(exc, "code", repr(exc)))
            finally:
                connection.close()

        threads = [threading.Thread(target=submit, args=(f"{attempt}{side}",)) for side in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["accepted", "quota_exceeded"], outcomes
        assert _used(partner) == 20 and Job.objects.count() == 2 and UsageRecord.objects.count() == 2
        batch = Batch.objects.get()
        batches.batch_cancel(batch=batch)  # gives the units back for the next round
        assert _used(partner) == 0
        Batch.objects.all().delete()
        UsageRecord.objects.all().delete()


def test_accepting_sends_one_message_and_a_worker_sends_one_per_job(api, django_capture_on_commit_callbacks):
    """The request pays one broker message for the whole batch; the enqueue_batch task (on a worker) sends each
    job's message to its model's queue."""
    import redis
    from django.conf import settings

    from inference import dispatch

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()

    def messages() -> list[dict]:
        found = []
        for key in broker.scan_iter():
            if broker.type(key) == b"list":
                found += [json.loads(raw)["headers"] | {"queue": key.decode()} for raw in broker.lrange(key, 0, -1)]
        return found

    with django_capture_on_commit_callbacks(execute=True):
        batch = _create(api, 3).json()
    [sent] = messages()
    batch_pk = str(uuid.UUID(batch["id"].removeprefix("batch_")))
    assert sent["task"] == dispatch.ENQUEUE_BATCH and sent["queue"] == "default" and batch_pk in sent["argsrepr"]
    broker.flushdb()
    assert batches.batch_jobs_enqueue(batch_pk) == 3
    sent = messages()
    job = Job.objects.filter(batch_id=batch_pk).first()
    assert [m["task"] for m in sent] == [dispatch.RUN_JOB] * 3
    assert {m["queue"] for m in sent} == {dispatch.model_queue(job.queue, job.model)}
    assert sorted(m["argsrepr"] for m in sent) == sorted(
        repr([str(pk)]) for pk in Job.objects.filter(batch_id=batch_pk).values_list("pk", flat=True)
    )


def test_a_batchs_jobs_are_counted_as_submitted_jobs(api, partner, django_capture_on_commit_callbacks):
    from monitoring import metrics

    counter = metrics.JOBS_SUBMITTED.labels("keyword_extraction", "all-MiniLM-L6-v2", partner.tier)
    before = counter._value.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert _create(api, 4).status_code == 201
    assert counter._value.get() == before + 4
