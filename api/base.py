"""The base of every partner API view: key auth, scopes, per-key request limits and the x-ratelimit-* headers.

Scopes are enforced here and only here: each view declares, per HTTP method it handles, the scope a key needs
(`required_scopes`). A view that handles a method without declaring it fails when defined, so no route can forget.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alliance.api.errors import ApiError
from inference.services.submission import Submission, job_request_submit
from partners import ratelimit
from partners.models import ApiKey, Partner
from partners.scopes import ALL_SCOPES
from partners.selectors import units_totals
from partners.services import UnitsState, month_start, next_month_start

# Declarations that are not a scope of the vocabulary:
ANY_KEY = "any key"  # any valid key of the partner (what the answer shows may still depend on its scopes)
SUBMITS_JOB = "the submitted capability"  # the capability's own scope, checked where the job is submitted

ScopeRule = str | tuple[str, ...]  # one scope, or a tuple: any one of these
HANDLED_METHODS = ("get", "post", "put", "patch", "delete")


def scopes_of(rule: ScopeRule) -> tuple[str, ...]:
    return rule if isinstance(rule, tuple) else (rule,)


def check_scope_declaration(view: type[PartnerApiView]) -> None:
    """Every method the view handles declares a rule, and every rule names scopes of the vocabulary."""
    declared = view.required_scopes
    for method in HANDLED_METHODS:
        if getattr(view, method, None) is not None and method.upper() not in declared:
            raise ImproperlyConfigured(
                f"{view.__module__}.{view.__qualname__} handles {method.upper()} but declares no scope for it "
                "in required_scopes."
            )
    for method, rule in declared.items():
        unknown = [scope for scope in scopes_of(rule) if scope not in (*ALL_SCOPES, ANY_KEY, SUBMITS_JOB)]
        if method.lower() not in HANDLED_METHODS or unknown or not scopes_of(rule):
            raise ImproperlyConfigured(f"{view.__qualname__}.required_scopes[{method!r}] = {rule!r} is not valid.")


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: 1s, 6m0s, 2h3m4s."""
    total = max(0, int(seconds + 0.999))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
class PartnerApiView(APIView):
    """Views that act for the partner behind an API key. Read requests share one per-key bucket."""

    read_bucket = True
    max_body_bytes: int | None = None  # for uploads, checked before the body is read
    # HTTP method -> the scope a key needs (or a tuple: any one of them), ANY_KEY or SUBMITS_JOB
    required_scopes: ClassVar[Mapping[str, ScopeRule]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_scope_declaration(cls)

    @property
    def partner(self) -> Partner:
        return self.request.auth.partner

    @property
    def api_key(self) -> ApiKey:
        return self.request.auth

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self._refuse_outside_scope(request)
        self._refuse_oversized_body(request)
        if self.read_bucket:
            self.check_request_rate(request, "read", settings.ALLIANCE_API_KEY_READ_RPM)

    def has_scope(self, scope: str) -> bool:
        return self.api_key.allows(scope)

    @property
    def allowed_capabilities(self) -> list[str] | None:
        """The capabilities whose jobs this key may see; None: all."""
        return self.api_key.allowed_capabilities()

    def _refuse_outside_scope(self, request: Request) -> None:
        method = request.method.lower()
        if method == "options":
            return  # the route's metadata only
        if method == "head":
            method = "get"
        if getattr(self, method, None) is None:
            return  # answered 405 by the dispatch
        rule = self.required_scopes.get(method.upper())
        if rule is None:  # unreachable for declared views (checked when defined); refused all the same
            raise ApiError(
                "This operation declares no scope; it is refused.", code="insufficient_scope", status_code=403
            )
        needed = [scope for scope in scopes_of(rule) if scope not in (ANY_KEY, SUBMITS_JOB)]
        if needed and not any(self.has_scope(scope) for scope in needed):
            wanted = " or ".join(f"`{scope}`" for scope in needed)
            raise ApiError(
                f"This API key lacks the scope this operation needs: {wanted}.",
                code="insufficient_scope",
                status_code=403,
                details=[{"required_scopes": needed}],
            )

    def _refuse_oversized_body(self, request: Request) -> None:
        if self.max_body_bytes is None:
            return
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            raise ApiError(
                f"The request body is {length} bytes; the limit is {self.max_body_bytes}.",
                code="request_too_large",
                status_code=413,
            )

    def check_request_rate(self, request: Request, bucket: str, limit: int) -> None:
        with self.window_reported(request):
            request.requests_state = ratelimit.admit(key_id=request.auth.public_id, bucket=bucket, limit=limit)

    @staticmethod
    @contextmanager
    def window_reported(request: Request) -> Iterator[None]:
        """A refused request still reports its spent window in the x-ratelimit-* headers."""
        try:
            yield
        except ratelimit.RateLimited as exc:
            request.requests_state = exc.window
            raise

    def submit_job(self, **fields: Any) -> Submission:
        """Submits a job for this key (capability by name, its quota and rpm) and keeps the headers' figures."""
        with self.window_reported(self.request):
            submission = job_request_submit(api_key=self.api_key, **fields)
        self.request.requests_state = submission.window
        if submission.units is not None:
            self.request.units_state = submission.units
        return submission

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(getattr(request, "_auth", None), ApiKey):  # never re-run authentication here
            self._add_ratelimit_headers(request, response)
        return response

    def _add_ratelimit_headers(self, request: Request, response: Response) -> None:
        state = getattr(request, "requests_state", None)
        if state is not None:
            response["x-ratelimit-limit-requests"] = str(state.limit)
            response["x-ratelimit-remaining-requests"] = str(state.remaining)
            response["x-ratelimit-reset-requests"] = format_duration(state.reset_seconds)
        units: UnitsState | None = getattr(request, "units_state", None)
        if units is None:
            limit, used = units_totals(partner=request.auth.partner, month=month_start())
            units = UnitsState(
                limit=limit, used=used, reset_seconds=(next_month_start() - timezone.now()).total_seconds()
            )
        response["x-ratelimit-limit-units"] = str(units.limit)
        response["x-ratelimit-remaining-units"] = str(units.remaining)
        response["x-ratelimit-reset-units"] = format_duration(units.reset_seconds)
