"""Real platform processes for integration tests: Celery workers and the web server (gunicorn, uvicorn workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from alliance.web import web_command
from inference.worker import worker_command

ROOT = Path(settings.BASE_DIR)


def database_url() -> str:
    """This test run's database (the test database pytest-django made), as a DATABASE_URL."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    """The environment of a process that shares this test run's database, broker and cache."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "alliance.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "ALLIANCE_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ALLIANCE_JOB_HEARTBEAT_SECONDS": "0.5",
        "ALLIANCE_JOB_STALE_SECONDS": "3",
        "ALLIANCE_JOB_REAPER_INTERVAL_SECONDS": "1",
        "ALLIANCE_JOB_REENQUEUE_SECONDS": "20",
        "ALLIANCE_BROKER_VISIBILITY_TIMEOUT": "10",
        "ALLIANCE_TORCH_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


class PlatformProcess:
    def __init__(self, command: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"process exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{text!r} not seen within {timeout}s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: the main process and its children die mid-work."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def start_worker(
    tmp_path: Path, name: str, *, queues: str | None = None, beat: bool = True, **env: str
) -> PlatformProcess:
    command = worker_command(
        queues=queues, beat=beat, concurrency=1, hostname=f"{name}@%h", schedule=tmp_path / (name + "-beat")
    )
    worker = PlatformProcess(command, service_env(**env), tmp_path / f"{name}.log")
    worker.wait_for_log("worker process ready")
    worker.wait_for_log(" ready.")
    return worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_web(tmp_path: Path, *, workers: int = 3, **env: str) -> tuple[PlatformProcess, int]:
    port = free_port()
    command = web_command(bind=f"127.0.0.1:{port}", workers=workers)
    web = PlatformProcess(command, service_env(**env), tmp_path / "web.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return web, port
        except OSError:
            time.sleep(0.2)
    web.stop()
    raise TimeoutError(f"web server did not start:\n{web.log()[-3000:]}")
