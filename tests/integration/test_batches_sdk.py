"""The Batch API through the official openai SDK against a live server and a real Celery worker: upload the JSONL
input, create the batch, poll it to `completed`, read its output file; cancel; invalid lines; isolation; scopes."""

from __future__ import annotations

import json
import time

import openai
import pytest

from capabilities import get_capability
from inference.models import Job, JobStatus
from partners.models import QuotaPeriod, UsageKind, UsageRecord
from partners.services import quota_set
from tests.factories import make_key, make_partner
from tests.integration.conftest import sdk_client

pytestmark = pytest.mark.services

CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDER = "all-MiniLM-L6-v2"


@pytest.fixture
def partner(transactional_db):
    return make_partner("LG CNS", sector="it")


@pytest.fixture
def client(shared_worker, live_server, partner) -> openai.OpenAI:
    return sdk_client(live_server, make_key(partner)[1])


def _jsonl(lines: list[dict]) -> bytes:
    return "\n".join(json.dumps(line) for line in lines).encode()


def _embedding(custom_id: str, text: str) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": EMBEDDER, "input": text},
    }


def _poll(client: openai.OpenAI, batch_id: str, until: set[str], timeout: float = 240) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        time.sleep(0.5)
    raise TimeoutError(f"batch {batch_id} still {batch.status}")


def test_a_batch_runs_to_completed_and_its_output_file_answers_each_custom_id(client, partner):
    lines = [_embedding(f"emb-{i}", text) for i, text in enumerate(["a bank", "a river", "a loan"])]
    chat = [
        {
            "custom_id": f"chat-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": CHAT_MODEL, "messages": [{"role": "user", "content": q}], "max_tokens": 6},
        }
        for i, q in enumerate(["Name a colour.", "Name a fruit."])
    ]
    uploaded = client.files.create(file=("emb.jsonl", _jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch"
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h", metadata={"run": "test"}
    )
    assert batch.status == "in_progress" and batch.request_counts.total == 3 and batch.metadata == {"run": "test"}
    chat_file = client.files.create(file=("chat.jsonl", _jsonl(chat)), purpose="batch")
    chat_batch = client.batches.create(
        input_file_id=chat_file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    units = {job.custom_id: job.units for job in Job.objects.filter(batch__partner=partner)}
    assert len(units) == 5

    done = _poll(client, batch.id, {"completed", "failed", "cancelled", "expired"})
    assert done.status == "completed" and done.completed_at and done.error_file_id is None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    by_id = {line["custom_id"]: line for line in output}
    assert set(by_id) == {"emb-0", "emb-1", "emb-2"}
    for line in output:
        assert line["response"]["status_code"] == 200 and line["error"] is None
        assert len(line["response"]["body"]["data"][0]["embedding"]) == 384
    assert (
        by_id["emb-0"]["response"]["body"]["data"][0]["embedding"]
        != by_id["emb-1"]["response"]["body"]["data"][0]["embedding"]
    )

    chat_done = _poll(client, chat_batch.id, {"completed", "failed", "cancelled", "expired"})
    assert chat_done.status == "completed"
    answers = {
        json.loads(line)["custom_id"]: json.loads(line)["response"]["body"]
        for line in client.files.content(chat_done.output_file_id).text.splitlines()
    }
    assert set(answers) == {"chat-0", "chat-1"}
    assert all(
        body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] for body in answers.values()
    )

    assert [b.id for b in client.batches.list()] == [chat_batch.id, batch.id]
    # each job charged exactly once
    charges = UsageRecord.objects.filter(partner=partner, kind=UsageKind.CHARGE)
    assert sorted(charges.values_list("units", flat=True)) == sorted(units.values())
    assert set(Job.objects.filter(batch__partner=partner).values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


def test_invalid_lines_fail_the_batch_in_validation(client, partner):
    lines = [_embedding("a", "one"), {**_embedding("b", "two"), "method": "GET"}, _embedding("a", "three")]
    uploaded = client.files.create(file=("bad.jsonl", _jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert batch.status == "failed" and batch.output_file_id is None
    assert [(error.line, error.code) for error in batch.errors.data] == [
        (2, "invalid_method"),
        (3, "duplicate_custom_id"),
    ]
    assert client.batches.retrieve(batch.id).status == "failed"
    assert not Job.objects.filter(partner=partner).exists() and not UsageRecord.objects.filter(partner=partner).exists()
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/images/generations", completion_window="24h")


def _chat(custom_id: str, content: str) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": CHAT_MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 4},
    }


def test_cancel_refunds_what_did_not_run_and_the_quota_is_exact(client, partner, live_server):
    content = "Say one word."
    per_job = get_capability("dialogue").cost(
        {"messages": [{"role": "user", "content": content}]}, {"max_new_tokens": 4}
    )
    quota_set(partner=partner, capability="dialogue", monthly_units=25 * per_job, actor="test")
    lines = [_chat(f"x{i}", content) for i in range(30)]
    uploaded = client.files.create(file=("big.jsonl", _jsonl(lines)), purpose="batch")
    with pytest.raises(openai.RateLimitError):  # 30 jobs do not fit the 25 jobs' worth left: refused whole
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert not Job.objects.filter(partner=partner).exists() and not UsageRecord.objects.filter(partner=partner).exists()
    small = client.files.create(file=("small.jsonl", _jsonl(lines[:20])), purpose="batch")
    batch = client.batches.create(input_file_id=small.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert {job.units for job in Job.objects.filter(batch__partner=partner)} == {per_job}
    assert QuotaPeriod.objects.get(quota__partner=partner, quota__capability="dialogue").used == 20 * per_job
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in {"cancelling", "cancelled"}
    final = _poll(client, batch.id, {"cancelled"})
    jobs = Job.objects.filter(batch__partner=partner)
    ran = jobs.filter(status=JobStatus.SUCCEEDED).count()
    assert ran < 20 and jobs.filter(status=JobStatus.CANCELED).count() == 20 - ran
    assert final.request_counts.completed == ran
    used = QuotaPeriod.objects.get(quota__partner=partner, quota__capability="dialogue").used
    assert used == ran * per_job  # the cancelled jobs gave their units back; the ones that ran keep their charge
    assert UsageRecord.objects.filter(partner=partner, kind=UsageKind.REFUND).count() == 20 - ran
    errors = client.files.content(final.error_file_id).text.splitlines()
    assert len(errors) == 20 - ran and all(json.loads(line)["error"]["code"] == "batch_cancelled" for line in errors)
    if ran:
        assert len(client.files.content(final.output_file_id).text.splitlines()) == ran
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_another_partners_batch_is_not_found_and_scopes_are_enforced(client, partner, live_server):
    uploaded = client.files.create(file=("one.jsonl", _jsonl([_embedding("a", "one")])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    _, raw = make_key(make_partner("Elsevier", sector="education"))
    theirs = sdk_client(live_server, raw)
    with pytest.raises(openai.NotFoundError):
        theirs.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        theirs.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        theirs.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):  # another partner's input file cannot be batched either
        theirs.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert theirs.batches.list().data == []

    no_capability = sdk_client(live_server, make_key(partner, scopes=["files:read", "files:write", "jobs:read"])[1])
    with pytest.raises(openai.PermissionDeniedError):
        no_capability.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    no_jobs_read = sdk_client(live_server, make_key(partner, scopes=["embeddings", "files:read"])[1])
    with pytest.raises(openai.PermissionDeniedError):
        no_jobs_read.batches.retrieve(batch.id)
    assert Job.objects.filter(partner=partner).count() == 1
