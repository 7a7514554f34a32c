"""The one place that spells the web server's command line for the code that starts it (`up`, the tests, the
benchmarks): gunicorn with uvicorn workers serving alliance.asgi. The Procfile, docker-compose.yml and the Dockerfile
spell out the same command."""

from __future__ import annotations

import sys

WORKER_CLASS = "uvicorn_worker.UvicornWorker"


def web_command(*, bind: str, workers: int, access_log: bool = False) -> list[str]:
    """gunicorn serving alliance.asgi on `bind` (host:port) with `workers` uvicorn worker processes, run by this
    interpreter. A request that waits on a job holds no thread (api.waiting); other views run in threads."""
    command = [sys.executable, "-m", "gunicorn", "alliance.asgi", "--worker-class", WORKER_CLASS]
    command += ["--bind", bind, "--workers", str(workers)]
    if access_log:
        command += ["--access-logfile", "-"]
    return command
