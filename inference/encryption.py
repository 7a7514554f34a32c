"""Encryption at rest for partners' training data: one key per partner, derived from a master data key.

The master key is ALLIANCE_DATA_KEY (urlsafe base64 of 32 bytes), independent of every other secret. Each
partner's key is HKDF-SHA256(master, info="dataset:<partner id>"), used with Fernet (AES-128-CBC + HMAC-SHA256),
so one partner's key cannot read another partner's files.

A blob names the master key it was encrypted under: `dk1:<key id>:<Fernet token>`, the key id being
HMAC-SHA256(master, "alliance-data-key-id") cut to 16 hex digits (it identifies the key without revealing it).
Decryption takes the key the blob names from ALLIANCE_DATA_KEY or ALLIANCE_DATA_KEYS_OLD, so that a rotation
leaves every blob readable; `manage.py rotate_data_key` then re-encrypts them under the current key. Blobs written
before key ids existed (a bare Fernet token) are tried under each configured key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from alliance.local_secrets import decode_data_key
from partners.models import Partner

PREFIX = b"dk1:"


class DecryptionFailed(Exception):
    pass


def key_id(master: bytes) -> str:
    return hmac.new(master, b"alliance-data-key-id", hashlib.sha256).hexdigest()[:16]


def _decoded(value: str, name: str) -> bytes:
    key = decode_data_key(value)
    if key is None:
        raise ImproperlyConfigured(f"{name} must be urlsafe base64 of exactly 32 bytes.")
    return key


def current_key() -> bytes:
    if not settings.ALLIANCE_DATA_KEY:
        raise ImproperlyConfigured(
            "ALLIANCE_DATA_KEY is not set: set it (urlsafe base64 of 32 bytes), or start the embedded default with "
            "`python manage.py up`, which generates one and keeps it in var/secrets.env."
        )
    return _decoded(settings.ALLIANCE_DATA_KEY, "ALLIANCE_DATA_KEY")


def configured_keys() -> dict[str, bytes]:
    """Every master key this process can decrypt with, by key id: the current one first, then the old ones."""
    keys = [current_key(), *(_decoded(old, "ALLIANCE_DATA_KEYS_OLD") for old in settings.ALLIANCE_DATA_KEYS_OLD)]
    return {key_id(key): key for key in keys}


def _partner_cipher(master: bytes, partner: Partner) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"dataset:{partner.pk}".encode()).derive(
        master
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def blob_key_id(blob: bytes) -> str | None:
    """The id of the master key a blob was encrypted under; None for a blob from before key ids."""
    if not blob.startswith(PREFIX):
        return None
    return blob[len(PREFIX) :].split(b":", 1)[0].decode("ascii", "replace")


def encrypt_for(partner: Partner, plaintext: bytes) -> bytes:
    master = current_key()
    return PREFIX + key_id(master).encode() + b":" + _partner_cipher(master, partner).encrypt(plaintext)


def decrypt_for(partner: Partner, blob: bytes) -> bytes:
    keys = configured_keys()
    kid = blob_key_id(blob)
    if kid is None:
        candidates, token = list(keys.values()), blob
    elif kid in keys:
        candidates, token = [keys[kid]], blob[len(PREFIX) + len(kid) + 1 :]
    else:
        raise DecryptionFailed(
            f"The file was encrypted under data key {kid}, which is neither ALLIANCE_DATA_KEY nor in "
            "ALLIANCE_DATA_KEYS_OLD."
        )
    for master in candidates:
        try:
            return _partner_cipher(master, partner).decrypt(token)
        except InvalidToken:
            continue
    raise DecryptionFailed("The file cannot be decrypted with this partner's key.")


def reencrypt_for(partner: Partner, blob: bytes) -> bytes | None:
    """The blob encrypted under the current key, or None when it already is."""
    if blob_key_id(blob) == key_id(current_key()):
        return None
    return encrypt_for(partner, decrypt_for(partner, blob))
