"""Waiting clients: N clients each hold a `POST /api/v1/jobs?wait=60` on ONE web process, and an unrelated
`GET /api/v1/jobs` is timed against its idle value on the same process (wait_isolation_ratio = loaded p50 / idle p50;
goal <= 2). Side by side in one run: the platform's server (gunicorn, one uvicorn worker: alliance.asgi) and the
former threaded server (gunicorn, one worker x --threads threads: alliance.wsgi), whose waiting requests each hold a
thread that polls the job row; there an unrelated request queues behind the waits, and its time is cut at
--get-timeout (the ratio is then a lower bound, marked >=). Also measured on the platform's server: the web worker's
threads while the clients wait, and how long all the waiters take to answer once their jobs are canceled.

Usage: .venv/bin/python bench/waiting.py [--quick] [--clients 200] [--threads 8] [--redis-db 13] [--no-threaded]

Uses PostgreSQL (127.0.0.1:5432, a fresh `alliance_bench_waiting` database) and Redis (127.0.0.1:6379, --redis-db,
flushed) when they answer, else SQLite and the filesystem broker. No Celery worker runs: every job stays queued, so
each waiting client waits until its job is canceled (or the server stops).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psycopg
from platform_env import HOST, free_port, manage, platform_env, start_gunicorn

SLUG = "lg-ai-research"
BODY = json.dumps({"capability": "keyword_extraction", "input": {"text": "Alliance partners tune models."}})


def call(port: int, key: str, method: str, path: str, body: str | None, timeout: float) -> tuple[int, bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        conn.close()


def list_p50(port: int, key: str, n: int, timeout: float) -> tuple[float, int]:
    """p50 of GET /api/v1/jobs in seconds (a request cut at `timeout` counts as `timeout`), and how many were cut."""
    times, cut = [], 0
    for _ in range(n):
        try:
            status, _, elapsed = call(port, key, "GET", "/api/v1/jobs?status=succeeded", None, timeout)
            assert status == 200, status
        except TimeoutError:
            elapsed, cut = timeout, cut + 1
        times.append(elapsed)
    return statistics.median(times), cut


def jobs_in_db(env: dict[str, str]) -> int:
    url = env.get("DATABASE_URL")
    if not url:
        return -1
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM inference_job").fetchone()
        return int(row[0]) if row else 0


def threads_of_web_worker(master: subprocess.Popen) -> int:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    return sum(len(list(Path(f"/proc/{child}/task").iterdir())) for child in children)


def run_server(args: argparse.Namespace, env: dict[str, str], tmp: Path, key: str, *, asgi: bool) -> dict[str, float]:
    """Idle p50, then p50 with `clients` waits held; returns the figures for this server."""
    port = free_port()
    with ExitStack() as server_stack:
        name = "asgi" if asgi else "threaded"
        master = start_gunicorn(env, port, 1, args.threads, tmp / f"{name}.log", server_stack, asgi=asgi)
        list_p50(port, key, 20, args.get_timeout)  # warm: connections, caches
        idle, _ = list_p50(port, key, args.gets, args.get_timeout)
        before = jobs_in_db(env)
        pool = ThreadPoolExecutor(max_workers=args.clients)
        waits: list[Future] = [
            pool.submit(call, port, key, "POST", "/api/v1/jobs?wait=60", BODY, 90) for _ in range(args.clients)
        ]
        deadline = time.monotonic() + (60 if asgi else 10)  # the threaded server admits only as many as threads
        while jobs_in_db(env) - before < args.clients and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        waiting = jobs_in_db(env) - before
        threads = threads_of_web_worker(master)
        loaded, cut = list_p50(port, key, args.gets if asgi else args.threaded_gets, args.get_timeout)
        figures = {"idle": idle, "loaded": loaded, "cut": cut, "waiting": waiting, "threads": threads}
        if asgi:
            early = [f for f in waits if f.done()]
            assert not early, [f.result()[:2] for f in early[:3]]
            canceled = time.monotonic()
            with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                ids = [str(row[0]) for row in conn.execute("SELECT id FROM inference_job WHERE status = 'queued'")]
            with ThreadPoolExecutor(max_workers=8) as cancels:
                list(cancels.map(lambda i: call(port, key, "POST", f"/api/v1/jobs/{i}/cancel", None, 30), ids))
            answers = [f.result(timeout=60) for f in waits]
            figures["wake_all"] = time.monotonic() - canceled
            figures["answered_200"] = sum(1 for status, _, _ in answers if status == 200)
        server_stack.close()  # the threaded server's waiters end with the server
        pool.shutdown(wait=True, cancel_futures=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 clients, fewer timed requests")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8, help="threads of the former threaded server (`up`: 8)")
    parser.add_argument("--gets", type=int, default=30, help="timed GET /api/v1/jobs, idle and loaded")
    parser.add_argument("--threaded-gets", type=int, default=3, help="timed GETs on the loaded threaded server")
    parser.add_argument("--get-timeout", type=float, default=5.0)
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--no-threaded", action="store_true", help="skip the former threaded server")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.gets = min(args.clients, 50), 15
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with ExitStack() as stack:
        env, tmp = platform_env(
            stack,
            database="alliance_bench_waiting",
            redis_db=args.redis_db,
            ALLIANCE_API_KEY_MAX_WAITING=str(args.clients + 10),
            ALLIANCE_DEFAULT_RPM=str(10**6),
        )
        if "DATABASE_URL" not in env:
            raise SystemExit("bench/waiting.py needs PostgreSQL (it counts the waiting jobs there)")
        key = manage(env, "issue_api_key", SLUG).splitlines()[-1]
        print(f"{args.clients} clients each hold POST /api/v1/jobs?wait=60 on one web process; no worker runs")
        servers = {"asgi": run_server(args, env, tmp, key, asgi=True)}
        if not args.no_threaded:
            servers["threaded"] = run_server(args, env, tmp, key, asgi=False)

    print(f"\n{'server':<34} {'waiting':>7} {'threads':>7} {'idle p50 ms':>11} {'loaded p50 ms':>13} {'ratio':>7}")
    labels = {"asgi": "gunicorn + uvicorn (alliance.asgi)", "threaded": f"gunicorn 1x{args.threads} threads (wsgi)"}
    for name, fig in servers.items():
        bound = ">=" if fig["cut"] else ""
        loaded = f"{bound}{fig['loaded'] * 1000:.1f}"
        ratio = f"{bound}{fig['loaded'] / fig['idle']:.2f}"
        print(
            f"{labels[name]:<34} {fig['waiting']:>7} {fig['threads']:>7} {fig['idle'] * 1000:>11.1f} "
            f"{loaded:>13} {ratio:>7}"
        )
    asgi = servers["asgi"]
    print(
        f"asgi: all {asgi['answered_200']} of {args.clients} waiters answered 200 within "
        f"{asgi['wake_all'] * 1000:.0f} ms of the first cancel (the cancels themselves included)"
    )
    pairs = {
        "waiting_clients": args.clients,
        "idle_p50_ms": f"{asgi['idle'] * 1000:.1f}",
        "loaded_p50_ms": f"{asgi['loaded'] * 1000:.1f}",
        "wait_isolation_ratio": f"{asgi['loaded'] / asgi['idle']:.2f}",
        "web_threads_while_waiting": asgi["threads"],
        "wake_all_ms": f"{asgi['wake_all'] * 1000:.0f}",
    }
    if "threaded" in servers:
        old = servers["threaded"]
        pairs["threaded_waiting"] = old["waiting"]
        pairs["threaded_loaded_p50_ms"] = f"{'>=' if old['cut'] else ''}{old['loaded'] * 1000:.0f}"
        pairs["threaded_wait_isolation_ratio"] = f"{'>=' if old['cut'] else ''}{old['loaded'] / old['idle']:.1f}"
    print(" ".join(f"{k}={v}" for k, v in pairs.items()))


if __name__ == "__main__":
    main()
