"""Worker heartbeats the web can read: each worker's main process says every few seconds that it is alive, which
queues (families) it serves and which models it hosts; each pool process says which batch it is running. The
records live in Redis (keys with a time to live) when REDIS_URL is set, else in the database (monitoring.Heartbeat
rows with an expiry), so the embedded mode has them too."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

WORKER = "worker"
BATCH = "batch"


class HeartbeatStore(Protocol):
    def put(self, name: str, kind: str, data: dict[str, Any], ttl: float) -> None: ...
    def delete(self, name: str) -> None: ...
    def live(self) -> list[dict[str, Any]]: ...


class RedisStore:
    """A sorted set of names scored by expiry and a hash of their records: reading costs O(workers), whatever else
    the database holds (no key scan)."""

    EXPIRES = "alliance:heartbeats:expires"
    DATA = "alliance:heartbeats:data"

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def put(self, name: str, kind: str, data: dict[str, Any], ttl: float) -> None:
        record = json.dumps({**data, "kind": kind, "name": name})
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.DATA, name, record).zadd(self.EXPIRES, {name: time.time() + ttl}).execute()

    def delete(self, name: str) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.EXPIRES, name).hdel(self.DATA, name).execute()

    def live(self) -> list[dict[str, Any]]:
        now = time.time()
        expired = self._redis.zrangebyscore(self.EXPIRES, "-inf", now)
        if expired:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.EXPIRES, *expired).hdel(self.DATA, *expired).execute()
        names = self._redis.zrangebyscore(self.EXPIRES, now, "+inf")
        values = self._redis.hmget(self.DATA, names) if names else []
        return [json.loads(value) for value in values if value is not None]


class DatabaseStore:
    def put(self, name: str, kind: str, data: dict[str, Any], ttl: float) -> None:
        from monitoring.models import Heartbeat

        expires = timezone.now() + dt.timedelta(seconds=ttl)
        Heartbeat.objects.update_or_create(name=name, defaults={"kind": kind, "data": data, "expires_at": expires})

    def delete(self, name: str) -> None:
        from monitoring.models import Heartbeat

        Heartbeat.objects.filter(name=name).delete()

    def live(self) -> list[dict[str, Any]]:
        from monitoring.models import Heartbeat

        now = timezone.now()
        Heartbeat.objects.filter(expires_at__lt=now - dt.timedelta(hours=1)).delete()
        return [
            {**row.data, "kind": row.kind, "name": row.name} for row in Heartbeat.objects.filter(expires_at__gte=now)
        ]


@lru_cache(maxsize=1)
def store() -> HeartbeatStore:
    return RedisStore(settings.REDIS_URL) if settings.REDIS_URL else DatabaseStore()


def interval() -> float:
    return settings.ALLIANCE_WORKER_HEARTBEAT_SECONDS


def ttl() -> float:
    """A worker counts as live for three missed beats."""
    return 3 * interval() + 1


@dataclass
class LiveWorker:
    hostname: str
    queues: list[str]
    models: list[str]
    pid: int | None
    started_at: str | None
    seen_at: str | None
    batches: list[dict[str, Any]] = field(default_factory=list)


def live_workers() -> list[LiveWorker]:
    """The workers whose heartbeat has not expired, each with the batches its processes are running."""
    records = store().live()
    workers = {
        r["hostname"]: LiveWorker(
            hostname=r["hostname"],
            queues=sorted(r.get("queues", [])),
            models=r.get("models", []),
            pid=r.get("pid"),
            started_at=r.get("started_at"),
            seen_at=r.get("seen_at"),
        )
        for r in records
        if r.get("kind") == WORKER
    }
    for record in records:
        if record.get("kind") == BATCH and record.get("hostname") in workers:
            workers[record["hostname"]].batches.append(record)
    return sorted(workers.values(), key=lambda w: w.hostname)


def live_by_family(workers: list[LiveWorker] | None = None) -> dict[str, list[str]]:
    """Every family (queue) of ALLIANCE_QUEUES with the hostnames of the live workers that serve it."""
    workers = live_workers() if workers is None else workers
    return {queue: [w.hostname for w in workers if queue in w.queues] for queue in settings.ALLIANCE_QUEUES}


class WorkerBeat:
    """The heartbeat thread of one worker's main process."""

    def __init__(self, *, hostname: str, pid: int, queues: list[str], models: list[str]) -> None:
        self.hostname = hostname
        self._data = {
            "hostname": hostname,
            "pid": pid,
            "queues": queues,
            "models": models,
            "started_at": timezone.now().isoformat(),
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alliance-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        store().put(self.hostname, WORKER, {**self._data, "seen_at": timezone.now().isoformat()}, ttl())

    def _run(self) -> None:
        from django.db import connection

        while not self._stop.wait(interval()):
            try:
                self.beat()
            except Exception:  # a missed beat is logged; the next one tries again
                logger.warning("worker heartbeat of %s missed; retrying", self.hostname, exc_info=True)
            finally:
                connection.close()

    def stop(self) -> None:
        self._stop.set()
        try:
            store().delete(self.hostname)
        except Exception:  # noqa: BLE001 - the record expires on its own
            logger.warning("could not remove the heartbeat of %s; it expires in %.0f s", self.hostname, ttl())
