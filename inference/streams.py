"""Per-job token channels: the worker publishes an LLM job's text as it is generated, the web follows it.

Web-safe (no torch). Two channels, one interface (settings.ALLIANCE_STREAMS):
- RedisChannel (the distributed mode): one Redis Stream per job (XADD with a bounded length and an expiry,
  XREAD BLOCK to follow; a late follower replays from the start);
- DatabaseChannel (the embedded default, no Redis): rows of JobStreamEvent, followed by a short poll.

An event is a dict with a `kind`:
- {"kind": "token", "choice": i, "text": "..."}: the next piece of choice i's text (the pieces of a choice,
  concatenated, are its stored text);
- {"kind": "status", "status": "running", "attempt": n}: a worker took the job (n > 1: run again after a worker
  died; its text starts over);
- {"kind": "end", "status": "succeeded" | "failed" | "canceled"}: published once the job's row is committed.

Read with `channel().read(job_id, cursor, block_ms)` (sync) or `await channel().aread(...)` (async); both return
(events, next cursor), START being the cursor of a channel's beginning. The worker publishes tokens through
TokenPublisher (batched: at most one write a job every ALLIANCE_STREAM_FLUSH_MS) and the end through
publish_end_on_commit. Publishing never fails a job: a channel that cannot be written is logged and skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
import uuid
from functools import lru_cache
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# The capabilities whose output is the generated text itself, streamed token by token. Summaries and answers are
# checked and rewritten after generation (inference.backends.llm.runners), so their events carry no tokens.
STREAMING_CAPABILITIES = frozenset({"text_generation", "dialogue"})
START = "0"

Event = dict[str, Any]


class Channel(Protocol):
    def publish(self, batch: dict[str, list[Event]]) -> None: ...  # job id -> events, one write for all
    def read(self, job_id: str, cursor: str, block_ms: int) -> tuple[list[Event], str]: ...
    async def aread(self, job_id: str, cursor: str, block_ms: int) -> tuple[list[Event], str]: ...
    def prune(self) -> int: ...


# ---------------------------------------------------------------- Redis Streams


class RedisChannel:
    FIELD = "e"

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    @staticmethod
    def key(job_id: str) -> str:
        return f"alliance:job-stream:{job_id}"

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            import redis

            client = self._local.client = redis.Redis.from_url(self.url)
        return client

    def publish(self, batch: dict[str, list[Event]]) -> None:
        pipe = self._client().pipeline(transaction=False)
        for job_id, events in batch.items():
            key = self.key(job_id)
            for event in events:
                pipe.xadd(key, {self.FIELD: json.dumps(event)}, maxlen=settings.ALLIANCE_STREAM_MAX_EVENTS)
            pipe.expire(key, settings.ALLIANCE_STREAM_TTL_SECONDS)
        pipe.execute()

    def _decoded(self, answer: Any, cursor: str) -> tuple[list[Event], str]:
        events = []
        for _, entries in answer or ():
            for entry_id, fields in entries:
                cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                events.append(json.loads(fields[self.FIELD.encode()]))
        return events, cursor

    def read(self, job_id: str, cursor: str, block_ms: int) -> tuple[list[Event], str]:
        answer = self._client().xread({self.key(job_id): cursor}, count=1000, block=block_ms or None)
        return self._decoded(answer, cursor)

    async def aread(self, job_id: str, cursor: str, block_ms: int) -> tuple[list[Event], str]:
        client = _async_redis(self.url)
        answer = await client.xread({self.key(job_id): cursor}, count=1000, block=block_ms or None)
        return self._decoded(answer, cursor)

    def prune(self) -> int:
        return 0  # each stream expires by itself


_async_clients: dict[int, tuple[asyncio.AbstractEventLoop, Any]] = {}


def _async_redis(url: str) -> Any:
    """One asyncio Redis client per event loop (a client is bound to the loop that made it); closed loops' go."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    for key, (old_loop, _) in list(_async_clients.items()):
        if old_loop.is_closed():
            del _async_clients[key]
    entry = _async_clients.get(id(loop))
    if entry is None or entry[0] is not loop:
        entry = _async_clients[id(loop)] = (loop, redis.asyncio.Redis.from_url(url))
    return entry[1]


# ---------------------------------------------------------------- the database (no Redis)


class DatabaseChannel:
    """Rows of JobStreamEvent; following polls every ALLIANCE_STREAM_POLL_MS."""

    def publish(self, batch: dict[str, list[Event]]) -> None:
        from inference.models import JobStreamEvent

        JobStreamEvent.objects.bulk_create(
            [JobStreamEvent(job_id=job_id, event=event) for job_id, events in batch.items() for event in events]
        )

    def _fetch(self, job_id: str, cursor: str) -> tuple[list[Event], str]:
        from inference.models import JobStreamEvent

        rows = list(
            JobStreamEvent.objects.filter(job_id=job_id, id__gt=int(cursor))
            .order_by("id")
            .values_list("id", "event")[:1000]
        )
        return [event for _, event in rows], str(rows[-1][0]) if rows else cursor

    def read(self, job_id: str, cursor: str, block_ms: int) -> tuple[list[Event], str]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            events, cursor = self._fetch(job_id, cursor)
            if events or time.monotonic() >= deadline:
                return events, cursor
            time.sleep(settings.ALLIANCE_STREAM_POLL_MS / 1000)

    async def aread(self, job_id: str, cursor: str, block_ms: int) -> tuple[list[Event], str]:
        deadline = time.monotonic() + block_ms / 1000
        fetch = sync_to_async(self._fetch)
        while True:
            events, cursor = await fetch(job_id, cursor)
            if events or time.monotonic() >= deadline:
                return events, cursor
            await asyncio.sleep(settings.ALLIANCE_STREAM_POLL_MS / 1000)

    def prune(self) -> int:
        from inference.models import JobStreamEvent

        before = timezone.now() - dt.timedelta(seconds=settings.ALLIANCE_STREAM_TTL_SECONDS)
        deleted, _ = JobStreamEvent.objects.filter(created_at__lt=before).delete()
        return deleted


@lru_cache(maxsize=4)
def _channel(kind: str, url: str) -> Channel:
    return RedisChannel(url) if kind == "redis" else DatabaseChannel()


def channel() -> Channel:
    return _channel(settings.ALLIANCE_STREAMS, settings.REDIS_URL)


# ---------------------------------------------------------------- the worker's side


def publish(batch: dict[str, list[Event]]) -> None:
    """Writes events, logging (not raising) a failure: a channel that cannot be written never fails a job."""
    if not batch:
        return
    try:
        channel().publish(batch)
    except Exception:
        logger.warning("could not publish stream events of %d job(s)", len(batch), exc_info=True)


def publish_status(attempts: dict[uuid.UUID | str, int], status: str) -> None:
    """A status event per job (job id -> its attempt: a job run again after its worker died starts its text over)."""
    publish({str(job_id): [{"kind": "status", "status": status, "attempt": n}] for job_id, n in attempts.items()})


def publish_end_on_commit(job_id: uuid.UUID | str, status: str) -> None:
    """The channel's last event, once the job's final row is committed (at once outside a transaction)."""
    publish_ends_on_commit([job_id], status)


def publish_ends_on_commit(job_ids: list[uuid.UUID] | list[str], status: str) -> None:
    """The last event of each job's channel, in one write for all, once their final rows are committed."""
    if job_ids:
        ends = {str(job_id): [{"kind": "end", "status": str(status)}] for job_id in job_ids}
        transaction.on_commit(lambda: publish(ends))


class TokenPublisher:
    """Collects the text deltas of a batch's jobs and writes them at most every ALLIANCE_STREAM_FLUSH_MS (the first
    at once, for the time to first token), in one write for all the batch's jobs. Call flush() when generation ends,
    before the jobs' rows are finished."""

    def __init__(self, job_ids: list[str], flush_ms: float | None = None) -> None:
        self.job_ids = job_ids
        self.interval = (settings.ALLIANCE_STREAM_FLUSH_MS if flush_ms is None else flush_ms) / 1000
        self.pending: dict[str, list[Event]] = {}
        self.last_flush = 0.0
        self.writes = 0

    def delta(self, index: int, choice: int, text: str) -> None:
        if not text:
            return
        events = self.pending.setdefault(self.job_ids[index], [])
        if events and events[-1]["choice"] == choice:
            events[-1]["text"] += text
        else:
            events.append({"kind": "token", "choice": choice, "text": text})
        if time.monotonic() - self.last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, {}
            publish(pending)
            self.writes += 1
        self.last_flush = time.monotonic()


def prune() -> int:
    """Removes channels past their time to live (the database channel; Redis streams expire by themselves)."""
    try:
        return channel().prune()
    except Exception:
        logger.warning("could not prune stream events", exc_info=True)
        return 0
