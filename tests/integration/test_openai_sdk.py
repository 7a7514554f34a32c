"""The official openai SDK against a live server and a real worker: unchanged but for base_url and key."""

from __future__ import annotations

import base64
import io
import json

import openai
import pytest
from PIL import Image

from inference.models import Job
from partners.services import quota_set
from tests.factories import make_key, make_partner
from tests.integration.conftest import sdk_client

pytestmark = pytest.mark.services

CHAT_MODEL = "smollm2-135m-instruct"


@pytest.fixture
def partner(transactional_db):
    return make_partner("LG Uplus", sector="telecom")


@pytest.fixture
def client(shared_worker, live_server, partner) -> openai.OpenAI:
    return sdk_client(live_server, make_key(partner)[1])


def test_models_list_and_retrieve(client):
    ids = [model.id for model in client.models.list()]
    assert CHAT_MODEL in ids and "all-MiniLM-L6-v2" in ids
    assert client.models.retrieve(CHAT_MODEL).id == CHAT_MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-unknown")


def test_chat_plain_and_streamed_agree(client):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    plain = client.chat.completions.create(model=CHAT_MODEL, messages=messages, temperature=0, max_tokens=20)
    content = plain.choices[0].message.content
    assert "Paris" in content and plain.choices[0].message.role == "assistant"
    assert plain.usage.prompt_tokens > 0 and plain.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=messages, temperature=0, max_tokens=20, stream=True
    )
    chunks = list(stream)
    assert len(chunks) > 3
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == content
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
    assert Job.objects.filter(capability="dialogue").count() == 2


def test_chat_with_n_choices_is_one_job_and_one_charge(client):
    response = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        n=2,
        temperature=0.9,
        seed=3,
        max_tokens=8,
    )
    assert [choice.index for choice in response.choices] == [0, 1]
    assert Job.objects.count() == 1


def test_completions_and_embeddings(client):
    completion = client.completions.create(
        model=CHAT_MODEL, prompt="Write one word about the sea.", max_tokens=8, temperature=0
    )
    assert completion.choices[0].text.strip()
    embeddings = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a bank", "a river"])
    assert [len(item.embedding) for item in embeddings.data] == [384, 384]
    assert embeddings.usage.total_tokens > 0


def test_image_generation_as_base64(client):
    response = client.images.generate(
        model="alliance-pattern-artist", prompt="honeycomb", size="64x64", response_format="b64_json"
    )
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json)))
    assert image.size == (64, 64)


def test_files_and_fine_tuning_jobs(client):
    rows = [
        {"text": f"review {i} {'loved it' if i % 2 else 'hated it'}", "label": "great" if i % 2 else "other"}
        for i in range(20)
    ]
    uploaded = client.files.create(
        file=("train.jsonl", "\n".join(json.dumps(r) for r in rows).encode()), purpose="fine-tune"
    )
    assert client.files.retrieve(uploaded.id).bytes == uploaded.bytes
    job = client.fine_tuning.jobs.create(
        model="all-MiniLM-L6-v2", training_file=uploaded.id, hyperparameters={"n_epochs": 1}
    )
    assert job.status in {"queued", "running"} and job.training_file == uploaded.id
    assert client.fine_tuning.jobs.retrieve(job.id).id == job.id
    assert [item.id for item in client.fine_tuning.jobs.list()] == [job.id]
    assert client.fine_tuning.jobs.list_events(job.id).data
    canceled = client.fine_tuning.jobs.cancel(job.id)
    assert canceled.status in {"cancelled", "succeeded", "failed"}
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_errors_raise_the_matching_sdk_exceptions(client, live_server, partner):
    with pytest.raises(openai.AuthenticationError):
        sdk_client(live_server, "alk_aaaaaaaaaaaa_nope").models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-unknown", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "wizard", "content": "hi"}])
    quota_set(partner=partner, capability="embeddings", rpm=1, actor="test")
    raw = client.embeddings.with_raw_response.create(model="all-MiniLM-L6-v2", input="one")
    assert raw.headers["x-ratelimit-limit-requests"] == "1" and raw.headers["x-ratelimit-remaining-tokens"]
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="all-MiniLM-L6-v2", input="two")
