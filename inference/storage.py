"""What a partner keeps stored (uploaded and generated files, datasets), and the check that keeps it within the
partner's storage limits (partners.services.quotas.storage_check) without a race between two uploads."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Sum

from inference.models import Dataset, StoredFile
from partners.services.quotas import StorageUse, partner_lock, storage_check, storage_limits


def storage_use(*, partner_id: int) -> StorageUse:
    """The partner's stored bytes and items (files of every purpose and datasets) against its limits."""
    files = StoredFile.objects.filter(partner_id=partner_id).aggregate(n=Count("pk"), size=Sum("bytes"))
    datasets = Dataset.objects.filter(partner_id=partner_id).aggregate(n=Count("pk"), size=Sum("bytes"))
    max_bytes, max_files = storage_limits()
    return StorageUse(
        bytes=int(files["size"] or 0) + int(datasets["size"] or 0),
        files=int(files["n"]) + int(datasets["n"]),
        max_bytes=max_bytes,
        max_files=max_files,
    )


def storage_admit(*, partner_id: int, adding_bytes: int) -> StorageUse:
    """Refuses one more stored item past the partner's limits (413 or 429 `storage_quota_exceeded`).

    Locks the partner until the caller's transaction ends, so call it in the transaction that writes the new row:
    two concurrent uploads are counted one after the other, never both against the same free space."""
    assert transaction.get_connection().in_atomic_block, "storage_admit must run inside the storing transaction"
    partner_lock(partner_id=partner_id)
    use = storage_use(partner_id=partner_id)
    storage_check(use=use, adding_bytes=adding_bytes)
    return use
