"""Datasets at rest name the data key they were encrypted under, so that rotating ALLIANCE_DATA_KEY leaves every
dataset readable, and `rotate_data_key` moves them all under the new key."""

from __future__ import annotations

import base64
import hashlib
import secrets
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.management import CommandError, call_command

from inference.encryption import DecryptionFailed, blob_key_id, decrypt_for, key_id
from inference.models import Dataset
from inference.services.tuning_datasets import dataset_parsed, dataset_path
from tests.inference.test_datasets_and_tuning_api import SECRET_PHRASE, classification_jsonl, upload

pytestmark = pytest.mark.django_db


def _new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _kid(key: str) -> str:
    return key_id(base64.urlsafe_b64decode(key))


def _rotate(settings, new: str) -> str:
    """What an operator does: the new key becomes ALLIANCE_DATA_KEY, the previous one stays readable."""
    old = settings.ALLIANCE_DATA_KEY
    settings.ALLIANCE_DATA_KEY = new
    settings.ALLIANCE_DATA_KEYS_OLD = [old]
    return old


def _uploaded(api) -> Dataset:
    response = upload(api, classification_jsonl())
    assert response.status_code == 201, response.json()
    return Dataset.objects.get(public_id=response.json()["id"])


def test_a_stored_dataset_names_its_data_key_and_holds_no_plaintext(api, settings):
    stored = dataset_path(_uploaded(api)).read_bytes()
    assert blob_key_id(stored) == _kid(settings.ALLIANCE_DATA_KEY)
    assert SECRET_PHRASE.encode() not in stored and settings.ALLIANCE_DATA_KEY.encode() not in stored


def test_after_a_rotation_old_datasets_stay_readable_and_rotate_data_key_moves_them_to_the_new_key(api, settings):
    dataset = _uploaded(api)
    old_key = settings.ALLIANCE_DATA_KEY
    new_key = _new_key()
    _rotate(settings, new_key)
    assert blob_key_id(dataset_path(dataset).read_bytes()) == _kid(old_key)
    assert dataset_parsed(dataset).stats["rows"] == 20  # readable through the old key, by id

    newer = _uploaded(api)  # new data goes under the new key at once
    assert blob_key_id(dataset_path(newer).read_bytes()) == _kid(new_key)

    out = StringIO()
    call_command("rotate_data_key", stdout=out)
    assert "1 dataset(s) re-encrypted, 1 already under it" in out.getvalue()
    rotated = dataset_path(dataset).read_bytes()
    assert blob_key_id(rotated) == _kid(new_key)

    settings.ALLIANCE_DATA_KEYS_OLD = []  # the old key retired: everything still reads
    assert dataset_parsed(dataset).stats["rows"] == 20 and dataset_parsed(newer).stats["rows"] == 20
    out = StringIO()
    call_command("rotate_data_key", stdout=out)
    assert "0 dataset(s) re-encrypted, 2 already under it" in out.getvalue()


def test_a_dataset_under_a_retired_key_fails_by_naming_that_key(api, partner, settings):
    dataset = _uploaded(api)
    old_key = _rotate(settings, _new_key())
    settings.ALLIANCE_DATA_KEYS_OLD = []  # retired too early
    with pytest.raises(DecryptionFailed, match=_kid(old_key)):
        decrypt_for(partner, dataset_path(dataset).read_bytes())
    with pytest.raises(CommandError, match=dataset.public_id):
        call_command("rotate_data_key", stdout=StringIO(), stderr=StringIO())
    settings.ALLIANCE_DATA_KEYS_OLD = [old_key]  # put back: the command finishes the job
    call_command("rotate_data_key", stdout=StringIO())
    settings.ALLIANCE_DATA_KEYS_OLD = []
    assert dataset_parsed(dataset).stats["rows"] == 20


def test_a_blob_from_before_key_ids_is_read_and_rotated(api, partner, settings):
    """Earlier blobs were bare Fernet tokens under a key derived from the secret key: an operator lists that key in
    ALLIANCE_DATA_KEYS_OLD, and rotate_data_key moves them under the data key."""
    legacy_master = hashlib.sha256(f"alliance-data:{settings.SECRET_KEY}".encode()).digest()
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"dataset:{partner.pk}".encode()).derive(
        legacy_master
    )
    dataset = _uploaded(api)
    path = dataset_path(dataset)
    path.write_bytes(Fernet(base64.urlsafe_b64encode(derived)).encrypt(classification_jsonl()))
    with pytest.raises(DecryptionFailed):
        decrypt_for(partner, path.read_bytes())  # the secret key alone no longer opens anything
    settings.ALLIANCE_DATA_KEYS_OLD = [base64.urlsafe_b64encode(legacy_master).decode()]
    assert SECRET_PHRASE.encode() in decrypt_for(partner, path.read_bytes())
    call_command("rotate_data_key", stdout=StringIO())
    assert blob_key_id(path.read_bytes()) == _kid(settings.ALLIANCE_DATA_KEY)
    settings.ALLIANCE_DATA_KEYS_OLD = []
    assert dataset_parsed(dataset).stats["rows"] == 20
