"""The Procfile is the distributed deployment: its lines, run as written, serve the whole platform.

Each process runs in its own working directory with its own ALLIANCE_VAR_DIR, the code found through PYTHONPATH,
as if on its own machine; what they share is only what a deployment shares: PostgreSQL, Redis, the media root, the
secrets (and each machine's prepared models). docker-compose.yml runs the same lines.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from email.message import Message
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from PIL import Image

from alliance.web import web_command
from inference.models import Job, StoredFile, TuningJob
from partners.models import Partner
from tests.factories import make_key
from tests.integration.processes import ROOT, PlatformProcess, database_url, free_port
from tests.integration.test_tuning_pipeline import amazon_reviews

WORKERS = ("worker-embeddings", "worker-llm", "worker-vision", "worker-tuning")
FAMILY_QUEUES = {
    "worker-embeddings": "embeddings,default,webhooks",
    "worker-llm": "llm",
    "worker-vision": "vision",
    "worker-tuning": "tuning",
}


METRICS_FOLDER = "export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$(mktemp -d)} && "


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


def test_the_procfile_has_one_worker_per_family_beat_web_and_release():
    processes = procfile()
    assert set(processes) == {"release", "web", "beat", *WORKERS}
    for name, queues in FAMILY_QUEUES.items():
        assert processes[name].startswith(METRICS_FOLDER), name  # each start, a new multiprocess metrics folder
        argv = shlex.split(processes[name].split("&&")[-1])
        assert argv[:5] == ["exec", "celery", "-A", "alliance", "worker"]
        assert argv[argv.index("-Q") + 1] == queues
    served = {queue for queues in FAMILY_QUEUES.values() for queue in queues.split(",")}
    assert served == set(settings.ALLIANCE_QUEUES)
    assert "${PORT:-8000}" in processes["web"] and processes["web"].startswith(METRICS_FOLDER)
    web = shlex.split(processes["web"].split("&&")[-1])
    served = web_command(bind="0.0.0.0:${PORT:-8000}", workers=0)  # what `up` and the tests run, by this interpreter
    assert web[:2] == ["exec", "gunicorn"] and web[2:-1] == served[3:-1], web  # ASGI, uvicorn workers
    assert "migrate" in processes["release"] and "seed_alliance" in processes["release"]


def test_docker_compose_runs_the_procfile_lines():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, command in procfile().items():
        assert services[name]["command"] == ["sh", "-c", command.replace("$", "$$")], name
    for name in ("web", *WORKERS):
        assert services[name]["depends_on"]["release"] == {"condition": "service_completed_successfully"}
        assert "healthcheck" in services[name], name
        assert "media:/data/media" in services[name]["volumes"], name
    for name in WORKERS:
        assert f"worker_alive {name.removeprefix('worker-')}@$$HOSTNAME" in services[name]["healthcheck"]["test"][1]
    assert "/readyz" in services["web"]["healthcheck"]["test"][-1]
    for name in ("DJANGO_SECRET_KEY", "ALLIANCE_DATA_KEY", "ALLIANCE_WEBHOOK_SIGNING_KEY"):
        assert services["web"]["environment"][name].startswith(f"${{{name}:?"), name


class Site:
    def __init__(self, port: int, key: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {key}"}

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes, Message]:
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers={**self.headers, **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read(), response.headers  # names case-insensitive
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers

    def post_json(self, path: str, body: dict) -> dict:
        status, content, _ = self.request(
            "POST", path, json.dumps(body).encode(), **{"Content-Type": "application/json"}
        )
        assert status in (200, 201, 202), (status, content)
        return json.loads(content)

    def upload(self, path: str, filename: str, content: bytes, **fields: str) -> dict:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, body, _ = self.request(
            "POST", path, b"".join(parts), **{"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        assert status == 201, (status, body)
        return json.loads(body)

    def get_json(self, path: str) -> dict:
        status, content, _ = self.request("GET", path)
        assert status == 200, (status, content)
        return json.loads(content)

    def finished(self, path: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        item = self.get_json(path)
        while item["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, item
            time.sleep(0.3)
            item = self.get_json(path)
        return item


class Deployment:
    """The Procfile's processes, each in its own directory, sharing the stores and the media root only."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.media = tmp_path / "shared-media"
        self.media.mkdir()
        self.port = free_port()
        self.lines = procfile()
        self.secret = secrets.token_urlsafe(50)
        self.data_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        self.signing_key = secrets.token_urlsafe(50)
        self.metrics_token = secrets.token_urlsafe(32)
        self.processes: dict[str, PlatformProcess] = {}

    def env(self, home: Path) -> dict[str, str]:
        inherited = ("ALLIANCE_", "DJANGO_", "CELERY_", "DATABASE_URL", "REDIS_URL", "PYTHONPATH")
        env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            DATABASE_URL=database_url(),
            REDIS_URL=settings.REDIS_URL,
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            DJANGO_SECRET_KEY=self.secret,
            ALLIANCE_DATA_KEY=self.data_key,
            ALLIANCE_WEBHOOK_SIGNING_KEY=self.signing_key,
            ALLIANCE_MEDIA_ROOT=str(self.media),
            ALLIANCE_VAR_DIR=str(home / "var"),
            ALLIANCE_MODELS_DIR=str(settings.ALLIANCE_MODELS_DIR),
            ALLIANCE_TORCH_THREADS="1",
            ALLIANCE_JOB_REAPER_INTERVAL_SECONDS="2",
            PORT=str(self.port),
            WEB_CONCURRENCY="2",
            ALLIANCE_METRICS_TOKEN=self.metrics_token,
        )
        return env

    def home(self, name: str) -> Path:
        home = self.tmp_path / name
        home.mkdir()
        return home

    def release(self) -> subprocess.CompletedProcess:
        home = self.home("release")
        return subprocess.run(
            ["sh", "-c", self.lines["release"]],
            cwd=home,
            env=self.env(home),
            capture_output=True,
            text=True,
            timeout=180,
        )

    def start(self, name: str) -> PlatformProcess:
        home = self.home(name)
        process = PlatformProcess(["sh", "-c", self.lines[name]], self.env(home), self.tmp_path / f"{name}.log", home)
        self.processes[name] = process
        return process

    def wait_for_web(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as response:
                    return response.read().decode()
            except OSError:
                assert self.processes["web"].process.poll() is None, self.processes["web"].log()[-3000:]
                time.sleep(0.3)
        raise TimeoutError(self.processes["web"].log()[-3000:])

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


def _submitted_total(site: Site, token: str) -> float:
    status, content, _ = site.request("GET", "/metrics", Authorization=f"Bearer {token}")
    assert status == 200, (status, content[:300])
    samples = re.findall(r"^alliance_jobs_submitted_total\{[^}]*\} (\S+)$", content.decode(), re.MULTILINE)
    assert samples, content.decode()[:2000]
    return sum(float(value) for value in samples)


def _jpeg_of_a_cat() -> bytes:
    from skimage import data as photos

    buffer = io.BytesIO()
    Image.fromarray(photos.chelsea()).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.services
def test_the_procfile_processes_serve_every_capability_tuning_and_images(live_services, tmp_path):
    deployment = Deployment(tmp_path)
    released = deployment.release()
    assert released.returncode == 0, released.stdout + released.stderr
    partner = Partner.objects.get(slug="lg-ai-research")  # seeded by the release line
    _, key = make_key(partner)
    try:
        for name in ("web", "beat", *WORKERS):
            deployment.start(name)
        for name in WORKERS:
            deployment.processes[name].wait_for_log("worker process ready", timeout=240)
            deployment.processes[name].wait_for_log(" ready.", timeout=60)
        gallery = deployment.wait_for_web()
        assert "Tilda, the AI fashion artist" in gallery  # the release's seed, served by the web
        site = Site(deployment.port, key)
        _run_everything(site, gallery, web_static_root=tmp_path / "web" / "var" / "static")
        # Both gunicorn workers answered submissions; one scrape sums them (the line's multiprocess folder).
        assert _submitted_total(site, deployment.metrics_token) == Job.objects.count()
        deployment.processes["beat"].wait_for_log("Sending due task reap-stale-jobs")
        deployment.processes["worker-embeddings"].wait_for_log("inference.tasks.reap_stale_jobs")
    finally:
        deployment.stop()
    logs = {name: deployment.processes[name].log() for name in WORKERS}
    for name, capabilities in {
        "worker-embeddings": ("keyword_extraction", "text_classification"),
        "worker-llm": ("dialogue", "text_generation", "summarization", "question_answering"),
        "worker-vision": ("image_generation", "image_captioning"),
    }.items():
        ran = set(re.findall(r"claimed batch \S+: \d+ (\w+) job", logs[name]))
        assert ran == set(capabilities), (name, ran)
    assert "run_tuning_job" in logs["worker-tuning"] and "claimed batch" not in logs["worker-tuning"]
    # Each process kept its state in its own directory (beat's schedule in its working directory); the uploads
    # and outputs went to the shared media root.
    assert list((tmp_path / "beat").glob("celerybeat-schedule*")) and not list(ROOT.glob("celerybeat-schedule*"))
    shared = {path.name for path in (tmp_path / "shared-media").iterdir()}
    assert shared >= {"datasets", "adapters", "generated", "image"}


def _run_everything(site: Site, gallery: str, web_static_root: Path) -> None:
    static = re.search(r'(?:href|src)="/static/([^"]+)"', gallery)
    assert static, "the gallery links no static file"
    assert site.request("GET", f"/static/{static.group(1)}")[0] == 200
    assert (web_static_root / static.group(1)).exists()  # collected by the web line into its own ALLIANCE_VAR_DIR

    rows = amazon_reviews("training", 12)
    dataset = site.upload(
        "/api/v1/datasets", "reviews.jsonl", "\n".join(json.dumps(row) for row in rows).encode(), task="classification"
    )
    tuning = site.post_json(
        "/api/v1/tuning-jobs",
        {"dataset": dataset["id"], "task": "classification", "hyperparameters": {"epochs": 1, "seed": 1}},
    )
    photo = site.upload("/api/v1/files", "chelsea.jpg", _jpeg_of_a_cat(), purpose="image")
    context = (
        "Tilda is an AI artist built by LG AI Research. Its fashion patterns appeared at New York Fashion "
        "Week in February 2022."
    )
    requests = {
        "question_answering": ({"question": "Who built Tilda?", "context": context}, {}),
        "text_classification": (
            {"text": "The soup was cold and the waiter was rude.", "labels": ["complaint", "praise"]},
            {},
        ),
        "summarization": (
            {"text": "The customer called about a double charge. The agent refunded it. The customer thanked her."},
            {"max_sentences": 1},
        ),
        "dialogue": (
            {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
            {"temperature": 0, "max_new_tokens": 12},
        ),
        "text_generation": ({"prompt": "A slogan for an AI fashion artist:"}, {"temperature": 0, "max_new_tokens": 12}),
        "keyword_extraction": ({"text": "Tilda designs fashion patterns for New York Fashion Week.", "top_k": 3}, {}),
        "image_generation": ({"prompt": "golden daisies"}, {"width": 64, "height": 64, "steps": 4, "seed": 7}),
        "image_captioning": ({"image": photo["id"]}, {}),
    }
    submitted = {
        capability: site.post_json("/api/v1/jobs", {"capability": capability, "input": data, "params": params})
        for capability, (data, params) in requests.items()
    }
    outputs = {}
    for capability, job in submitted.items():
        done = site.finished(f"/api/v1/jobs/{job['id']}", timeout=150)
        assert done["status"] == "succeeded", done
        outputs[capability] = done["output"]
    assert outputs["question_answering"]["answer"] and outputs["text_classification"]["label"] == "complaint"
    assert outputs["summarization"]["summary"] and outputs["dialogue"]["message"]["content"]
    assert outputs["text_generation"]["text"] and outputs["keyword_extraction"]["keywords"]
    assert "cat" in outputs["image_captioning"]["caption"].lower()  # the web's upload, read by the vision worker

    status, content, headers = site.request("GET", outputs["image_generation"]["image"]["url"])
    assert status == 200 and headers["Content-Type"] == "image/png"  # the vision worker's file, served by the web
    assert Image.open(io.BytesIO(content)).size == (64, 64)
    assert StoredFile.objects.filter(purpose="generated").count() == 1

    tuned = site.finished(f"/api/v1/tuning-jobs/{tuning['id']}", timeout=150)
    assert tuned["status"] == "succeeded", tuned
    assert TuningJob.objects.get(pk=tuning["id"]).tuned_model.labels == ["great", "other"]
    # The tuning worker's adapter, read from the shared media root by the embeddings worker.
    job = site.post_json(
        "/api/v1/jobs",
        {"capability": "text_classification", "model": tuned["model"], "input": {"text": rows[0]["text"]}},
    )
    done = site.finished(f"/api/v1/jobs/{job['id']}", timeout=60)
    assert done["status"] == "succeeded" and done["output"]["label"] in ("great", "other"), done
    assert Job.objects.filter(status="succeeded").count() == len(requests) + 1
