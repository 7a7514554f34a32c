"""API key material: a public prefix for lookup plus a secret of which only a SHA-512 hash is kept."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

KEY_TAG = "alk"
PREFIX_LENGTH = 12
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class KeyMaterial:
    prefix: str
    secret: str

    @property
    def raw(self) -> str:
        return f"{KEY_TAG}_{self.prefix}_{self.secret}"

    @property
    def hashed_secret(self) -> str:
        return hash_secret(self.secret)


def generate_key_material() -> KeyMaterial:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return KeyMaterial(prefix=prefix, secret=secrets.token_urlsafe(32))


def generate_public_id() -> str:
    return "key_" + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(16))


def hash_secret(secret: str) -> str:
    return hashlib.sha512(secret.encode()).hexdigest()


def parse_raw_key(raw: str) -> KeyMaterial | None:
    tag, _, rest = raw.partition("_")
    prefix, _, secret = rest.partition("_")
    if tag != KEY_TAG or len(prefix) != PREFIX_LENGTH or not secret or len(secret) > 128:
        return None
    if any(ch not in _PREFIX_ALPHABET for ch in prefix):
        return None
    return KeyMaterial(prefix=prefix, secret=secret)


def secret_matches(secret: str, hashed_secret: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), hashed_secret)
