"""Per-job token channels (Redis Streams and the database) and following a job, sync (WSGI) and async (ASGI)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test import AsyncClient
from django.utils import timezone

from inference import streams
from inference.job_events import follow_job
from inference.models import Job, JobStatus
from partners import ratelimit

pytestmark = pytest.mark.django_db(transaction=True)

CHANNELS = ["redis", "database"]


def make_dialogue_job(partner, key, status=JobStatus.RUNNING, content="Hello there, partner!") -> Job:
    output = {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return Job.objects.create(
        partner=partner,
        api_key=key,
        capability="dialogue",
        model="smollm2-135m-instruct",
        queue="llm",
        status=status,
        input={"messages": [{"role": "user", "content": "Hi"}]},
        output=output if status == JobStatus.SUCCEEDED else None,
        finished_at=timezone.now() if status == JobStatus.SUCCEEDED else None,
    )


@pytest.mark.parametrize("kind", CHANNELS)
def test_a_channel_replays_from_the_start_and_follows_from_a_cursor(kind, settings, key_and_raw):
    settings.ALLIANCE_STREAMS = kind
    job = make_dialogue_job(key_and_raw[0].partner, key_and_raw[0])
    channel = streams.channel()
    streams.publish({str(job.pk): [{"kind": "token", "choice": 0, "text": "Hel"}]})
    events, cursor = channel.read(str(job.pk), streams.START, 100)
    assert events == [{"kind": "token", "choice": 0, "text": "Hel"}]
    started = time.monotonic()
    assert channel.read(str(job.pk), cursor, 200) == ([], cursor)  # nothing new: waits, then answers empty
    assert time.monotonic() - started >= 0.15
    streams.publish({str(job.pk): [{"kind": "token", "choice": 0, "text": "lo"}, {"kind": "end", "status": "x"}]})
    newer, _ = channel.read(str(job.pk), cursor, 100)
    assert [event["kind"] for event in newer] == ["token", "end"]
    replay, _ = channel.read(str(job.pk), streams.START, 0)  # a late follower gets everything
    assert "".join(e["text"] for e in replay if e["kind"] == "token") == "Hello"
    assert asyncio.run(channel.aread(str(job.pk), streams.START, 0))[0] == replay


def test_the_publisher_batches_writes_and_keeps_every_piece(settings, key_and_raw):
    settings.ALLIANCE_STREAMS = "database"
    job = make_dialogue_job(key_and_raw[0].partner, key_and_raw[0])
    publisher = streams.TokenPublisher([str(job.pk)], flush_ms=10_000)
    pieces = ["안", "녕", "하", "세", "요"]
    for piece in pieces:
        publisher.delta(0, 0, piece)
    assert publisher.writes == 1  # the first piece at once (time to first token), the rest held
    publisher.flush()
    assert publisher.writes == 2
    events, _ = streams.channel().read(str(job.pk), streams.START, 0)
    assert [e["text"] for e in events] == ["안", "녕하세요"]


def test_following_a_finished_job_sends_the_rest_of_its_stored_text_then_the_job(settings, key_and_raw):
    settings.ALLIANCE_STREAMS = "redis"
    job = make_dialogue_job(key_and_raw[0].partner, key_and_raw[0], status=JobStatus.SUCCEEDED)
    streams.publish({str(job.pk): [{"kind": "token", "choice": 0, "text": "Hello "}]})  # the rest never published
    events = list(follow_job(job))
    assert [e.kind for e in events] == ["status", "token", "token", "job"]
    assert "".join(e.data["text"] for e in events if e.kind == "token") == "Hello there, partner!"
    assert events[-1].data.status == JobStatus.SUCCEEDED


@pytest.mark.parametrize("kind", CHANNELS)
def test_the_events_endpoint_streams_asynchronously_under_asgi(kind, settings, key_and_raw):
    """Through Django's ASGI handler: the response body is an async iterator fed while the job runs."""
    settings.ALLIANCE_STREAMS = kind
    key, raw = key_and_raw
    job = make_dialogue_job(key.partner, key)

    def worker() -> None:
        deadline = time.monotonic() + 30
        while not ratelimit.waiting_count(key.public_id) and time.monotonic() < deadline:
            time.sleep(0.01)  # until the events request holds its slot: it is following
        time.sleep(0.2)
        streams.publish_status({job.pk: 1}, "running")
        for piece in ["Hello", " there,", " partner!"]:
            streams.publish({str(job.pk): [{"kind": "token", "choice": 0, "text": piece}]})
            time.sleep(0.1)
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.SUCCEEDED,
            output={"message": {"role": "assistant", "content": "Hello there, partner!"}},
            finished_at=timezone.now(),
        )
        streams.publish({str(job.pk): [{"kind": "end", "status": "succeeded"}]})
        connection.close()

    async def read() -> list[tuple[float, bytes]]:
        response = await AsyncClient().get(
            f"/api/v1/jobs/{job.pk}/events", headers={"Authorization": f"Bearer {raw}", "Accept": "text/event-stream"}
        )
        assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
        assert response.is_async
        chunks = [(time.monotonic(), chunk) async for chunk in response.streaming_content]
        await sync_to_async(connections.close_all)()  # in the thread the async path read the database in
        return chunks

    thread = threading.Thread(target=worker)
    thread.start()
    chunks = asyncio.run(read())
    thread.join()
    events = [chunk.decode() for _, chunk in chunks if not chunk.startswith(b":")]
    kinds = [text.split("\n")[0].removeprefix("event: ") for text in events]
    assert kinds == ["status", "token", "token", "token", "status", "job"]
    tokens = [json.loads(text.split("data: ", 1)[1]) for text in events if text.startswith("event: token")]
    assert "".join(t["text"] for t in tokens) == "Hello there, partner!"
    assert json.loads(events[-1].split("data: ", 1)[1])["status"] == "succeeded"
    token_times = [at for at, chunk in chunks if chunk.startswith(b"event: token")]
    assert token_times[-1] - token_times[0] >= 0.08, "tokens came as published, not all at the end"


def test_a_job_run_again_after_its_worker_died_starts_its_text_over(settings, key_and_raw):
    settings.ALLIANCE_STREAMS = "redis"
    job = make_dialogue_job(key_and_raw[0].partner, key_and_raw[0], status=JobStatus.SUCCEEDED)
    streams.publish_status({job.pk: 1}, "running")
    streams.publish({str(job.pk): [{"kind": "token", "choice": 0, "text": "Hello th"}]})  # then the worker died
    streams.publish_status({job.pk: 2}, "running")
    streams.publish({str(job.pk): [{"kind": "token", "choice": 0, "text": "Hello"}, {"kind": "end", "status": "x"}]})
    events = list(follow_job(job))
    restarted = [i for i, e in enumerate(events) if e.kind == "status" and e.data.get("restarted")]
    assert len(restarted) == 1 and events[restarted[0]].data["attempt"] == 2
    after = "".join(e.data["text"] for e in events[restarted[0] :] if e.kind == "token")
    assert after == "Hello there, partner!"  # the second attempt's text, completed from the stored output
