"""OpenAPI: the API key scheme, the one error shape on every operation, JSON bodies where views are hand-written."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

ERROR_CODES = {
    "400": "Invalid request",
    "401": "Missing or invalid API key",
    "403": "Not allowed for this key (scope)",
    "404": "Not found (also another partner's resources)",
    "409": "Conflict",
    "413": "Request too large",
    "415": "Unsupported media type",
    "429": "Rate limit or quota exceeded",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "param"],
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
ANY_JSON = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}
BINARY = {
    media_type: {"schema": {"type": "string", "format": "binary"}}
    for media_type in ("image/png", "image/jpeg", "image/webp")
}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key issued to a partner."}


def only_the_api(endpoints: list[tuple], **_: Any) -> list[tuple]:
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(("/api/v1/", "/v1/"))]


def document_errors_and_bodies(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            body = BINARY if path.endswith("/content") else ANY_JSON
            for code, response in list(responses.items()):
                if code.startswith("2") and (path.endswith("/content") or "content" not in response):
                    response["content"] = body
                    response["description"] = response.get("description") or "OK"
            if not any(code.startswith("2") for code in responses):
                responses["200"] = {"description": "OK", "content": body}
            for code, description in ERROR_CODES.items():
                responses.setdefault(code, {"description": description, "content": error_ref})
            responses.setdefault("500", {"description": "Platform failure", "content": error_ref})
            responses.setdefault("503", {"description": "Unavailable", "content": error_ref})
            responses.setdefault("504", {"description": "Timed out", "content": error_ref})
    return result


class AllianceAutoSchema(AutoSchema):
    """Names collection reads `<path>_list`, as spectacular does for viewsets, so ids do not collide."""

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        if self.method == "GET" and not self.path.rstrip("/").endswith("}") and operation_id.endswith("_retrieve"):
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id
