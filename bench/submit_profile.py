"""Where a job submission's time goes: N submissions in this process through Django's test client (the full
middleware, DRF, auth, rate limit, quota, insert, broker publish; no network, no gunicorn) under cProfile, with the
SQL statements and Redis commands one submission sends.

Usage: .venv/bin/python bench/submit_profile.py [--count 500] [--top 25] [--database NAME] [--redis-db N]

Uses PostgreSQL (a fresh database, default `alliance_bench_profile`) and Redis (db 13) at 127.0.0.1; no worker
runs, so the jobs stay queued. Last line: `submit_profile: ms_per_submit=... sql_per_submit=... redis_per_submit=...`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from contextlib import ExitStack

from platform_env import ROOT, manage, platform_env

SLUG = "lg-ai-research"
BODY = json.dumps({"capability": "keyword_extraction", "input": {"text": "Alliance partners tune language models."}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--database", default="alliance_bench_profile")
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()
    with ExitStack() as stack:
        env, _ = platform_env(stack, database=args.database, redis_db=args.redis_db)
        key = manage(env, "issue_api_key", SLUG).splitlines()[-1]
        manage(env, "set_quota", SLUG, "keyword_extraction", "--monthly-units", str(10**12), "--rpm", str(10**9))
        os.environ.update(env)
        os.environ["ALLIANCE_EVENT_LOG_LEVEL"] = "WARNING"  # the request lines would flood the terminal
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alliance.settings")
        import django

        django.setup()
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")

        def submit() -> None:
            response = client.post("/api/v1/jobs", BODY, content_type="application/json")
            if response.status_code != 202:
                raise RuntimeError(f"{response.status_code} {response.content[:300]!r}")

        for _ in range(20):  # warm: connections, caches, imports
            submit()
        redis_calls = _count_redis(submit)
        with CaptureQueriesContext(connection) as queries:
            submit()
        sql_count = len(queries.captured_queries)
        print(f"SQL statements of one submission ({len(queries)}):")
        for query in queries.captured_queries:
            print(f"  {query['sql'][:150]}")
        print(f"Redis round trips of one submission: {redis_calls}")

        started = time.perf_counter()
        for _ in range(args.count):
            submit()
        plain = (time.perf_counter() - started) / args.count * 1000
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.count):
            submit()
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
        print(
            f"submit_profile: ms_per_submit={plain:.2f} sql_per_submit={sql_count} "
            f"redis_per_submit={sum(redis_calls.values())}"
        )


def _count_redis(submit) -> dict[str, int]:
    """The Redis round trips one submission makes, by first command (every client: rate limit, cache, broker)."""
    import redis

    counts: dict[str, int] = {}
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        first = command[0] if isinstance(command, list) else command
        head = bytes(first)[:80].split(b"\r\n")
        name = head[2].decode(errors="replace").upper() if len(head) > 2 else "?"
        counts[name] = counts.get(name, 0) + 1  # one send: one round trip (a pipeline counts once)
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    try:
        submit()
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
    return counts


if __name__ == "__main__":
    main()
