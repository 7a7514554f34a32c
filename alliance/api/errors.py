"""One error shape for every API answer: {"error": {"type", "code", "message", "param"}}.

The domain's errors (alliance.errors) are mapped to it here, once; the web pages use the same mapping."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from redis.exceptions import RedisError
from rest_framework import exceptions, status
from rest_framework.response import Response

from alliance import errors as domain
from alliance.errors import first_validation_error

logger = logging.getLogger(__name__)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    406: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


# Each kind of domain refusal and the HTTP status it answers with.
DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.InvalidInput: 400,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.TooLarge: 413,
    domain.UnsupportedMedia: 415,
    domain.LimitReached: 429,
}


class ApiError(exceptions.APIException):
    """An error of the HTTP edge itself (authentication, body size, content negotiation), raised by views only.
    Services and selectors raise domain errors instead."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status_code: int = status.HTTP_400_BAD_REQUEST,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.message = message
        self.error_code = code
        self.param = param
        self.headers = headers or {}
        self.details = details


def error_body(status_code: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "type": ERROR_TYPES.get(status_code, "api_error"),
            "code": code,
            "message": message,
            "param": param,
        }
    }


def status_for(exc: domain.DomainError) -> int:
    return next((DOMAIN_STATUS[kind] for kind in type(exc).__mro__ if kind in DOMAIN_STATUS), 400)


def api_error_for(exc: domain.DomainError) -> ApiError:
    """The HTTP form of a domain error: its status by kind, Retry-After for a spent limit."""
    status_code = status_for(exc)
    headers = {}
    if isinstance(exc, domain.LimitReached) and exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after) + 1)
    return ApiError(
        exc.message, code=exc.code, status_code=status_code, param=exc.param, headers=headers, details=exc.details
    )


def error_json_response(exc: ApiError | domain.DomainError) -> JsonResponse:
    """The one error shape as a plain Django response, for the web pages' JSON endpoints."""
    if isinstance(exc, domain.DomainError):
        exc = api_error_for(exc)
    body = error_body(exc.status_code, exc.error_code, exc.message, exc.param)
    if exc.details:
        body["error"]["details"] = exc.details
    response = JsonResponse(body, status=exc.status_code)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, domain.DomainError):
        exc = api_error_for(exc)
    if isinstance(exc, ApiError):
        body = error_body(exc.status_code, exc.error_code, exc.message, exc.param)
        if exc.details:
            body["error"]["details"] = exc.details
        return Response(body, status=exc.status_code, headers=exc.headers)
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable: %s", type(exc).__name__)
        return Response(
            error_body(503, "database_unavailable", "The platform's database is unavailable; retry shortly."),
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, RedisError):
        logger.error("redis unavailable: %s", type(exc).__name__)
        return Response(
            error_body(503, "rate_limiter_unavailable", "The platform's rate limiter is unavailable; retry shortly."),
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(413, "request_too_large", "The request body is larger than the platform accepts."),
            status=413,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    if isinstance(exc, exceptions.ValidationError):
        param, code, message = first_validation_error(exc.detail)
        if param and not message.lower().startswith(param.split(".")[-1].lower()):
            message = f"{param}: {message}"
        return Response(error_body(400, code, message, param), status=400)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else str(exc.default_detail)
    if isinstance(exc, exceptions.ParseError):
        code = "invalid_json"
    return Response(error_body(exc.status_code, str(code), message), status=exc.status_code, headers=headers)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(404, "not_found", "No such resource."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body(500, "internal_error", "The platform failed to answer; try again."), status=500)
