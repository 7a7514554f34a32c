"""EXPLAIN ANALYZE of the SQL one job submission sends, on the platform's database as it stands (bench/load.py runs it
before and after its million rows, to find what grows with the tables).

Usage (with the platform's environment: DATABASE_URL and the rest): .venv/bin/python bench/explain_submit.py KEY

Submits one keyword-extraction job with the raw API key KEY through Django's test client inside a transaction that
is rolled back, keeping the statements it sent; then runs EXPLAIN (ANALYZE, BUFFERS) of each in a transaction that
is rolled back too, so nothing is written. Prints each statement's first words, its execution time and its plan;
the last line is `explain: <verb>:<table>=<ms> ...`, each statement named by its verb and first table.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps({"capability": "keyword_extraction", "input": {"text": "Alliance partners tune language models."}})


class _RolledBack(Exception):
    pass


def _label(sql: str, taken: set[str]) -> str:
    """The statement's verb and first table (`select:partners_apikeycredential`, `with:partners_quotaperiod`)."""
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
    label = f"{sql.split(None, 1)[0].lower()}:{table.group(1) if table else '?'}"
    n = 2
    while label in taken:
        label = f"{label.split('#')[0]}#{n}"
        n += 1
    return label


def main() -> None:
    key = sys.argv[1]
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alliance.settings")
    os.environ["ALLIANCE_EVENT_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    statements: list[str] = []
    try:
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            response = client.post("/api/v1/jobs", BODY, content_type="application/json")
            if response.status_code != 202:
                raise RuntimeError(f"{response.status_code} {response.content[:300]!r}")
            statements = [
                query["sql"]
                for query in queries.captured_queries
                if query["sql"].split(None, 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "WITH"}
            ]
            raise _RolledBack
    except _RolledBack:
        pass
    times: list[str] = []
    with connection.cursor() as cursor:
        for sql in statements:
            try:
                with transaction.atomic():
                    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                    plan = [row[0] for row in cursor.fetchall()]
                    raise _RolledBack
            except _RolledBack:
                pass
            took = next((line.split(":")[1].strip() for line in plan if line.startswith("Execution Time")), "?")
            name = _label(sql, {time.split("=")[0] for time in times})
            times.append(f"{name}={took.split()[0]}")
            print(f"[{name}] {sql[:100]}...\n    " + "\n    ".join(plan))
    print("explain: " + " ".join(times))


if __name__ == "__main__":
    main()
