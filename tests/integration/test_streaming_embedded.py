"""The embedded default's channel (no Redis: rows of the database) streams too, between separate processes."""

from __future__ import annotations

import time

import openai
import pytest

from inference.models import Job, JobStatus, JobStreamEvent
from inference.streams import DatabaseChannel, channel
from tests.factories import make_key, make_partner
from tests.integration.processes import start_worker
from tests.integration.streaming_helpers import events, open_sse
from tests.services import skip_or_fail_without_services

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def db_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    skip_or_fail_without_services()
    with django_db_blocker.unblock():
        process = start_worker(tmp_path_factory.mktemp("stream-db"), "w-stream-db", ALLIANCE_STREAMS="database")
    yield process
    process.stop()


def test_database_channel_streams_before_the_job_finishes(db_worker, live_server, transactional_db, settings):
    settings.ALLIANCE_STREAMS = "database"
    assert isinstance(channel(), DatabaseChannel)
    raw_key = make_key(make_partner("EBS", sector="education"))[1]
    client = openai.OpenAI(api_key=raw_key, base_url=f"{live_server.url}/v1", max_retries=0, timeout=180)
    arrivals, text = [], ""
    for chunk in client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Explain photosynthesis to a child."}],
        temperature=0,
        max_tokens=40,
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.time())
            text += chunk.choices[0].delta.content
    job = Job.objects.get()
    assert job.status == JobStatus.SUCCEEDED and text == job.output["message"]["content"]
    assert len(arrivals) > 5 and arrivals[0] < job.finished_at.timestamp() - 0.5
    stored = [row.event for row in JobStreamEvent.objects.filter(job_id=job.pk).order_by("id")]
    assert stored[0] == {"kind": "status", "status": "running", "attempt": 1} and stored[-1] == {
        "kind": "end",
        "status": "succeeded",
    }
    replay = events(open_sse(f"{live_server.url}/api/v1/jobs/{job.pk}/events", raw_key))
    assert "".join(e.json()["text"] for e in replay if e.event == "token") == text
