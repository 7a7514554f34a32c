"""Which real servers this test run has: PostgreSQL (as the test database) and Redis (broker and cache)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection


def require_services() -> bool:
    return os.environ.get("ALLIANCE_REQUIRE_SERVICES", "") == "1"


def missing_services() -> list[str]:
    missing = []
    if connection.vendor != "postgresql":
        missing.append("PostgreSQL (set DATABASE_URL)")
    if not settings.REDIS_URL or not settings.CELERY_BROKER_URL.startswith("redis"):
        missing.append("Redis (set REDIS_URL and CELERY_BROKER_URL)")
    return missing


def skip_or_fail_without_services() -> None:
    missing = missing_services()
    if not missing:
        return
    reason = "needs " + " and ".join(missing)
    if require_services():
        pytest.fail(reason + " (ALLIANCE_REQUIRE_SERVICES=1)")
    pytest.skip(reason)
