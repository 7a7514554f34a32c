"""Authenticated API keys kept in the process for a short while, so a request does not look its key up in the
database each time; any change of a key, a credential or a partner invalidates every copy at once.

A copy is trusted only while the platform's key generation (one Redis counter; without Redis, this process's) is the
one it was read under: revoking, rotating, issuing or changing a key, and any change of a partner, raise the
generation (partners.signals) when the change is made and again once it commits, so every process drops its copies
before its next request. Each request reads the generation (one Redis GET) instead of the key's rows (a database
round trip), checks expiry and the credential's grace period against the clock, and still writes last use at most
once a minute. Copies expire after AUTH_CACHE_SECONDS in any case. While Redis cannot be read, nothing is trusted
from a copy (every request reads the database) and a change still succeeds (this process's copies are dropped; a
restarted Redis starts from a random generation).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import transaction

from partners.models import ApiKey

logger = logging.getLogger(__name__)
AUTH_CACHE_SECONDS = 30.0
_GENERATION_KEY = "alliance:auth:generation"


@dataclass(frozen=True)
class _Entry:
    api_key: ApiKey
    valid_until: float | None  # the credential's grace period's end (epoch seconds), None: no end
    generation: int
    stored_at: float  # monotonic


_entries: dict[bytes, _Entry] = {}
_local_generation = itertools.count(1)
_local_value = 0
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _redis():
    if not settings.REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def generation() -> int | None:
    """The current key generation; None while Redis cannot be read (then no copy is trusted)."""
    client = _redis()
    if client is None:
        return _local_value
    from redis.exceptions import RedisError

    try:
        value = client.get(_GENERATION_KEY)
        if value is None:  # a new or restarted Redis: a random start, so no copy read before matches it by chance
            client.set(_GENERATION_KEY, secrets.randbits(48), nx=True)
            value = client.get(_GENERATION_KEY)
        return int(value)
    except RedisError:
        logger.warning("the key generation cannot be read; keys are authenticated from the database", exc_info=True)
        return None


def _raise_generation() -> None:
    global _local_value
    with _lock:
        _entries.clear()
        _local_value = next(_local_generation)
    client = _redis()
    if client is not None:
        from redis.exceptions import RedisError

        try:
            client.incr(_GENERATION_KEY)
        except RedisError:  # the change itself stands; no process can trust a copy while Redis is unreadable
            logger.warning("the key generation could not be raised", exc_info=True)


def changed() -> None:
    """A key, credential or partner changed: every process forgets its copies now, and again once the change
    commits (a request between the two cannot keep what it read before the commit)."""
    _raise_generation()
    transaction.on_commit(_raise_generation)


def clear() -> None:
    """Forgets this process's copies (tests, whose rolled-back rows come back under the same ids)."""
    with _lock:
        _entries.clear()


def _digest(raw_key: str) -> bytes:
    return hashlib.sha256(raw_key.encode()).digest()


def lookup(raw_key: str, now: float) -> tuple[ApiKey | None, int | None]:
    """A copy of the key behind raw_key when one is trusted now (wall-clock `now`), and the current generation (the
    one to store a fresh lookup under: it is read before the database is; None: store nothing)."""
    current = generation()
    entry = _entries.get(_digest(raw_key))
    if (
        current is None
        or entry is None
        or entry.generation != current
        or time.monotonic() - entry.stored_at >= AUTH_CACHE_SECONDS
        or (entry.valid_until is not None and entry.valid_until <= now)
        or (entry.api_key.expires_at is not None and entry.api_key.expires_at.timestamp() <= now)
    ):
        return None, current
    return _copy(entry.api_key), current


def store(raw_key: str, api_key: ApiKey, *, valid_until: float | None, generation: int | None) -> None:
    if generation is None:
        return
    _entries[_digest(raw_key)] = _Entry(
        api_key=_copy(api_key), valid_until=valid_until, generation=generation, stored_at=time.monotonic()
    )


def last_used_noted(api_key: ApiKey) -> None:
    """The cached copy's last use follows the database's, so it is written at most once a minute."""
    for entry in list(_entries.values()):
        if entry.api_key.pk == api_key.pk:
            entry.api_key.last_used_at = api_key.last_used_at


def _copy(api_key: ApiKey) -> ApiKey:
    """A key and its partner of the request's own: a request never changes the cached ones."""
    partner = copy.copy(api_key.partner)
    clone = copy.copy(api_key)
    clone.partner = partner
    return clone
