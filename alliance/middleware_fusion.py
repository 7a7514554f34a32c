"""Under ASGI, consecutive plain Django middleware run as one: a request's hooks of each kind in one thread hop.

Django runs every hook of a `MiddlewareMixin` middleware (process_request, process_response) of an async request
through its own `sync_to_async` hop (MiddlewareMixin.__acall__), and each process_view through another: with the
platform's MIDDLEWARE that was about 17 thread hops per request before the view's own, and most of what an ASGI
request cost beyond a WSGI one (bench/README.md, gateway.py). A fused group runs its members' process_request hooks in
order in one hop, awaits the rest of the chain on the event loop (so a view that waits on a job still holds no
thread), and runs their process_response hooks in reverse order in one hop; their process_view hooks, in order, are
one hook of the group.

Django's rules are kept: a member whose process_request answers short-circuits the members after it and the view,
and its own process_response and those of the members before it see the answer; an exception raised by a member's
hook becomes the response Django's convert_exception_to_response would make of it, where Django would catch it (a
process_request's: the members before it still see that response; a process_response's: the members before it see
it). Only members that are plain MiddlewareMixin subclasses (no __call__ or __acall__ of their own, no
process_exception or process_template_response) are fused; settings.MIDDLEWARE itself is unchanged, so the WSGI
handler, the test client and Django's system checks see the list as written.

Hooks known to do no blocking work (LOOP_SAFE: they read headers and cookies, set attributes and lazy objects, write
headers) run on the event loop itself, without a hop, when every hook of that kind in the group is one of them:
SecurityMiddleware (a group of its own) then costs no hop at all, and the main group's process_request none. Hooks
that may touch the database run in a thread when they would: the session's process_response when the session was
modified (it saves), the messages' process_response when messages were read or added (it may load the session)
(LOOP_SAFE_WHEN: else they only set headers, on the loop), CSRF's process_view but for a csrf_exempt view, such as
every API view (it reads form bodies and renders the refusal; for an exempt view it returns at once). So an API
request's middleware take no hop. Were a loop-safe hook to reach the database after all, Django would refuse with
SynchronousOnlyOperation instead of blocking the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string


def fusable(middleware: Any) -> bool:
    """Whether a middleware class is a plain MiddlewareMixin whose hooks can run in a group."""
    return (
        isinstance(middleware, type)
        and issubclass(middleware, MiddlewareMixin)
        and middleware.__call__ is MiddlewareMixin.__call__
        and middleware.__acall__ is MiddlewareMixin.__acall__
        and not hasattr(middleware, "process_exception")
        and not hasattr(middleware, "process_template_response")
    )


# Per middleware class, the hooks that run on the event loop (see the module's docstring).
LOOP_SAFE: dict[str, frozenset[str]] = {
    "django.middleware.security.SecurityMiddleware": frozenset({"process_request", "process_response"}),
    "django.contrib.sessions.middleware.SessionMiddleware": frozenset({"process_request"}),  # a lazy SessionStore
    "alliance.locale.SiteLocaleMiddleware": frozenset({"process_request", "process_response"}),
    "django.middleware.common.CommonMiddleware": frozenset({"process_request", "process_response"}),
    "django.middleware.csrf.CsrfViewMiddleware": frozenset({"process_request", "process_response"}),
    "django.contrib.auth.middleware.AuthenticationMiddleware": frozenset({"process_request"}),  # a lazy user
    "django.contrib.messages.middleware.MessageMiddleware": frozenset({"process_request"}),
    "django.middleware.clickjacking.XFrameOptionsMiddleware": frozenset({"process_response"}),
    "csp.middleware.CSPMiddleware": frozenset({"process_request", "process_response"}),
}


def _session_unsaved(request: HttpRequest) -> bool:
    """SessionMiddleware.process_response saves (the database) only a modified, non-empty session, or every session
    under SESSION_SAVE_EVERY_REQUEST; else it only sets headers."""
    session = getattr(request, "session", None)
    if session is None:
        return True
    return not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) or session.is_empty()


def _messages_untouched(request: HttpRequest) -> bool:
    """MessageMiddleware.process_response stores messages (maybe in the session) only when some were read or added."""
    storage = getattr(request, "_messages", None)
    return storage is None or not (storage.used or storage.added_new)


# Hooks that run on the event loop when the request left them nothing to write (checked after the view).
LOOP_SAFE_WHEN: dict[str, dict[str, Callable[[HttpRequest], bool]]] = {
    "django.contrib.sessions.middleware.SessionMiddleware": {"process_response": _session_unsaved},
    "django.contrib.messages.middleware.MessageMiddleware": {"process_response": _messages_untouched},
}


def loop_safe(path: str, hook: str) -> bool:
    """Whether the hook of the middleware at `path` may run on the event loop. CSRF's hooks read the session when
    the token is kept there (CSRF_USE_SESSIONS), so then they may not."""
    if path == "django.middleware.csrf.CsrfViewMiddleware" and settings.CSRF_USE_SESSIONS:
        return False
    return hook in LOOP_SAFE.get(path, frozenset())


def _never_called(request: HttpRequest) -> HttpResponseBase:
    raise RuntimeError("a fused middleware's own get_response is never called")


class FusedMiddleware:
    """Several plain MiddlewareMixin middleware (`member_paths`, in MIDDLEWARE's order) as one."""

    member_paths: tuple[str, ...] = ()
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.members: list[MiddlewareMixin] = []
        paths: list[str] = []
        for path in self.member_paths:
            try:
                self.members.append(import_string(path)(_never_called))
            except MiddlewareNotUsed:
                continue
            paths.append(path)

        pairs = list(zip(paths, self.members, strict=True))

        def having(hook: str) -> list[str]:
            return [path for path, member in pairs if hasattr(member, hook)]

        def inline(hook: str) -> bool:
            return all(loop_safe(path, hook) for path in having(hook))

        self.inline_request = inline("process_request")
        self.inline_response = inline("process_response")
        # Else, when each response hook is loop-safe or has a condition: those conditions, checked per request.
        hooked = having("process_response")
        conditional = [LOOP_SAFE_WHEN.get(path, {}).get("process_response") for path in hooked]
        safe_or_conditional = all(
            loop_safe(path, "process_response") or check for path, check in zip(hooked, conditional, strict=True)
        )
        self._response_checks = [check for check in conditional if check] if safe_or_conditional else None
        self._views = [member.process_view for member in self.members if hasattr(member, "process_view")]
        # CSRF's process_view returns at once for a view marked csrf_exempt (every DRF view): when it is the group's
        # only process_view, such a view's costs no hop.
        self.exempt_views_inline = having("process_view") == ["django.middleware.csrf.CsrfViewMiddleware"]
        if self._views:
            self.process_view = self._aprocess_view if iscoroutinefunction(get_response) else self._process_view
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _enter(self, request: HttpRequest) -> tuple[HttpResponseBase | None, int]:
        """Runs the members' process_request in order: (the response that short-circuits or None, how many members'
        process_response must see it)."""
        for index, member in enumerate(self.members):
            hook = getattr(member, "process_request", None)
            if hook is None:
                continue
            try:
                response = hook(request)
            except Exception as exc:  # noqa: BLE001 - made a response, as Django's wrapper of this member would
                return response_for_exception(request, exc), index
            if response is not None:
                return response, index + 1
        return None, len(self.members)

    def _leave(self, request: HttpRequest, response: HttpResponseBase, entered: int) -> HttpResponseBase:
        """Runs the process_response of the first `entered` members, the last first."""
        for member in reversed(self.members[:entered]):
            hook = getattr(member, "process_response", None)
            if hook is None:
                continue
            try:
                response = hook(request, response)
            except Exception as exc:  # noqa: BLE001 - made a response, as Django's wrapper of this member would
                response = response_for_exception(request, exc)
        return response

    def _process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple, kwargs: dict[str, Any]
    ) -> HttpResponseBase | None:
        for hook in self._views:
            response = hook(request, view, args, kwargs)
            if response is not None:
                return response
        return None

    async def _aprocess_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple, kwargs: dict[str, Any]
    ) -> HttpResponseBase | None:
        if self.exempt_views_inline and getattr(view, "csrf_exempt", False):
            return self._process_view(request, view, args, kwargs)
        return await sync_to_async(self._process_view, thread_sensitive=True)(request, view, args, kwargs)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        response, entered = self._enter(request)
        if response is None:
            response = self.get_response(request)
        return self._leave(request, response, entered)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.inline_request:
            response, entered = self._enter(request)
        else:
            response, entered = await sync_to_async(self._enter, thread_sensitive=True)(request)
        if response is None:
            response = await self.get_response(request)
        if self.inline_response or (
            self._response_checks is not None and all(check(request) for check in self._response_checks)
        ):
            return self._leave(request, response, entered)
        return await sync_to_async(self._leave, thread_sensitive=True)(request, response, entered)


_groups: dict[tuple[str, ...], str] = {}


def _group_path(members: tuple[str, ...]) -> str:
    """The dotted path of the FusedMiddleware class of these members (made once, kept in this module)."""
    if members not in _groups:
        name = f"Fused{len(_groups)}"
        globals()[name] = type(name, (FusedMiddleware,), {"member_paths": members, "__module__": __name__})
        _groups[members] = f"{__name__}.{name}"
    return _groups[members]


def fused(paths: Sequence[str]) -> list[str]:
    """MIDDLEWARE with each run of consecutive fusable entries replaced by one fused group (a run of one only when a
    hook of it runs on the loop: alone it would gain nothing else)."""
    result: list[str] = []
    run: list[str] = []

    def close_run() -> None:
        alone_but_inline = len(run) == 1 and bool(LOOP_SAFE.get(run[0]))
        result.extend([_group_path(tuple(run))] if len(run) > 1 or alone_but_inline else run)
        run.clear()

    for path in paths:
        if fusable(import_string(path)):
            run.append(path)
        else:
            close_run()
            result.append(path)
    close_run()
    return result


class FusedASGIHandler(ASGIHandler):
    """Django's ASGI handler with MIDDLEWARE's plain runs fused (see the module's docstring)."""

    def load_middleware(self, is_async: bool = False) -> None:
        written = settings.MIDDLEWARE
        settings.MIDDLEWARE = fused(written)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = written
