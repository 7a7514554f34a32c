from __future__ import annotations

from django.conf import settings
from rest_framework import authentication
from rest_framework.request import Request

from alliance.api.errors import ApiError
from partners import ratelimit
from partners.models import ApiKey
from partners.services import api_key_authenticate_cached


def client_address(request: Request) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`. Failed attempts are counted per address to slow brute force."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != self.keyword.lower() or not raw:
            self._fail(request, "The Authorization header must be `Bearer <api key>`.")
        api_key = api_key_authenticate_cached(raw)
        if api_key is None:
            self._fail(request, "The API key is not valid: unknown, revoked, expired, or its partner is inactive.")
        request.partner = api_key.partner
        return (None, api_key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword

    def _fail(self, request: Request, message: str) -> None:
        state = ratelimit.hit(f"authfail:{client_address(request)}", settings.ALLIANCE_AUTH_FAILURES_PER_MINUTE)
        if not state.allowed:
            raise ApiError(
                "Too many failed authentication attempts from this address; wait before trying again.",
                code="too_many_auth_failures",
                status_code=429,
                headers={"Retry-After": str(int(state.reset_seconds) + 1)},
            )
        raise ApiError(message, code="invalid_api_key", status_code=401, headers={"WWW-Authenticate": "Bearer"})
