from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from alliance.api.errors import ApiError


class BoundedJSONParser(JSONParser):
    """JSON parser that refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (DRF reads the raw stream unbounded)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                raise ApiError(
                    f"The request body is {length} bytes; the limit is {limit}.",
                    code="request_too_large",
                    status_code=413,
                )
        return super().parse(stream, media_type, parser_context)
