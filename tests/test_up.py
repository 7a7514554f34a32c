"""The README's first command: `manage.py up` runs the whole embedded platform (SQLite, filesystem broker)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings

from tests.integration.processes import free_port

EMBEDDED_ENV_DROPS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def _post_json(url: str, key: str, body: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=90) as response:
        return json.loads(response.read())


def test_up_serves_and_works_a_keyword_job_end_to_end(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_ENV_DROPS}
    env.update({"ALLIANCE_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"})
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
        deadline = time.monotonic() + 120
        key = None
        while time.monotonic() < deadline and key is None:
            match = re.search(r"^\s+(alk_\S+)$", log_path.read_text(), re.MULTILINE)
            key = match.group(1) if match else None
            assert up.poll() is None, log_path.read_text()
            time.sleep(0.3)
        assert key, log_path.read_text()
        while "worker process ready" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        job = _post_json(
            f"http://127.0.0.1:{port}/api/v1/jobs?wait=60",
            key,
            {
                "capability": "keyword_extraction",
                "input": {"text": "Tilda designs fashion patterns for New York Fashion Week runways.", "top_k": 3},
            },
        )
        assert job["status"] == "succeeded", job
        assert any("fashion" in item["keyword"] or "tilda" in item["keyword"] for item in job["output"]["keywords"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert "Tilda, the AI fashion artist" in response.read().decode()
    finally:
        os.kill(up.pid, signal.SIGINT)
        try:
            up.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
    leftovers = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    assert leftovers == "", "gunicorn still running after Ctrl-C"
    assert (tmp_path / "var" / "alliance.sqlite3").exists()
