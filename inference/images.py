"""Image checks and storage. Pillow only (no torch): the web process validates, the worker reads and writes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import secrets
import string
import warnings
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from PIL import Image, UnidentifiedImageError

from inference.models import PRODUCED_PURPOSES, FilePurpose, Job, StoredFile
from inference.storage import storage_admit
from partners.models import Partner

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
FILE_ID_PREFIX = "file_"
_ID_ALPHABET = string.ascii_lowercase + string.digits


class ImageRejected(ValueError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return ALLOWED_FORMATS[self.format]


def check_image_bytes(data: bytes) -> CheckedImage:
    """Format, size in bytes and in pixels (a decompression bomb is refused before it is decoded)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(f"The image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}.", "image_too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format, (width, height) = image.format, image.size
                if image_format not in ALLOWED_FORMATS:
                    raise ImageRejected(
                        f"Images must be PNG, JPEG or WebP, not {image_format}.", "unsupported_image_format"
                    )
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageRejected(
                        f"The image has {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS} pixels.",
                        "image_too_many_pixels",
                    )
                image.verify()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("The image declares too many pixels.", "image_too_many_pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("The data is not a readable PNG, JPEG or WebP image.", "invalid_image") from exc
    return CheckedImage(data=data, format=image_format, width=width, height=height)


def decode_base64_image(value: str) -> CheckedImage:
    if value.startswith("data:"):
        _, _, value = value.partition(",")
    if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ImageRejected(f"The image is larger than {MAX_IMAGE_BYTES} bytes.", "image_too_large")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejected(
            "`image` must be base64 PNG/JPEG/WebP data or an uploaded file id.", "invalid_image"
        ) from exc
    return check_image_bytes(data)


def _new_file_id() -> str:
    return FILE_ID_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def store_file(
    *,
    partner: Partner,
    data: bytes,
    filename: str,
    content_type: str,
    purpose: str,
    width: int | None = None,
    height: int | None = None,
    job: Job | None = None,
) -> StoredFile:
    """Stores a file of the partner. An upload (purpose `image`) must fit the partner's storage limits, checked in
    the transaction that records it (413/429 `storage_quota_exceeded`); a generated output is stored regardless,
    its job being paid for, and counts against the limits of later uploads."""
    public_id = _new_file_id()
    extension = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "application/jsonl": ".jsonl"}.get(
        content_type, ".bin"
    )
    relative = Path(purpose) / str(partner.pk) / f"{public_id}{extension}"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(target.suffix + ".part")
    temporary.write_bytes(data)
    try:
        with transaction.atomic():
            if purpose not in PRODUCED_PURPOSES:
                storage_admit(partner_id=partner.pk, adding_bytes=len(data))
            stored = StoredFile.objects.create(
                public_id=public_id,
                partner=partner,
                purpose=purpose,
                filename=Path(filename).name[:255] or public_id,
                content_type=content_type,
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                path=str(relative),
                width=width,
                height=height,
                job=job,
            )
            temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return stored


def store_image(*, partner: Partner, image: CheckedImage, filename: str = "") -> StoredFile:
    return store_file(
        partner=partner,
        data=image.data,
        filename=filename or f"image.{image.format.lower()}",
        content_type=image.content_type,
        purpose=FilePurpose.IMAGE,
        width=image.width,
        height=image.height,
    )


def file_path(stored: StoredFile) -> Path:
    return Path(settings.MEDIA_ROOT) / stored.path


def delete_stored_file(stored: StoredFile) -> None:
    file_path(stored).unlink(missing_ok=True)
    stored.delete()
