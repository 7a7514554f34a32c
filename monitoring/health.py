"""Liveness and readiness. Liveness: the process answers. Readiness: the database answers and has every migration
applied, the broker (and the cache's Redis) answer, and, per worker family, which live workers serve it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from alliance.celery import app

logger = logging.getLogger(__name__)

_migrated = False  # once every migration is applied it stays so for this process's code


@dataclass
class Readiness:
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    families: dict[str, list[str]] = field(default_factory=dict)
    required_families: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(check["ok"] for check in self.checks.values()) and all(
            self.families.get(family) for family in self.required_families
        )

    def as_dict(self, *, detailed: bool) -> dict[str, Any]:
        """The answer's body. Anyone (a probe) gets each check's outcome, an error's type and live worker counts;
        an operator (`detailed`) also gets the errors' messages and the workers' hostnames."""
        checks = {
            name: check if detailed or check["ok"] else {**check, "error": check["error"].split(":", 1)[0]}
            for name, check in self.checks.items()
        }
        families: dict[str, dict[str, Any]] = {}
        for family, hosts in self.families.items():
            families[family] = {"live_workers": len(hosts), "required": family in self.required_families}
            if detailed:
                families[family]["workers"] = hosts
        return {"status": "ready" if self.ready else "unready", "checks": checks, "families": families}


def _timed(check) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = check()
        result: dict[str, Any] = {"ok": True}
        if detail:
            result["detail"] = detail
    except Exception as exc:  # noqa: BLE001 - a failed check is the answer, named by its exception's type
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _migrations() -> str | None:
    global _migrated
    if _migrated:
        return None
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied, first {plan[0][0].app_label}.{plan[0][0].name}")
    _migrated = True
    return None


def _redis_ping(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _broker() -> str | None:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        _redis_ping(url)
        return None
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return conn.transport_cls if isinstance(conn.transport_cls, str) else None


def _cache() -> None:
    _redis_ping(settings.REDIS_URL)


def required_families(asked: list[str]) -> list[str]:
    unknown = [family for family in asked if family not in settings.ALLIANCE_QUEUES]
    if unknown:
        raise ValueError(unknown)
    return sorted(set(asked) | set(settings.ALLIANCE_READY_FAMILIES))


def readiness(*, families: list[str]) -> Readiness:
    """Every check, each with its time; `families` must each have a live worker for the answer to be ready."""
    result = Readiness(required_families=families)
    result.checks["database"] = _timed(_database)
    result.checks["migrations"] = (
        _timed(_migrations) if result.checks["database"]["ok"] else {"ok": False, "error": "database unreachable"}
    )
    result.checks["broker"] = _timed(_broker)
    if settings.REDIS_URL and settings.REDIS_URL != settings.CELERY_BROKER_URL:
        result.checks["cache"] = _timed(_cache)
    try:
        from monitoring.heartbeats import live_by_family

        result.families = live_by_family()
        result.checks["heartbeats"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - reported as the check's answer
        result.checks["heartbeats"] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        result.families = {family: [] for family in settings.ALLIANCE_QUEUES}
    if not result.checks["database"]["ok"]:
        connection.close()  # the next probe opens a fresh connection
    return result
