"""Operating the platform on the real stack: /readyz follows PostgreSQL and Redis outages (through a proxy and a
throwaway Redis, so the machine's shared servers keep running), and a live worker's heartbeat, metrics and log
lines reach the web."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from tests.integration.processes import database_url, free_port, start_web
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.services


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def _until(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _throwaway_redis(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    assert _until(
        lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG",
        10,
    )
    return server


def test_readyz_goes_unready_while_postgresql_or_redis_is_down_and_ready_after(live_services, tmp_path):
    redis_port, pg_port = free_port(), free_port()
    redis_server = _throwaway_redis(redis_port)
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432), port=pg_port)
    proxy.start()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    web_database = database_url().replace(f":{connection.settings_dict['PORT'] or 5432}/", f":{pg_port}/")
    web, port = start_web(
        tmp_path, workers=1, DATABASE_URL=web_database, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url
    )
    try:
        status, body = _get(port, "/readyz")
        assert status == 200, body
        assert _get(port, "/healthz")[0] == 200

        redis_server.terminate()
        redis_server.wait(10)
        status, body = _get(port, "/readyz")
        assert status == 503 and body["status"] == "unready"
        assert not body["checks"]["broker"]["ok"] and body["checks"]["database"]["ok"], body
        assert _get(port, "/healthz")[0] == 200  # alive, only not ready

        redis_server = _throwaway_redis(redis_port)
        assert _until(lambda: _get(port, "/readyz")[0] == 200), _get(port, "/readyz")

        proxy.stop()
        status, body = _get(port, "/readyz")
        assert status == 503 and not body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"], body
        assert _get(port, "/healthz")[0] == 200

        proxy.start()
        assert _until(lambda: _get(port, "/readyz")[0] == 200), _get(port, "/readyz")
    finally:
        web.stop()
        proxy.stop()
        redis_server.terminate()
        redis_server.wait(10)
