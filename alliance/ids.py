"""Time-ordered UUIDs (RFC 9562, version 7) for the primary keys of tables that grow without bound.

A random (version 4) key sends every insert to a random leaf of the primary-key index and of every index that
repeats the key (the usage ledger's job id): once the table outgrows memory, each insert reads a cold page and,
after each checkpoint, writes a full page image to the WAL. Version 7 keys start with the creation time in
milliseconds, so new keys land together at the right edge of those indexes, whatever the table's size. The 74
random bits that follow keep keys unguessable.
"""

from __future__ import annotations

import secrets
import time
import uuid

_RANDOM_BITS = 74
_VERSION = 0x7
_VARIANT = 0b10


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A version 7 UUID for `unix_ms` (default: now): 48 bits of milliseconds, version, variant, 74 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = secrets.randbits(_RANDOM_BITS)
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | _VERSION << 76 | rand_a << 64 | _VARIANT << 62 | rand_b
    return uuid.UUID(int=value)
