"""Waiting on a job without holding a thread, and the per-key cap on requests that wait or stream.

A finished job is announced once its row has committed (jobs_finished_announce: the workers' success and failure, a
cancel, the reaper's give-up) on one Redis pub/sub channel. Each web process (each event loop) keeps one subscription
to it and wakes the requests waiting on those jobs (job_await): a waiter registers and has the subscription confirmed
BEFORE it re-reads the row, so a job that finishes in between is either seen by that read or announced to it; no
wake-up is lost. Woken, it re-reads the row once. Between announcements a waiter sleeps on the event loop, holding
no thread and no database connection; it re-reads the row every SAFETY_RECHECK_SECONDS only in case an announcement
was lost (a worker killed between its commit and its publish), and polls every FALLBACK_POLL_SECONDS while the
subscription is down. The embedded default (no Redis: SQLite and the filesystem broker) polls the row with
asyncio.sleep, a short backoff up to EMBEDDED_POLL_MAX_SECONDS.

The cap (ALLIANCE_API_KEY_MAX_WAITING per key, across web processes when Redis is configured): wait_slot_take
(sync, before a job is submitted, so a refused request leaves no job and no charge) or `async with wait_slot(...)`;
past the cap, LimitReached `too_many_waiting` (429). A WaitSlot is released with release() or `await arelease()`,
however the wait ends; a slot whose process died is freed after its hold time.

Web-safe: no torch; the workers import it only to announce.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.db import connections, transaction

from inference import signals
from inference.models import Job
from partners import ratelimit
from partners.models import ApiKey

logger = logging.getLogger(__name__)

CHANNEL = "alliance:jobs:finished"  # message: the finished jobs' ids, comma-separated
SAFETY_RECHECK_SECONDS = 10.0
FALLBACK_POLL_SECONDS = 0.5
EMBEDDED_POLL_FIRST_SECONDS = 0.02
EMBEDDED_POLL_MAX_SECONDS = 0.25
SUBSCRIBE_WAIT_SECONDS = 2.0


# ---------------------------------------------------------------- announcing (workers, cancel)


def jobs_finished_announce(job_ids: Iterable[Any]) -> None:
    """Announces that these jobs finished, once the current transaction commits (immediately outside one). Without
    Redis nothing is sent: the embedded mode's waiters poll."""
    job_ids = [str(job_id) for job_id in job_ids]
    if job_ids:
        transaction.on_commit(lambda: _signal_finished(job_ids))
    ids = ",".join(job_ids)
    if ids and settings.REDIS_URL:
        url = settings.REDIS_URL
        transaction.on_commit(lambda: _publish(url, ids))


def _signal_finished(job_ids: list[str]) -> None:
    """inference.signals.jobs_finished for the apps above (a showcase recipe's next step): a receiver's failure is
    logged, never the job's."""
    for receiver, result in signals.jobs_finished.send_robust(sender=None, job_ids=job_ids):
        if isinstance(result, Exception):
            logger.error("a jobs_finished receiver (%s) failed", receiver, exc_info=result)


@lru_cache(maxsize=4)
def _publisher(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _publish(url: str, ids: str) -> None:
    try:
        _publisher(url).publish(CHANNEL, ids)
    except Exception:  # the row is committed: waiters find it at their next re-check
        logger.warning("could not announce finished job(s) %s; waiters re-check on their own", ids, exc_info=True)


# ---------------------------------------------------------------- waiting (web, async)


def connections_release() -> None:
    """Gives this context's database connections back (to the pool, or closed) and forgets them, so that a waiting
    request holds none and its next step may run on another thread; a connection inside a transaction (a test's)
    is left alone."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
            del connections[connection.alias]


def _held_thread() -> bool:
    """This event loop runs for a sync caller that holds its thread anyway (a WSGI server, Django's test client:
    async_to_sync): reads run there, on that request's own connection (a test's transaction included)."""
    return asyncio.get_running_loop() in getattr(AsyncToSync, "loop_thread_executors", {})


def _job_row(job_id: Any) -> Job:
    try:
        return Job.objects.get(pk=job_id)
    finally:
        connections_release()


async def _read_job(job_id: Any) -> Job:
    """The job's row, read on a thread of the shared pool (under ASGI) with a connection given back at once: no thread
    and no connection stays with the waiting request."""
    return await sync_to_async(_job_row, thread_sensitive=_held_thread())(job_id)


async def job_await(*, job_id: Any, timeout: float) -> Job:
    """The job as soon as it finishes, or as it stands after `timeout` seconds (at most
    ALLIANCE_JOB_MAX_WAIT_SECONDS). Awaited on the event loop: no thread and no database connection is held while
    waiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(timeout, 0.0), settings.ALLIANCE_JOB_MAX_WAIT_SECONDS)
    if not settings.REDIS_URL:
        return await _job_polled(job_id, deadline)
    listener = _listener(settings.REDIS_URL)
    woken = listener.watch(str(job_id))
    try:
        await listener.wait_subscribed(min(SUBSCRIBE_WAIT_SECONDS, max(0.0, deadline - loop.time())))
        job = await _read_job(job_id)  # after subscribing: an announcement from here on reaches `woken`
        while not job.is_finished and (left := deadline - loop.time()) > 0:
            interval = SAFETY_RECHECK_SECONDS if listener.subscribed.is_set() else FALLBACK_POLL_SECONDS
            with suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=min(left, interval))
            woken.clear()
            job = await _read_job(job_id)
    finally:
        listener.unwatch(str(job_id), woken)
    return job


async def _job_polled(job_id: Any, deadline: float) -> Job:
    loop = asyncio.get_running_loop()
    delay = EMBEDDED_POLL_FIRST_SECONDS
    job = await _read_job(job_id)
    while not job.is_finished and (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, EMBEDDED_POLL_MAX_SECONDS)
        job = await _read_job(job_id)
    return job


class _FinishedJobs:
    """One event loop's subscription to CHANNEL, and the requests of that loop waiting on jobs."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def watch(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiting.setdefault(job_id, set()).add(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="alliance-finished-jobs")
        return event

    def unwatch(self, job_id: str, event: asyncio.Event) -> None:
        events = self._waiting.get(job_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiting[job_id]

    @property
    def waiting(self) -> int:
        """Requests of this loop waiting now (for tests)."""
        return sum(len(events) for events in self._waiting.values())

    async def wait_subscribed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.subscribed.wait(), timeout=timeout)
        except TimeoutError:
            return False
        return True

    def _wake(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            for event in self._waiting.get(job_id, ()):
                event.set()

    async def _listen(self) -> None:
        import redis.asyncio

        task = asyncio.current_task()

        def cancelled() -> bool:
            # A cancel that the Redis client turned into an error or a quiet read (cancel landing on its read
            # timeout) must still end the listener, or the loop's shutdown (asyncio.run under WSGI) waits forever.
            return task is not None and task.cancelling() > 0

        backoff = 0.1
        while True:
            client = redis.asyncio.Redis.from_url(self._url, socket_connect_timeout=2, health_check_interval=15)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if cancelled():
                        raise asyncio.CancelledError
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.subscribed.set()
                        backoff = 0.1
                        self._wake(list(self._waiting))  # announcements may have been missed while unsubscribed
                    elif message["type"] == "message":
                        data = message["data"]
                        self._wake((data.decode() if isinstance(data, bytes) else str(data)).split(","))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: waiters poll until the subscription is back
                if cancelled():
                    raise asyncio.CancelledError from None
                logger.warning("the finished-jobs subscription broke; reconnecting in %.1f s", backoff, exc_info=True)
            finally:
                self.subscribed.clear()
                self._wake(list(self._waiting))
                with suppress(Exception):  # closing a broken connection
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _FinishedJobs] = weakref.WeakKeyDictionary()


def _listener(url: str) -> _FinishedJobs:
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener._url != url:
        listener = _listeners[loop] = _FinishedJobs(url)
    return listener


# ---------------------------------------------------------------- the per-key cap on waiting and streaming


@dataclass
class WaitSlot:
    """One of a key's ALLIANCE_API_KEY_MAX_WAITING slots, held until released (release() is idempotent)."""

    key_id: str
    token: str
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            ratelimit.waiting_release(key_id=self.key_id, token=self.token)

    async def arelease(self) -> None:
        if not self.released:
            await sync_to_async(self.release, thread_sensitive=False)()


def wait_slot_take(*, api_key: ApiKey, hold_seconds: float | None = None) -> WaitSlot:
    """Takes a slot for a request that will wait on (or stream) a job; LimitReached `too_many_waiting` past the cap.
    Take it before submitting, so that a refused request leaves no job and no charge. `hold_seconds` (default: the
    longest wait plus 30 s) is when a slot whose process died is freed."""
    hold = hold_seconds if hold_seconds is not None else settings.ALLIANCE_JOB_MAX_WAIT_SECONDS + 30
    token = ratelimit.waiting_acquire(
        key_id=api_key.public_id, limit=settings.ALLIANCE_API_KEY_MAX_WAITING, hold_seconds=hold
    )
    return WaitSlot(key_id=api_key.public_id, token=token)


@asynccontextmanager
async def wait_slot(*, api_key: ApiKey, hold_seconds: float | None = None) -> AsyncIterator[WaitSlot]:
    """`async with wait_slot(api_key=key):` holds a slot for the block (a streaming response's life)."""
    slot = await sync_to_async(wait_slot_take)(api_key=api_key, hold_seconds=hold_seconds)
    try:
        yield slot
    finally:
        await slot.arelease()


@contextmanager
def job_wait_slot(*, api_key: ApiKey, hold_seconds: float | None = None) -> Iterator[WaitSlot]:
    """The same slot for synchronous code: `with job_wait_slot(api_key=key):`."""
    slot = wait_slot_take(api_key=api_key, hold_seconds=hold_seconds)
    try:
        yield slot
    finally:
        slot.release()
