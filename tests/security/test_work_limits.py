"""Work a partner can ask for is bounded and paid for: image cost follows n x steps x pixels, keyword extraction
stays within a memory and time bound on its largest input, a job past its family's soft time limit fails and is
refunded, a canceled running job keeps its charge and leaves no file, and n images are all stored. The worker
tests run a real Celery worker on PostgreSQL and Redis."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from PIL import Image

from capabilities.keyword_extraction import MAX_TEXT_CHARS, KeywordExtractionInput
from inference import dispatch
from inference.models import FilePurpose, Job, StoredFile
from partners.models import UsageKind, UsageRecord
from tests.factories import client_for, make_key, make_partner
from tests.integration.processes import start_worker
from tests.services import skip_or_fail_without_services

VISION_LIMITS = (12.0, 60.0)  # (soft, hard) seconds for the vision family in these tests


def _image_job(**params: object) -> dict:
    return {"capability": "image_generation", "input": {"prompt": "golden daisies"}, "params": params}


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _charged(job_id: str) -> tuple[int, int]:
    """(units charged, units refunded) for a job."""
    rows = UsageRecord.objects.filter(job_id=job_id)
    charged = sum(r.units for r in rows if r.kind == UsageKind.CHARGE)
    return charged, sum(r.units for r in rows if r.kind == UsageKind.REFUND)


# ---------------------------------------------------------------- cost and keyword bounds (no worker)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "units"),
    [
        ({}, 1),  # one 256 x 256 image at 64 steps: the unit
        ({"width": 64, "height": 64, "steps": 1}, 1),  # never less than one unit
        ({"n": 2, "steps": 128, "width": 512, "height": 512}, 16),  # 2 x 2 x 4
        ({"n": 4, "steps": 256, "width": 512, "height": 512}, 64),  # the most one job may ask for
    ],
)
def test_image_cost_grows_with_n_steps_and_pixels(api, params, units):
    response = api.post("/api/v1/jobs", _image_job(**params), format="json")
    assert response.status_code == 202, response.json()
    job = response.json()
    assert job["usage"] == {"units": units}
    assert _charged(job["id"]) == (units, 0)


@pytest.mark.django_db
def test_the_catalogue_states_the_image_cost(api):
    entries = api.get("/api/v1/capabilities").json()["data"]
    image = next(entry for entry in entries if entry["name"] == "image_generation")
    assert "n x steps x width x height" in image["description"]


def _largest_keyword_text() -> str:
    """MAX_TEXT_CHARS of made-up words: as many distinct 1- to 3-word phrases as a text of that size can hold."""
    rng = random.Random(0)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "po", "se", "vi", "zu", "ba", "de", "fo", "gi", "hu"]
    words, size = [], 0
    while size < MAX_TEXT_CHARS:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:MAX_TEXT_CHARS].strip()


# Measured on two shared CPU cores (one torch thread): before the candidate cap, 5,000 characters took 18 s and
# 36 MB of traced memory, 20,000 took 160 s and 469 MB (548 MB more RSS); the matrix grows with the square of the
# phrases, so 100,000 would need gigabytes. With the cap, 100,000 characters take about 5 s, 8 MB traced, 39 MB RSS.
KEYWORD_MEMORY_BOUND_MB = 64
KEYWORD_RSS_BOUND_MB = 400
KEYWORD_SECONDS_BOUND = 120


def test_keyword_extraction_on_the_largest_input_stays_within_memory_and_time():
    from inference.backends import get_model, run_job_model

    text = _largest_keyword_text()
    data = {"text": text, "top_k": 50}
    assert KeywordExtractionInput(data=data).is_valid()  # the largest input the API accepts
    assert len(text) > MAX_TEXT_CHARS - 10
    params = {"max_ngram": 3, "diversity": 0.5, "stop_words": "none"}  # MMR on, the most candidates
    get_model("all-MiniLM-L6-v2").encode(["warm up"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    try:
        output = run_job_model("keyword_extraction", "all-MiniLM-L6-v2", data, params)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert len(output["keywords"]) == 50
    assert peak / 2**20 < KEYWORD_MEMORY_BOUND_MB, f"traced peak {peak / 2**20:.0f} MB"
    assert rss_growth_mb < KEYWORD_RSS_BOUND_MB, f"RSS grew {rss_growth_mb:.0f} MB"
    assert seconds < KEYWORD_SECONDS_BOUND, f"took {seconds:.0f} s"


# ---------------------------------------------------------------- time limits: settings and messages


LIMITS_PROBE = """
import django
django.setup()
from django.conf import settings
print(settings.ALLIANCE_TASK_TIME_LIMITS["llm"], settings.ALLIANCE_TASK_TIME_LIMITS["vision"])
"""


def _probe_limits(tmp_path, value: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="alliance.settings", ALLIANCE_VAR_DIR=str(tmp_path))
    env["ALLIANCE_TASK_TIME_LIMITS"] = value
    return subprocess.run(
        [sys.executable, "-c", LIMITS_PROBE], cwd=settings.BASE_DIR, capture_output=True, text=True, env=env
    )


def test_time_limits_are_set_per_family_and_a_malformed_one_stops_the_start(tmp_path):
    result = _probe_limits(tmp_path, "llm=30:45, vision=5:9")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["(30.0,", "45.0)", "(5.0,", "9.0)"]
    for bad in ("llm=45:30", "gpu=1:2", "llm=10"):
        failed = _probe_limits(tmp_path, bad)
        assert failed.returncode != 0 and "ALLIANCE_TASK_TIME_LIMITS" in failed.stderr, bad


@pytest.fixture
def live_services(transactional_db) -> None:
    skip_or_fail_without_services()


def test_each_job_message_carries_its_family_time_limits(live_services, settings):
    settings.ALLIANCE_TASK_TIME_LIMITS = {**settings.ALLIANCE_TASK_TIME_LIMITS, "llm": (41.0, 47.0)}
    _, raw = make_key(make_partner("EBS", sector="education"))
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    body = {"capability": "text_generation", "input": {"prompt": "Hello"}, "params": {"max_new_tokens": 4}}
    job = client_for(raw).post("/api/v1/jobs", body, format="json").json()
    queue = dispatch.model_queue("llm", job["model"])  # a job's message goes to its model's queue
    try:
        messages = [json.loads(raw_message) for raw_message in broker.lrange(queue, 0, -1)]
    finally:
        broker.delete(queue)
    [message] = [m for m in messages if job["id"] in base64.b64decode(m["body"]).decode()]
    assert message["headers"]["timelimit"] == [47.0, 41.0]  # celery's order: (hard, soft)


# ---------------------------------------------------------------- a real vision worker


@pytest.fixture(scope="module")
def vision_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    skip_or_fail_without_services()
    soft, hard = VISION_LIMITS
    with django_db_blocker.unblock():
        process = start_worker(
            tmp_path_factory.mktemp("limits"),
            "w-limits",
            queues="vision",
            ALLIANCE_TASK_TIME_LIMITS=f"vision={soft:g}:{hard:g}",
        )
    yield process
    process.stop()


@pytest.fixture
def vision(vision_worker, live_services, settings):
    """A key holder's client and the worker; this process sends jobs with the worker's vision limits too."""
    settings.ALLIANCE_TASK_TIME_LIMITS = {**settings.ALLIANCE_TASK_TIME_LIMITS, "vision": VISION_LIMITS}
    partner = make_partner("VA Corporation", sector="content")
    _, raw = make_key(partner)
    return client_for(raw), vision_worker


def test_a_job_past_its_soft_time_limit_fails_and_is_refunded(vision):
    api, _ = vision
    job = api.post("/api/v1/jobs", _image_job(n=1, steps=256, width=512, height=512), format="json").json()
    assert job["usage"]["units"] == 16
    _wait_until(lambda: Job.objects.get(pk=job["id"]).is_finished, VISION_LIMITS[0] + 60, "the soft time limit")
    failed = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "time_limit"
    assert "12 s" in failed["error"]["message"]
    assert _charged(job["id"]) == (16, 16)
    assert not StoredFile.objects.filter(job_id=job["id"]).exists()
    after = api.post("/api/v1/jobs?wait=60", _image_job(steps=1, width=64, height=64, seed=1), format="json")
    assert after.json()["status"] == "succeeded", after.json()  # the same worker process goes on


def test_canceling_a_running_image_job_keeps_its_charge_and_stores_no_file(vision):
    api, worker = vision
    job = api.post("/api/v1/jobs", _image_job(steps=8, width=64, height=64, seed=3), format="json").json()
    _wait_until(lambda: Job.objects.get(pk=job["id"]).status != "queued", 60, "the job to start")
    canceled = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert canceled.status_code == 200, canceled.json()
    assert canceled.json()["status"] == "canceled"
    worker.wait_for_log(f"job {job['id']} is no longer running (canceled or reaped): its output is dropped", 90)
    assert Job.objects.get(pk=job["id"]).status == "canceled"
    assert not StoredFile.objects.filter(job_id=job["id"]).exists()
    assert not StoredFile.objects.filter(purpose=FilePurpose.GENERATED).exists()
    assert _charged(job["id"]) == (1, 0)  # the work was done: the charge stays


@pytest.mark.django_db
def test_canceling_a_queued_job_refunds_it(api):
    job = api.post("/api/v1/jobs", _image_job(n=2), format="json").json()
    assert api.post(f"/api/v1/jobs/{job['id']}/cancel").json()["status"] == "canceled"
    assert _charged(job["id"]) == (2, 2)


def test_two_images_through_the_openai_endpoint_are_both_stored(vision):
    api, _ = vision
    body = {"model": "alliance-pattern-artist", "prompt": "blue butterflies", "n": 2, "size": "64x64", "steps": 2}
    response = api.post("/v1/images/generations", body, format="json")
    assert response.status_code == 200, response.json()
    paths = [urlsplit(item["url"]).path for item in response.json()["data"]]
    assert len(paths) == 2 and len(set(paths)) == 2
    job = Job.objects.get(capability="image_generation")
    assert job.status == "succeeded" and job.units == 1  # 2 images x 2 steps x 64 x 64 is under one unit
    assert [urlsplit(choice["image"]["url"]).path for choice in job.output["choices"]] == paths
    assert job.output["image"] == job.output["choices"][0]["image"]
    assert StoredFile.objects.filter(job=job, purpose=FilePurpose.GENERATED).count() == 2
    for path in paths:
        content = api.get(path)
        assert content.status_code == 200
        assert Image.open(io.BytesIO(b"".join(content.streaming_content))).size == (64, 64)
