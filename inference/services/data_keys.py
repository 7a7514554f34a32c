"""Rotation of the data key: every dataset re-encrypted under the current ALLIANCE_DATA_KEY."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from inference.encryption import DecryptionFailed, reencrypt_for
from inference.models import Dataset
from inference.services.tuning_datasets import dataset_path


@dataclass
class RotationReport:
    reencrypted: int = 0
    current: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def datasets_reencrypt() -> RotationReport:
    """Re-encrypts each dataset not yet under the current key, one file at a time, each replaced atomically: a
    reader sees the old blob or the new one, both readable while the old key stays in ALLIANCE_DATA_KEYS_OLD.
    Idempotent; run again after a failure."""
    report = RotationReport()
    for dataset in Dataset.objects.select_related("partner").order_by("pk").iterator(chunk_size=200):
        path = dataset_path(dataset)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            report.missing.append(dataset.public_id)
            continue
        try:
            rotated = reencrypt_for(dataset.partner, blob)
        except DecryptionFailed:
            report.unreadable.append(dataset.public_id)
            continue
        if rotated is None:
            report.current += 1
            continue
        temporary = path.with_name(path.name + ".rotating")
        temporary.write_bytes(rotated)
        os.replace(temporary, path)
        report.reencrypted += 1
    return report
