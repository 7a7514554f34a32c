"""Partners' training data: upload (validated, its tokens counted, then stored encrypted with the partner's key
within the partner's storage limits), path, delete, and the decrypted rows a tuning worker reads."""

from __future__ import annotations

import hashlib
import secrets
import string
from pathlib import Path

from django.conf import settings
from django.db import transaction

from alliance.errors import InvalidInput, TooLarge
from inference.datasets import DatasetRejected, ParsedDataset, parse_dataset
from inference.encryption import decrypt_for, encrypt_for
from inference.models import Dataset, DatasetTokenCount
from inference.services.tuning_tokens import count_groups
from inference.storage import storage_admit, storage_use
from inference.tuning_config import BASE_MODELS
from partners.models import Partner
from partners.services.quotas import storage_check

_ID_ALPHABET = string.ascii_lowercase + string.digits


def _public_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def dataset_create(*, partner: Partner, data: bytes, filename: str, task: str) -> Dataset:
    """Validates the file and counts its rows' tokens with each base model it may tune, then stores it encrypted
    with the partner's key, within the partner's storage limits; nothing is kept if it is refused."""
    storage_check(use=storage_use(partner_id=partner.pk), adding_bytes=len(data))  # early, before the work
    try:
        parsed = parse_dataset(data, filename, task)
    except DatasetRejected as exc:
        refusal = TooLarge if exc.too_large else InvalidInput
        raise refusal(
            f"The file was refused: {exc.problems[0].message}" if exc.problems else "The file was refused.",
            code=exc.code,
            param="file",
            details=[problem.as_dict() for problem in exc.problems],
        ) from None
    token_groups = {model: count_groups(model, task, parsed.rows) for model in BASE_MODELS[task]}
    public_id = _public_id("ds_")
    relative = Path("datasets") / str(partner.pk) / f"{public_id}.enc"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".part")
    temporary.write_bytes(encrypt_for(partner, data))
    try:
        with transaction.atomic():
            storage_admit(partner_id=partner.pk, adding_bytes=len(data))
            dataset = Dataset.objects.create(
                public_id=public_id,
                partner=partner,
                task=task,
                filename=Path(filename).name[:255] or f"{public_id}.{parsed.format}",
                format=parsed.format,
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                path=str(relative),
                stats=parsed.stats,
            )
            DatasetTokenCount.objects.bulk_create(
                DatasetTokenCount(dataset=dataset, base_model=model, groups=groups)
                for model, groups in token_groups.items()
                if groups is not None
            )
            temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return dataset


def dataset_token_groups(*, dataset: Dataset, base_model: str) -> list[list[int]] | None:
    """The dataset's per-row token counts with a base model's tokenizer, grouped for the split: counted at upload,
    or now (once) for a dataset uploaded before; None when that tokenizer is not readable in this process."""
    stored = DatasetTokenCount.objects.filter(dataset=dataset, base_model=base_model).first()
    if stored is not None:
        return stored.groups
    groups = count_groups(base_model, dataset.task, dataset_parsed(dataset).rows)
    if groups is not None:
        DatasetTokenCount.objects.get_or_create(dataset=dataset, base_model=base_model, defaults={"groups": groups})
    return groups


def dataset_path(dataset: Dataset) -> Path:
    return Path(settings.MEDIA_ROOT) / dataset.path


def dataset_delete(*, dataset: Dataset) -> None:
    dataset_path(dataset).unlink(missing_ok=True)
    dataset.delete()


def dataset_parsed(dataset: Dataset) -> ParsedDataset:
    """The dataset's rows, decrypted with its partner's key (worker side)."""
    plaintext = decrypt_for(dataset.partner, dataset_path(dataset).read_bytes())
    return parse_dataset(plaintext, dataset.filename, dataset.task)
