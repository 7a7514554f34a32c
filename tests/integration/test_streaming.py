"""Tokens stream from a real worker to the official openai SDK and to the native events endpoint, as they are
generated (timestamps against the job's finished_at), adding up to what the job stores."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest

from inference.models import Job, JobStatus
from partners import ratelimit
from partners.models import UsageRecord
from tests.factories import make_key, make_partner
from tests.integration.processes import start_worker
from tests.integration.streaming_helpers import events, open_sse
from tests.services import skip_or_fail_without_services

pytestmark = pytest.mark.services

CHAT_MODEL = "smollm2-135m-instruct"
STORY = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    skip_or_fail_without_services()
    with django_db_blocker.unblock():
        process = start_worker(tmp_path_factory.mktemp("stream"), "w-stream", ALLIANCE_BATCH_WAIT_MS="400")
    yield process
    process.stop()


@pytest.fixture
def partner(transactional_db):
    return make_partner("Woori Bank", sector="finance")


@pytest.fixture
def raw_key(partner):
    return make_key(partner)[1]


@pytest.fixture
def client(worker, live_server, raw_key) -> openai.OpenAI:
    return openai.OpenAI(api_key=raw_key, base_url=f"{live_server.url}/v1", max_retries=0, timeout=180)


def test_chat_stream_arrives_before_the_job_finishes_and_adds_up(client):
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=STORY,
        temperature=0,
        max_tokens=48,
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals, chunks = [], []
    for chunk in stream:
        arrivals.append(time.time())
        chunks.append(chunk)
    job = Job.objects.get()
    assert job.status == JobStatus.SUCCEEDED
    assert chunks[0].choices[0].delta.role == "assistant"
    content_at = [at for at, c in zip(arrivals, chunks, strict=True) if c.choices and c.choices[0].delta.content]
    assert len(content_at) > 5
    assert content_at[0] < job.finished_at.timestamp() - 0.5, "the first token came before the job finished"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == job.output["message"]["content"] and text
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == [job.output["finish_reason"]]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == job.output["tokens"]["completion"] > 5
    assert last.usage.prompt_tokens == job.output["tokens"]["prompt"] > 5
    assert all(c.usage is None for c in chunks[:-1])


def test_completions_stream_ends_with_done(worker, live_server, raw_key):
    response = open_sse(
        f"{live_server.url}/v1/completions",
        raw_key,
        method="POST",
        body={"model": CHAT_MODEL, "prompt": "List three fruits.", "max_tokens": 32, "temperature": 0, "stream": True},
    )
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    received = events(response)
    job = Job.objects.get()
    assert received[-1].data == "[DONE]"
    chunks = [event.json() for event in received[:-1]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == job.output["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == job.output["finish_reason"]
    first_text = next(event for event, chunk in zip(received[:-1], chunks, strict=True) if chunk["choices"][0]["text"])
    assert first_text.at < job.finished_at.timestamp()


def test_two_concurrent_streams_are_batched_and_both_stream(client):
    results: dict[str, tuple[list[float], str]] = {}

    def run(name: str, prompt: str) -> None:
        arrivals, text = [], ""
        for chunk in client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=40, stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.time())
                text += chunk.choices[0].delta.content
        results[name] = (arrivals, text)

    threads = [
        threading.Thread(target=run, args=("a", "Describe the sea in a few sentences.")),
        threading.Thread(target=run, args=("b", "Describe a mountain in a few sentences.")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    jobs = list(Job.objects.order_by("created_at"))
    assert len(jobs) == 2 and all(job.status == JobStatus.SUCCEEDED for job in jobs)
    assert jobs[0].claim_token == jobs[1].claim_token, "both ran in one batch"
    finished = jobs[0].finished_at.timestamp()
    for arrivals, _ in results.values():
        assert len(arrivals) > 5 and arrivals[0] < finished - 0.5
    assert sorted(text for _, text in results.values()) == sorted(j.output["message"]["content"] for j in jobs)


def test_native_events_replay_a_finished_job_and_refuse_others(client, live_server, raw_key, worker):
    plain = client.completions.create(model=CHAT_MODEL, prompt="Say hello to the alliance.", max_tokens=24)
    job = Job.objects.get()
    assert plain.choices[0].text == job.output["text"]
    response = open_sse(f"{live_server.url}/api/v1/jobs/{job.pk}/events", raw_key)
    assert response.status == 200
    received = events(response)
    kinds = [event.event for event in received]
    assert kinds[0] == "status" and kinds[-1] == "job" and "token" in kinds
    assert "".join(e.json()["text"] for e in received if e.event == "token") == job.output["text"]
    assert [e.json()["status"] for e in received if e.event == "status"][-1] == "succeeded"
    final = received[-1].json()
    assert final["id"] == str(job.pk) and final["status"] == "succeeded" and final["output"] == job.output

    other_key = make_key(make_partner("Elsevier", sector="education"))[1]
    assert open_sse(f"{live_server.url}/api/v1/jobs/{job.pk}/events", other_key).status == 404
    narrow_key = make_key(job.partner, scopes=["dialogue"])[1]
    assert open_sse(f"{live_server.url}/api/v1/jobs/{job.pk}/events", narrow_key).status == 403


def test_native_events_follow_a_running_job(worker, live_server, raw_key, partner):
    submitted = open_sse(
        f"{live_server.url}/api/v1/jobs",
        raw_key,
        method="POST",
        body={
            "capability": "text_generation",
            "model": CHAT_MODEL,
            "input": {"prompt": "Write a poem about Seoul."},
            "params": {"max_new_tokens": 48, "temperature": 0},
        },
        accept="application/json",
    )
    job_id = json.loads(submitted.read())["id"]
    received = events(open_sse(f"{live_server.url}/api/v1/jobs/{job_id}/events", raw_key))
    job = Job.objects.get(pk=job_id)
    tokens = [e for e in received if e.event == "token"]
    assert len(tokens) > 3 and tokens[0].at < job.finished_at.timestamp()
    assert "".join(e.json()["text"] for e in tokens) == job.output["text"]
    assert received[-1].event == "job" and received[-1].json()["status"] == "succeeded"


def test_a_client_that_disconnects_leaves_the_job_running_stored_and_billed(worker, live_server, raw_key, partner):
    response = open_sse(
        f"{live_server.url}/v1/chat/completions",
        raw_key,
        method="POST",
        body={"model": CHAT_MODEL, "messages": STORY, "max_tokens": 48, "temperature": 0, "stream": True},
    )
    first = events(response, limit=3)  # the role chunk and the first content
    assert first[-1].json()["choices"][0]["delta"].get("content")
    response.close()  # the client goes away mid-stream
    job = Job.objects.get()
    deadline = time.monotonic() + 180
    while job.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED) and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.output["tokens"]["completion"] > 5 and job.output["message"]["content"]
    assert UsageRecord.objects.filter(job_id=job.pk, kind="charge").exists()
    assert not UsageRecord.objects.filter(job_id=job.pk, kind="refund").exists()
    key_id = job.api_key.public_id
    deadline = time.monotonic() + 30
    while ratelimit.waiting_count(key_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ratelimit.waiting_count(key_id) == 0, "the stream's waiting slot is released"
