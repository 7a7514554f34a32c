"""OpenAPI: the API key scheme, the scope each operation needs, the one error shape on every operation, JSON bodies
where views are hand-written."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from partners.scopes import CAPABILITY_SCOPES, RESOURCE_SCOPES

ERROR_CODES = {
    "400": "Invalid request",
    "401": "Missing or invalid API key",
    "403": "Not allowed for this key: `insufficient_scope` names the scope it lacks",
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
        resources = " ".join(f"`{scope}`: {meaning}" for scope, meaning in RESOURCE_SCOPES.items())
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key issued to a partner. A key without scopes may do everything; a key with scopes may do "
                "what they grant. Capability scopes (a capability's name) submit jobs of that capability: "
                f"{', '.join(CAPABILITY_SCOPES)}. Resource scopes: {resources} Each operation names the scope it "
                "needs in `x-required-scopes` (any one suffices; empty: any key); without it the answer is 403 "
                "`insufficient_scope`."
            ),
        }


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


def scope_documentation(rule: str | tuple[str, ...] | None) -> tuple[list[str], str]:
    """`x-required-scopes` (any one of them suffices; empty: any key of the partner) and a sentence saying so."""
    from api.base import ANY_KEY, SUBMITS_JOB, scopes_of  # not at import: DRF loads this module while api.base loads

    if rule is None:
        return [], "Refused to every key: this operation declares no scope."
    if rule == SUBMITS_JOB:
        return list(CAPABILITY_SCOPES), "Scope: the capability the job is for (e.g. `summarization`)."
    needed = [scope for scope in scopes_of(rule) if scope != ANY_KEY]
    if not needed:
        return [], "Scope: none; any key of the partner (the answer shows what the key's scopes allow)."
    return needed, "Scope: " + " or ".join(f"`{scope}`" for scope in needed) + "."


class AllianceAutoSchema(AutoSchema):
    """Names collection reads `<path>_list`, as spectacular does for viewsets, so ids do not collide; documents the
    scope each operation needs, from the view's declaration."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None or not hasattr(self.view, "required_scopes"):
            return operation
        scopes, sentence = scope_documentation(self.view.required_scopes.get(self.method.upper()))
        operation["x-required-scopes"] = scopes
        description = operation.get("description", "")
        operation["description"] = f"{description}\n\n{sentence}" if description else sentence
        return operation

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        if self.method == "GET" and not self.path.rstrip("/").endswith("}") and operation_id.endswith("_retrieve"):
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id
