"""Fixed-window request counters, and the requests a key has waiting on a job: one Redis Lua call when Redis is
configured, a locked dict otherwise (the embedded mode, one process)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from alliance.errors import LimitReached

WINDOW_SECONDS = 60

_INCR_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


@dataclass(frozen=True)
class WindowState:
    limit: int
    count: int
    reset_seconds: float

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


class _LocalCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._window = -1

    def incr(self, key: str, window: int) -> int:
        with self._lock:
            if window != self._window:
                self._counts.clear()
                self._window = window
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class _RedisCounter:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_INCR_SCRIPT)

    def incr(self, key: str, window: int) -> int:
        return int(self._script(keys=[f"alliance:rl:{key}:{window}"], args=[WINDOW_SECONDS * 2]))


@lru_cache(maxsize=1)
def _counter() -> _LocalCounter | _RedisCounter:
    return _RedisCounter(settings.REDIS_URL) if settings.REDIS_URL else _LocalCounter()


def hit(key: str, limit: int) -> WindowState:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    count = _counter().incr(key, window)
    return WindowState(limit=limit, count=count, reset_seconds=(window + 1) * WINDOW_SECONDS - now)


class RateLimited(LimitReached):
    """A key's requests per minute are spent; `window` is the state its x-ratelimit-* headers report."""

    def __init__(self, message: str, *, window: WindowState) -> None:
        super().__init__(message, code="rate_limit_exceeded", retry_after=window.reset_seconds)
        self.window = window


def admit(*, key_id: str, bucket: str, limit: int, what: str = "this key") -> WindowState:
    """Counts one request of a key in a bucket (reads, or one capability), refusing it past `limit` a minute."""
    window = hit(f"{key_id}:{bucket}", limit)
    if not window.allowed:
        raise RateLimited(f"Rate limit of {limit} requests per minute reached for {what}.", window=window)
    return window


def peek_reset_seconds() -> float:
    now = time.time()
    return (int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS - now


# Waiting requests: a sorted set per key whose members are the waits in progress, scored by when each expires. A
# wait whose process died (killed mid-request) drops out at its expiry; the set itself expires when idle.
_WAIT_ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class _LocalWaits:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def acquire(self, key: str, limit: int, hold_seconds: float) -> str | None:
        with self._lock:
            if self._counts.get(key, 0) >= limit:
                return None
            self._counts[key] = self._counts.get(key, 0) + 1
            return key

    def release(self, key: str, token: str) -> None:
        with self._lock:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)

    def count(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)


class _RedisWaits:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._acquire = self._client.register_script(_WAIT_ACQUIRE_SCRIPT)

    @staticmethod
    def _name(key: str) -> str:
        return f"alliance:waits:{key}"

    def acquire(self, key: str, limit: int, hold_seconds: float) -> str | None:
        now, token = time.time(), uuid.uuid4().hex
        args = [now, now + hold_seconds, limit, token, int(hold_seconds) + 60]
        return token if int(self._acquire(keys=[self._name(key)], args=args)) else None

    def release(self, key: str, token: str) -> None:
        self._client.zrem(self._name(key), token)

    def count(self, key: str) -> int:
        return int(self._client.zcount(self._name(key), time.time(), "+inf"))


@lru_cache(maxsize=1)
def _waits() -> _LocalWaits | _RedisWaits:
    return _RedisWaits(settings.REDIS_URL) if settings.REDIS_URL else _LocalWaits()


def waiting_acquire(*, key_id: str, limit: int, hold_seconds: float) -> str:
    """Takes one of a key's `limit` waiting slots (held at most `hold_seconds`, after which a slot whose process died
    is freed) and returns its token for waiting_release; past the limit, refuses with 429 `too_many_waiting`."""
    token = _waits().acquire(key_id, limit, hold_seconds)
    if token is None:
        raise LimitReached(
            f"This key already has {limit} requests waiting for a result, the most it may have at once. Submit "
            "without `wait` and poll GET /api/v1/jobs/<id> (or use a webhook), or retry when a waiting request ends.",
            code="too_many_waiting",
            retry_after=1.0,
        )
    return token


def waiting_release(*, key_id: str, token: str) -> None:
    _waits().release(key_id, token)


@contextmanager
def waiting(*, key_id: str, limit: int, hold_seconds: float) -> Iterator[None]:
    """Holds one of a key's `limit` waiting slots for the block (waiting_acquire), released however it ends."""
    token = waiting_acquire(key_id=key_id, limit=limit, hold_seconds=hold_seconds)
    try:
        yield
    finally:
        waiting_release(key_id=key_id, token=token)


def waiting_count(key_id: str) -> int:
    """The requests of a key waiting now (for tests and the operators)."""
    return _waits().count(key_id)
