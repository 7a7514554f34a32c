"""Encryption at rest for partners' training data: one key per partner, derived from a master key.

The master key comes from ALLIANCE_DATA_KEY (urlsafe base64 of 32 bytes); the embedded default derives one
from SECRET_KEY. Each partner's key is HKDF-SHA256(master, info="dataset:<partner id>"), used with Fernet
(AES-128-CBC + HMAC-SHA256), so one partner's key cannot read another partner's files.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from partners.models import Partner


class DecryptionFailed(Exception):
    pass


def _master_key() -> bytes:
    if settings.ALLIANCE_DATA_KEY:
        key = base64.urlsafe_b64decode(settings.ALLIANCE_DATA_KEY)
        if len(key) != 32:
            raise ValueError("ALLIANCE_DATA_KEY must be urlsafe base64 of exactly 32 bytes.")
        return key
    return hashlib.sha256(f"alliance-data:{settings.SECRET_KEY}".encode()).digest()


def partner_cipher(partner: Partner) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"dataset:{partner.pk}".encode()).derive(
        _master_key()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_for(partner: Partner, plaintext: bytes) -> bytes:
    return partner_cipher(partner).encrypt(plaintext)


def decrypt_for(partner: Partner, token: bytes) -> bytes:
    try:
        return partner_cipher(partner).decrypt(token)
    except InvalidToken as exc:
        raise DecryptionFailed("The file cannot be decrypted with this partner's key.") from exc
