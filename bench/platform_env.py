"""A throwaway platform for a benchmark: PostgreSQL and Redis when they answer, else SQLite and the filesystem
broker, in a temp directory; torn down by the caller's ExitStack."""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PG_ADMIN = f"host={HOST} port=5432 user=postgres dbname=postgres connect_timeout=2"
INHERIT_NOT = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG")  # the bench sets its own


def pg_admin(*statements: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]  # fixed strings built from constants


def flush_redis(url: str) -> None:
    redis.Redis.from_url(url, socket_timeout=2).flushdb()


def manage(env: dict[str, str], *argv: str) -> str:
    proc = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"manage.py {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout.strip()


def platform_env(stack: ExitStack, *, database: str, redis_db: int, **extra: str) -> tuple[dict[str, str], Path]:
    """An environment for platform processes on fresh stores, migrated and seeded; prints which stores."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="alliance-bench-")))
    env = {k: v for k, v in os.environ.items() if k not in INHERIT_NOT}
    env.update(ALLIANCE_VAR_DIR=str(tmp), ALLIANCE_LOG_LEVEL="WARNING", **extra)
    env.setdefault("ALLIANCE_MODELS_DIR", str(ROOT / "var" / "models"))
    # Required on PostgreSQL; one of each for the whole run.
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    env.setdefault("ALLIANCE_DATA_KEY", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    env.setdefault("ALLIANCE_WEBHOOK_SIGNING_KEY", secrets.token_urlsafe(50))
    try:
        pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"CREATE DATABASE {database}")
        stack.callback(pg_admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        env["DATABASE_URL"] = f"postgres://postgres@{HOST}:5432/{database}"
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        print(f"postgresql unavailable ({type(exc).__name__}: {exc}); using sqlite")
    redis_url = f"redis://{HOST}:6379/{redis_db}"
    try:
        flush_redis(redis_url)
        stack.callback(flush_redis, redis_url)
        env.update(REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url)
    except Exception as exc:  # noqa: BLE001
        print(f"redis unavailable ({type(exc).__name__}: {exc}); using the filesystem broker")
    database_kind = "postgresql" if "DATABASE_URL" in env else "sqlite"
    print(f"backend: database={database_kind} broker={'redis' if 'CELERY_BROKER_URL' in env else 'filesystem'}")
    manage(env, "migrate", "--noinput")
    manage(env, "seed_alliance")
    return env, tmp


def start_gunicorn(
    env: dict[str, str], port: int, workers: int, threads: int, log: Path, stack: ExitStack, *, asgi: bool = False
) -> subprocess.Popen:
    """gunicorn on HOST:port, stopped by the stack; returns once it answers. asgi: what the platform serves
    (alliance.asgi, uvicorn workers; `threads` unused), else the former threaded WSGI server."""
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--workers", str(workers)]
    if asgi:
        cmd += ["alliance.asgi", "--worker-class", "uvicorn_worker.UvicornWorker"]
    else:
        cmd += ["alliance.wsgi", "--threads", str(threads)]
    log_file = stack.enter_context(log.open("w"))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    stack.callback(stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/api/v1/capabilities")
            ok = conn.getresponse().status == 401  # answering, and asking for a key
            conn.close()
            if ok:
                return proc
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 60 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000 if sorted_values else 0.0
