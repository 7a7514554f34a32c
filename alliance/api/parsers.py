from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from alliance.api.errors import ApiError

# Deeper JSON than any request needs; deeper values overflow the stack of whatever recurses over them later.
MAX_JSON_DEPTH = 64


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar: 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


class JsonRefused(ValueError):
    """Text that is not JSON, or JSON nested deeper than MAX_JSON_DEPTH."""


def json_loads_bounded(raw: str | bytes) -> Any:
    """json.loads for text from outside the API parser (form fields, the first line of an upload): refuses bodies
    nested deeper than MAX_JSON_DEPTH with JsonRefused instead of a RecursionError later."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    except RecursionError:
        raise JsonRefused(f"The JSON nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise JsonRefused(f"The JSON nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.")
    return value


def _too_deep() -> ApiError:
    return ApiError(
        f"The JSON body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.",
        code="json_too_deep",
        status_code=400,
    )


class BoundedJSONParser(JSONParser):
    """JSON parser that refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (DRF reads the raw stream unbounded) and
    bodies nested deeper than MAX_JSON_DEPTH (a RecursionError in the parser or later, a 500, otherwise)."""

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
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep() from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise _too_deep()
        return data
