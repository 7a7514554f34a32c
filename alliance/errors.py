"""Domain errors: what services and selectors raise when a rule of the domain is broken.

They know nothing of HTTP. Each edge maps them once: the API to its one error shape
(`alliance.api.errors.api_exception_handler`), the web pages to theirs, the worker to a failed job, a management
command to its error message. Each class is one kind of refusal; `code` says which rule, `param` which input.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable machine-readable code, a message for people and, where one input is at fault, its
    name (`input.text`, `model`)."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.details = details


class InvalidInput(DomainError):
    """The request is malformed or breaks a rule of its fields."""


class NotFound(DomainError):
    """No such thing, or it belongs to another partner (which is the same to the caller)."""


class Forbidden(DomainError):
    """The caller is known but may not do this (a key outside its scope, a role too low)."""


class Conflict(DomainError):
    """The thing is in a state that does not allow this (already finished, key reused with another body)."""


class TooLarge(DomainError):
    """The input is larger than the platform accepts."""


class UnsupportedMedia(DomainError):
    """The input's format is not one the platform reads."""


class LimitReached(DomainError):
    """A quota or a rate limit is spent; `retry_after` says in how many seconds it opens again."""

    def __init__(self, message: str, *, code: str, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, code=code, **kwargs)
        self.retry_after = retry_after


def first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str, str]:
    """Walks a DRF ValidationError detail to its first leaf: (param path like `a.b[0].c`, code, message)."""
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        if key == "non_field_errors":
            return first_validation_error(value, path)
        step = f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
        return first_validation_error(value, path + step)
    if isinstance(detail, list) and detail:
        return first_validation_error(next((item for item in detail if item), detail[0]), path)
    code = getattr(detail, "code", None) or "invalid"
    return (path or None), str(code), str(detail)


def invalid_input_from(errors: Any, path: str = "") -> InvalidInput:
    """The first of a serializer's errors as one InvalidInput naming its field (`input.text: This field...`)."""
    param, code, message = first_validation_error(errors, path)
    return InvalidInput(f"{param}: {message}" if param else message, code=code, param=param)
