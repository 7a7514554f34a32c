"""Gateway overhead: a bare DRF endpoint and one durable INSERT (the floor of a submission) against job submission, on
one gunicorn server; and bulk submission: jobs accepted per second through one batch (POST /api/v1/batches) against
single submissions (`bulk_vs_single`).

Usage: .venv/bin/python bench/gateway.py [--quick] [--asgi] [--workers 2] [--threads 4] [--concurrency 8]
       [--batch-size N] [--database NAME] [--redis-db N]

Uses PostgreSQL (127.0.0.1:5432, a fresh `alliance_bench` database) and Redis (127.0.0.1:6379 db 14) when they
answer, else SQLite and the filesystem broker in a temp dir. No Celery worker runs: submitted jobs stay queued.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import psycopg
from platform_env import HOST, free_port, manage, pct, platform_env, start_gunicorn

SLUG = "lg-ai-research"
CAPABILITY = "keyword_extraction"
INPUT = {"text": "Alliance partners tune language models on data."}
BODY = json.dumps({"capability": CAPABILITY, "input": INPUT})


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0  # merge() sums it: callers average over parallel parts, rounds add up

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.errors.update(other.errors)
        self.elapsed += other.elapsed


def _connection_loop(port: int, path: str, headers: dict[str, str], start_at: float, end_at: float) -> Result:
    """One keep-alive connection sending requests back to back until end_at (monotonic, system-wide)."""
    result = Result()
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    time.sleep(max(0.0, start_at - time.monotonic()))
    while (t0 := time.monotonic()) < end_at:
        try:
            conn.request("POST", path, body=BODY, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            result.errors[type(exc).__name__] += 1
            conn.close()
            continue
        if 200 <= resp.status < 300:
            result.latencies.append(time.monotonic() - t0)
        else:
            result.errors[f"{resp.status} {payload[:120].decode(errors='replace')}"] += 1
    result.elapsed = time.monotonic() - start_at
    conn.close()
    return result


def _client_process(
    port: int, path: str, headers: dict[str, str], conns: int, start_at: float, end_at: float
) -> Result:
    total = Result()
    with ThreadPoolExecutor(conns) as pool:
        futures = [pool.submit(_connection_loop, port, path, headers, start_at, end_at) for _ in range(conns)]
        for future in futures:
            total.merge(future.result())
    total.elapsed /= conns
    return total


def hammer(
    procs: ProcessPoolExecutor, args: argparse.Namespace, path: str, headers: dict[str, str], secs: float
) -> Result:
    """All connections, split over the client processes, on one endpoint for secs seconds."""
    start_at, n = time.monotonic() + 0.3, args.client_procs
    conns = [args.concurrency // n + (i < args.concurrency % n) for i in range(n)]
    futures = [procs.submit(_client_process, args.port, path, headers, c, start_at, start_at + secs) for c in conns]
    total = Result()
    for future in futures:
        total.merge(future.result())
    total.elapsed /= len(futures)
    return total


def batch_seconds(port: int, key: str, size: int) -> float:
    """Seconds until one batch of `size` requests is accepted (201) on one connection: validated, its jobs inserted
    and charged in one transaction, one broker message sent."""
    requests = [{"custom_id": f"r{i}", "input": INPUT} for i in range(size)]
    body = json.dumps({"capability": CAPABILITY, "requests": requests})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    t0 = time.monotonic()
    conn.request("POST", "/api/v1/batches", body=body, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    elapsed = time.monotonic() - t0
    conn.close()
    if resp.status != 201:
        raise RuntimeError(f"batch refused: {resp.status} {payload[:300].decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s per endpoint instead of 20 s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per endpoint")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=0, help="requests per batch (default 1000; 500 with --quick)")
    parser.add_argument("--batches", type=int, default=3, help="batches timed, one after another (median taken)")
    parser.add_argument("--asgi", action="store_true", help="the server the platform runs (uvicorn workers)")
    parser.add_argument("--database", default="alliance_bench", help="PostgreSQL database, created and dropped")
    parser.add_argument("--redis-db", type=int, default=14, help="Redis database number, flushed before and after")
    args = parser.parse_args()
    args.batch_size = args.batch_size or (500 if args.quick else 1000)
    args.port = args.port or free_port()
    args.client_procs = max(1, min(args.client_procs, args.concurrency))
    seconds = 5.0 if args.quick else 20.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with ExitStack() as stack:
        env, tmp = platform_env(stack, database=args.database, redis_db=args.redis_db, ALLIANCE_BENCH_ENDPOINTS="1")
        key = manage(env, "issue_api_key", SLUG).splitlines()[-1]
        manage(env, "set_quota", SLUG, CAPABILITY, "--monthly-units", str(10**12), "--rpm", str(10**9))
        if "DATABASE_URL" in env:  # the floor's table (bench/urls.py)
            with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://"), autocommit=True) as conn:
                conn.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, body text NOT NULL)")
        start_gunicorn(env, args.port, args.workers, args.threads, tmp / "gunicorn.log", stack, asgi=args.asgi)
        server = f"{args.workers} uvicorn workers" if args.asgi else f"{args.workers} workers x {args.threads} threads"
        print(
            f"server: gunicorn {server} on {HOST}:{args.port}; "
            f"client: {args.concurrency} keep-alive connections in {args.client_procs} processes; "
            f"{seconds:g} s per endpoint in {args.rounds} rounds"
        )

        json_headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        endpoints: dict[str, tuple[str, dict[str, str]]] = {
            "bare": ("/api/bench/bare", json_headers),
            **({"insert": ("/api/bench/insert", json_headers)} if "DATABASE_URL" in env else {}),  # PostgreSQL's
            "submit": ("/api/v1/jobs?wait=0", {**json_headers, "Authorization": f"Bearer {key}"}),
        }
        results = {name: Result() for name in endpoints}
        procs = stack.enter_context(ProcessPoolExecutor(args.client_procs))
        for name, (path, headers) in endpoints.items():  # warm-up: connections, caches, first inserts
            warm = hammer(procs, args, path, headers, 1.0)
            if not warm.latencies:
                raise RuntimeError(f"warm-up of {name} got no 2xx: {dict(warm.errors)}")
        for _ in range(args.rounds):
            for name, (path, headers) in endpoints.items():
                results[name].merge(hammer(procs, args, path, headers, seconds / args.rounds))
        # Added latency is read with one connection, so it is not the queueing of a saturated server.
        single = argparse.Namespace(**{**vars(args), "concurrency": 1, "client_procs": 1})
        unloaded = {name: Result() for name in endpoints}
        for _ in range(args.rounds):
            for name, (path, headers) in endpoints.items():
                unloaded[name].merge(hammer(procs, single, path, headers, seconds / args.rounds / 2))

        stats: dict[str, tuple[float, float]] = {}  # name -> (requests/s, p50 ms)
        print(f"\n{'endpoint':<8} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
        for name, res in results.items():
            lat = sorted(res.latencies)
            rps = len(lat) / res.elapsed if res.elapsed else 0.0
            stats[name] = (rps, pct(lat, 0.5))
            n_err = sum(res.errors.values())
            print(
                f"{name:<8} {len(lat):>9} {n_err:>7} {rps:>9.1f} {pct(lat, 0.5):>8.2f} {pct(lat, 0.9):>8.2f} "
                f"{pct(lat, 0.99):>8.2f}"
            )
        for name, res in results.items():
            for err, count in res.errors.most_common(5):
                print(f"  {name} error x{count}: {err}")

        batch_seconds(args.port, key, 10)  # warm-up
        batch_times = sorted(batch_seconds(args.port, key, args.batch_size) for _ in range(args.batches))
        batch_median = batch_times[len(batch_times) // 2]  # seconds
        bulk_rps = args.batch_size / batch_median

        single_p50 = {name: pct(sorted(res.latencies), 0.5) for name, res in unloaded.items()}
        single_p50.setdefault("insert", 0.0)
        print(
            f"one connection: bare p50 {single_p50['bare']:.2f} ms, insert p50 {single_p50['insert']:.2f} ms, "
            f"submit p50 {single_p50['submit']:.2f} ms ({len(unloaded['bare'].latencies)} / "
            f"{len(unloaded.get('insert', Result()).latencies)} / {len(unloaded['submit'].latencies)} requests)"
        )

    (bare_rps, bare_p50), (submit_rps, submit_p50) = stats["bare"], stats["submit"]
    insert_rps = stats.get("insert", (0.0, 0.0))[0]
    ratio = submit_rps / bare_rps if bare_rps else 0.0
    print(f"saturated: p50 overhead {submit_p50 - bare_p50:.2f} ms at {args.concurrency} connections")
    single_rps = 1000.0 / single_p50["submit"] if single_p50["submit"] else 0.0
    print(
        f"bulk: one batch of {args.batch_size} accepted in {batch_median * 1000:.0f} ms (median of "
        f"{args.batches}) on one connection = {bulk_rps:.0f} jobs/s; single submissions: {submit_rps:.1f} jobs/s "
        f"saturated, {single_rps:.1f} jobs/s on one connection ({bulk_rps / single_rps if single_rps else 0:.1f}x)"
    )
    print(
        f"gateway: bare_rps={bare_rps:.1f} insert_rps={insert_rps:.1f} submit_rps={submit_rps:.1f} "
        f"submit_vs_bare={ratio:.3f} submit_vs_insert={submit_rps / insert_rps if insert_rps else 0:.3f} "
        f"p50_overhead_ms={single_p50['submit'] - single_p50['bare']:.2f} "
        f"p50_over_insert_ms={single_p50['submit'] - single_p50['insert']:.2f} "
        f"bulk_rps={bulk_rps:.0f} bulk_vs_single={bulk_rps / submit_rps if submit_rps else 0:.1f}"
    )


if __name__ == "__main__":
    main()
