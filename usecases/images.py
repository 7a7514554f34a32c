"""Showcase pictures: PNG, JPEG or WebP only, judged by their content; bounded in bytes and in pixels before they are
decoded (the job images' rules, inference.images); re-encoded, so no metadata (EXIF location, comments, profiles)
and nothing hidden after the image data is ever served; stored under a random name with the format's extension."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass

from django.core.files.base import File
from PIL import Image, ImageOps

from alliance.errors import InvalidInput, TooLarge
from inference.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    CheckedImage,
    ImageRejected,
    check_image_bytes,
)

EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
# What a served file starts with, whatever its name says: only these three are ever answered as images.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


@dataclass(frozen=True)
class ShowcaseImage(CheckedImage):
    """A checked image re-encoded from its pixels alone, with a random file name."""

    @property
    def filename(self) -> str:
        return f"{secrets.token_hex(12)}.{EXTENSIONS[self.format]}"


def check_showcase_image(upload: File) -> CheckedImage:
    """The upload's format and size, read without decoding its pixels; InvalidInput / TooLarge name `image`."""
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_IMAGE_BYTES:
        message = f"The image is {size} bytes; the limit is {MAX_IMAGE_BYTES}."
        raise TooLarge(message, code="image_too_large", param="image")
    upload.seek(0)
    data = upload.read(MAX_IMAGE_BYTES + 1)
    upload.seek(0)
    try:
        return check_image_bytes(data)
    except ImageRejected as exc:
        error = TooLarge if exc.code in ("image_too_large", "image_too_many_pixels") else InvalidInput
        raise error(str(exc), code=exc.code, param="image") from None


def reencode(checked: CheckedImage) -> ShowcaseImage:
    """Decoded once (its size already checked), turned upright, and its pixels alone written anew in its own format:
    a fresh image carries no EXIF, ICC profile, text chunk or trailing bytes of the upload."""
    with Image.open(io.BytesIO(checked.data)) as source:
        upright = ImageOps.exif_transpose(source)
    has_alpha = "A" in upright.mode or "transparency" in upright.info
    mode = "RGBA" if has_alpha and checked.format != "JPEG" else "RGB"
    pixels = upright.convert(mode)
    clean = Image.frombytes(mode, pixels.size, pixels.tobytes())
    out = io.BytesIO()
    options = {"JPEG": {"quality": 90, "optimize": True}, "WEBP": {"quality": 90}, "PNG": {"optimize": True}}
    clean.save(out, checked.format, **options[checked.format])
    return ShowcaseImage(data=out.getvalue(), format=checked.format, width=clean.width, height=clean.height)


def prepare_showcase_image(upload: File) -> ShowcaseImage:
    return reencode(check_showcase_image(upload))


def served_content_type(head: bytes) -> str | None:
    """The content type of a stored picture by its first bytes; None for anything that is not PNG, JPEG or WebP."""
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "ShowcaseImage", "check_showcase_image", "prepare_showcase_image"]
