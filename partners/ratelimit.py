"""Fixed-window request counters: one Redis Lua call when Redis is configured, a locked dict otherwise."""

from __future__ import annotations

import threading
import time
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
