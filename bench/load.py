"""Load: a mixed workload (submit, poll, list, usage) from many concurrent clients against gunicorn with
PostgreSQL, Redis and a worker, for a fixed time; then how submission latency changes when the job and usage
tables hold a million rows.

Usage: .venv/bin/python bench/load.py [--quick] [--clients 16] [--seconds 30] [--rows 1000000]

Last line: `load: rps=... p50_ms=... p99_ms=... errors=... latency_at_1m_rows_ratio=...
serving_latency_at_1m_rows_ratio=... rows=...`. The headline ratio is the web path's: the p50 of single-connection
submissions with the worker paused (SIGSTOP) after the bulk rows over the same before them; the serving ratio is the
same with the worker loaded and serving each job as it comes. Each is measured with no backlog left from before.
The bulk rows are a year of history as the platform writes it: time-ordered job ids (alliance.ids.uuid7), one charge
per job. Before and after them, EXPLAIN ANALYZE of the statements one submission sends (bench/explain_submit.py)
shows which, if any, grows with the tables.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psycopg
from platform_env import HOST, ROOT, free_port, manage, pct, platform_env, start_gunicorn

sys.path.insert(0, str(ROOT))
from inference.worker import worker_command  # after the line above: found through the repository root

SLUG = "lg-ai-research"
TEXT = "Alliance partners tune foundation models on their own data, privately, with adapters."
SUBMISSIONS = 300  # per single-connection measurement (--submissions)
MIX = (("submit", 0.4), ("poll", 0.3), ("list", 0.2), ("usage", 0.1))
# A version 7 UUID stamped at `at`, in SQL: the ids the platform gives jobs (alliance.ids.uuid7), so the bulk
# history sits in the indexes as a year of real submissions would.
UUID7_AT = (
    "(lpad(to_hex((extract(epoch FROM {at}) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 3)"
    " || substr('89ab', 1 + floor(random() * 4)::int, 1) || substr(md5(random()::text), 1, 15))::uuid"
)


def client(port: int, key: str, seconds: float, seed: int) -> tuple[list[float], Counter, int]:
    """One keep-alive connection running the mix until time is up: latencies (s), errors, submissions."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = json.dumps({"capability": "keyword_extraction", "input": {"text": TEXT}})
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    latencies, errors, job_ids = [], Counter(), []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        kind = rng.choices([name for name, _ in MIX], weights=[weight for _, weight in MIX])[0]
        if kind == "poll" and not job_ids:
            kind = "submit"
        method, path, payload = {
            "submit": ("POST", "/api/v1/jobs", body),
            "poll": ("GET", f"/api/v1/jobs/{rng.choice(job_ids) if job_ids else ''}", None),
            "list": ("GET", "/api/v1/jobs?limit=20", None),
            "usage": ("GET", "/api/v1/usage", None),
        }[kind]
        started = time.monotonic()
        try:
            conn.request(method, path, payload, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors[type(exc).__name__] += 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            continue
        latencies.append(time.monotonic() - started)
        if response.status >= 400:
            errors[f"{kind} {response.status}"] += 1
        elif kind == "submit":
            job_ids.append(json.loads(data)["id"])
    conn.close()
    return latencies, errors, len(job_ids)


def submission_p50s(
    port: int, key: str, worker: subprocess.Popen, database: str, count: int = SUBMISSIONS
) -> tuple[float, float]:
    """Submission p50 (ms) on one connection with the worker serving the jobs as they come, then with the worker
    paused (the web path alone); each starts with no backlog."""
    serving = submit_p50(port, key, count)
    drain(database)
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        paused = submit_p50(port, key, count)
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    drain(database)
    return serving, paused


def drain(database: str, timeout: float = 300.0) -> None:
    """Waits until no job is queued or running."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if not conn.execute("SELECT 1 FROM inference_job WHERE status IN ('queued', 'running') LIMIT 1").fetchone():
                return
            time.sleep(0.5)
    raise RuntimeError(f"jobs still pending after {timeout:g} s")


def succeeded(database: str) -> int:
    with psycopg.connect(database, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM inference_job WHERE status = 'succeeded'").fetchone()[0]


def submit_p50(port: int, key: str, count: int) -> float:
    return pct(sorted(client_submits(port, key, count)), 0.5)


def client_submits(port: int, key: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = json.dumps({"capability": "keyword_extraction", "input": {"text": TEXT}})
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    latencies = []
    for _ in range(count):
        started = time.monotonic()
        conn.request("POST", "/api/v1/jobs", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status == 202:
            latencies.append(time.monotonic() - started)
    conn.close()
    return latencies


def bulk_rows(database_url: str, rows: int) -> float:
    """Jobs (with their ids' time order) and their usage rows for the benchmark's partner, spread evenly over the
    past year; returns seconds taken."""
    started = time.monotonic()
    with psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        partner_id = conn.execute("SELECT id FROM partners_partner WHERE slug = %s", [SLUG]).fetchone()[0]
        conn.execute(
            f"""INSERT INTO inference_job (id, partner_id, capability, model, queue, status, input, params, units,
                   request_fingerprint, webhook_url, attempts, created_at, finished_at, output, priority, custom_id)
               SELECT {UUID7_AT.format(at="at")}, %s, 'keyword_extraction', 'all-MiniLM-L6-v2', 'embeddings',
                      'succeeded', '{{"text": "bulk"}}', '{{}}', 10, '', '', 1, at, at, '{{"keywords": []}}', 0, ''
               FROM (SELECT now() - interval '1 year' + g * (interval '1 year' / %s) AS at
                     FROM generate_series(1, %s) AS g) AS history""",
            [partner_id, rows, rows],
        )
        conn.execute(
            """INSERT INTO partners_usagerecord (partner_id, capability, job_id, kind, units, month, created_at)
               SELECT %s, 'keyword_extraction', id, 'charge', 10, date_trunc('month', created_at)::date, created_at
               FROM inference_job WHERE partner_id = %s AND request_fingerprint = ''
               ORDER BY created_at""",
            [partner_id, partner_id],
        )
        # Steady state, as a table that grew over a year would be: vacuumed and analysed, not mid-autovacuum.
        conn.execute("VACUUM (ANALYZE) inference_job")
        conn.execute("VACUUM (ANALYZE) partners_usagerecord")
        conn.execute("CHECKPOINT")  # flush the bulk load now, not during the measurement
    return time.monotonic() - started


def explain(env: dict[str, str], key: str, out: Path) -> dict[str, str]:
    """EXPLAIN ANALYZE of the statements one submission sends (bench/explain_submit.py), written to `out`; answers
    each statement's execution time (ms) by its verb and first table."""
    text = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "explain_submit.py"), key],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out.write_text(text)
    last = text.strip().splitlines()[-1]
    return dict(part.split("=", 1) for part in last.removeprefix("explain:").split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--submissions", type=int, default=SUBMISSIONS, help="per single-connection measurement")
    parser.add_argument("--database", default="alliance_bench_load", help="PostgreSQL database, created and dropped")
    parser.add_argument("--redis-db", type=int, default=11, help="Redis database number, flushed before and after")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    rows = args.rows or (200_000 if args.quick else 1_000_000)

    with ExitStack() as stack:
        env, tmp = platform_env(
            stack,
            database=args.database,
            redis_db=args.redis_db,
            ALLIANCE_DEFAULT_RPM="100000000",
            ALLIANCE_API_KEY_READ_RPM="100000000",
        )
        if "DATABASE_URL" not in env:
            sys.exit("bench/load.py needs PostgreSQL at 127.0.0.1:5432")
        key = manage(env, "issue_api_key", SLUG).splitlines()[-1]
        manage(env, "set_quota", SLUG, "keyword_extraction", "--monthly-units", str(10**13), "--rpm", str(10**9))
        port = free_port()
        start_gunicorn(env, port, 2, 8, tmp / "gunicorn.log", stack)
        with (tmp / "worker.log").open("w") as log:
            worker = subprocess.Popen(
                worker_command(queues="embeddings", concurrency=1, loglevel="WARNING"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.callback(worker.terminate)

        database = env["DATABASE_URL"].replace("postgres://", "postgresql://")
        submit_p50(port, key, 20)  # the worker has its model loaded and is serving before anything is measured
        drain(database)
        baseline = submission_p50s(port, key, worker, database, args.submissions)
        succeeded_before = succeeded(database)
        with ProcessPoolExecutor(4) as pool:
            per_process = max(1, args.clients // 4)
            futures = [pool.submit(_threads, port, key, seconds, per_process, seed) for seed in range(4)]
            results = [future.result() for future in futures]
        latencies = sorted(latency for result in results for latency in result[0])
        errors = sum((result[1] for result in results), Counter())
        submitted = sum(result[2] for result in results)
        rps = len(latencies) / seconds
        drain(database)
        completed = succeeded(database) - succeeded_before
        print(
            f"mixed load: {args.clients} clients for {seconds:g} s: {len(latencies)} requests, {rps:.1f} req/s, "
            f"p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms, "
            f"errors {sum(errors.values())} {dict(errors)}; {submitted} jobs submitted, {completed} completed"
        )

        plans_before = explain(env, key, tmp / "explain_before.txt")
        took = bulk_rows(env["DATABASE_URL"], rows)
        plans_after = explain(env, key, tmp / "explain_after.txt")
        loaded = submission_p50s(port, key, worker, database, args.submissions)
        serving_ratio, paused_ratio = loaded[0] / baseline[0], loaded[1] / baseline[1]
        print(
            f"EXPLAIN ANALYZE of the submission's statements, ms before / after {rows:,} rows: "
            + ", ".join(f"{name} {plans_before.get(name, '-')} / {plans_after[name]}" for name in plans_after)
        )
        print((tmp / "explain_after.txt").read_text().rstrip())
        print(
            f"submission p50 on one connection, worker paused (the web path alone): {baseline[1]:.2f} ms before, "
            f"{loaded[1]:.2f} ms with {rows:,} more job and usage rows (inserted in {took:.0f} s), ratio "
            f"{paused_ratio:.2f}; worker serving: {baseline[0]:.2f} ms before, {loaded[0]:.2f} ms after (ratio "
            f"{serving_ratio:.2f})"
        )
        print(
            f"load: rps={rps:.1f} p50_ms={pct(latencies, 0.5):.1f} p99_ms={pct(latencies, 0.99):.1f} "
            f"errors={sum(errors.values())} latency_at_1m_rows_ratio={paused_ratio:.2f} "
            f"serving_latency_at_1m_rows_ratio={serving_ratio:.2f} rows={rows}"
        )


def _threads(port: int, key: str, seconds: float, count: int, seed: int) -> tuple[list[float], Counter, int]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(count) as threads:
        parts = list(threads.map(lambda i: client(port, key, seconds, seed * 100 + i), range(count)))
    return (
        [x for part in parts for x in part[0]],
        sum((part[1] for part in parts), Counter()),
        sum(part[2] for part in parts),
    )


if __name__ == "__main__":
    main()
