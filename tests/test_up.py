"""The README's first command: `manage.py up` runs the whole embedded platform (SQLite, filesystem broker),
and a key holder gets a sound answer from each of the eight capabilities over HTTP, on the real models."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from email.message import Message

import pytest
from django.conf import settings
from PIL import Image

from tests.integration.processes import free_port

# Nothing set: the embedded default, which generates its own secrets on the first start.
EMBEDDED_ENV_DROPS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SECRET_KEY",
    "ALLIANCE_DATA_KEY",
    "ALLIANCE_DATA_KEYS_OLD",
    "ALLIANCE_WEBHOOK_SIGNING_KEY",
)


TOKEN = "up-test-metrics-token"


class Site:
    def __init__(self, port: int, key: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.key = key

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, Message]:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read(), response.headers  # names case-insensitive

    def run(self, capability: str, data: dict, params: dict | None = None) -> dict:
        status, body, _ = self.request(
            "POST", "/api/v1/jobs?wait=240", {"capability": capability, "input": data, "params": params or {}}
        )
        job = json.loads(body)
        assert status == 200 and job["status"] == "succeeded", job
        return job["output"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("up")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_ENV_DROPS}
    # The showcases' recordings (background jobs, tests/integration/test_recipes.py) would queue ahead of the
    # capabilities this test times.
    env.update(
        {
            "ALLIANCE_VAR_DIR": str(tmp_path / "var"),
            "PYTHONUNBUFFERED": "1",
            "ALLIANCE_METRICS_TOKEN": TOKEN,
            "ALLIANCE_RECORD_SHOWCASES": "0",
        }
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "up.log"
    with log_path.open("w") as log:
        up = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        key = None
        while key is None or "worker process ready" not in log_path.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
            match = re.search(r"^\s+(alk_\S+)$", log_path.read_text(), re.MULTILINE)
            key = match.group(1) if match else None
            time.sleep(0.3)
        yield Site(port, key)
    finally:
        os.kill(up.pid, signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    leftovers = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    assert leftovers == "", "gunicorn still running after Ctrl-C"
    assert (tmp_path / "var" / "alliance.sqlite3").exists()
    secrets_file = tmp_path / "var" / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert "ALLIANCE_DATA_KEY=" in secrets_file.read_text() and "Generated" in log_path.read_text()
    assert f"written as files to {tmp_path / 'var' / 'mail'}" in log_path.read_text()  # where the mail goes


def test_gallery_page(site):
    with urllib.request.urlopen(site.base + "/", timeout=10) as response:
        assert "Tilda, the AI fashion artist" in response.read().decode()


def test_keyword_extraction(site):
    output = site.run(
        "keyword_extraction", {"text": "Tilda designs fashion patterns for New York Fashion Week.", "top_k": 3}
    )
    assert any("fashion" in item["keyword"] or "tilda" in item["keyword"] for item in output["keywords"])


def test_text_classification(site):
    output = site.run(
        "text_classification",
        {"text": "The soup was cold and the waiter was rude. Never again.", "labels": ["complaint", "praise"]},
    )
    assert output["label"] == "complaint" and output["scores"]["complaint"] > 0.5


def test_question_answering_quotes_the_context(site):
    context = (
        "Tilda is an AI artist built by LG AI Research. Its fashion patterns appeared at New York Fashion "
        "Week in February 2022. The collection was made with designer Yoon-hee Park."
    )
    output = site.run("question_answering", {"question": "Who made the collection with Tilda?", "context": context})
    assert output["answer"] and output["answer"].lower() in context.lower()
    assert 0.0 <= output["score"] <= 1.0


def test_summarization_invents_no_numbers(site):
    text = (
        "The customer called about a double charge on the roaming plan. The agent confirmed the error and "
        "refunded 12,000 won within 10 minutes. The customer thanked the agent and ended the call. "
        "A follow-up survey was sent the next day."
    )
    output = site.run("summarization", {"text": text})
    assert output["summary"] and output["method"] in {"abstractive", "extractive"}
    for number in re.findall(r"\d[\d,.]*", output["summary"]):
        assert number.strip(".,") in text


def test_dialogue(site):
    output = site.run(
        "dialogue",
        {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
        {"temperature": 0, "max_new_tokens": 24},
    )
    assert output["message"]["role"] == "assistant" and "paris" in output["message"]["content"].lower()


def test_text_generation(site):
    output = site.run(
        "text_generation",
        {"prompt": "Write a one-line slogan for an AI fashion artist."},
        {"max_new_tokens": 24, "temperature": 0},
    )
    assert len(output["text"].split()) >= 3


def test_image_captioning_of_a_cat_photo_says_cat(site):
    from skimage import data as photos

    buffer = io.BytesIO()
    Image.fromarray(photos.chelsea()).save(buffer, format="JPEG")
    output = site.run("image_captioning", {"image": base64.b64encode(buffer.getvalue()).decode()})
    assert "cat" in output["caption"].lower()


def test_image_generation_serves_the_image_to_its_owner(site):
    output = site.run(
        "image_generation",
        {"prompt": "golden daisies on a deep blue field"},
        {"width": 128, "height": 128, "steps": 16, "seed": 7},
    )
    assert (output["image"]["width"], output["image"]["height"]) == (128, 128)
    status, content, headers = site.request("GET", output["image"]["url"])
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(content)).size == (128, 128)


def test_both_language_models_are_served(site):
    _, body, _ = site.request("GET", "/v1/models")
    assert {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"} <= {
        model["id"] for model in json.loads(body)["data"]
    }
    for model in ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"):
        body = {
            "capability": "text_generation",
            "model": model,
            "input": {"prompt": "Hi"},
            "params": {"max_new_tokens": 2},
        }
        status, answer, _ = site.request("POST", "/api/v1/jobs?wait=240", body)
        job = json.loads(answer)
        assert status == 200 and job["status"] == "succeeded" and job["model"] == model, job


def test_metrics_count_the_workers_jobs_on_the_web(site):
    """The worker's pool processes and the web share `up`'s metrics folder: one scrape of the web shows both."""
    site.run("keyword_extraction", {"text": "Tilda designs fashion patterns for New York Fashion Week.", "top_k": 2})
    request = urllib.request.Request(site.base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    finished, submitted = (_samples(text, name) for name in ("finished", "submitted"))
    assert finished and submitted, text[:2000]
    assert sum(finished) >= 1 and sum(finished) == sum(submitted)


def _samples(text: str, counter: str) -> list[float]:
    pattern = rf'^alliance_jobs_{counter}_total\{{[^}}]*capability="keyword_extraction"[^}}]*\}} (\S+)$'
    return [float(value) for value in re.findall(pattern, text, re.MULTILINE)]
