"""API views that answer once a job finishes, holding no thread while it runs.

Such a view is async (AwaitsJobs.as_view). Its handler runs as any DRF handler, in a thread (sync_to_async): key
auth, scopes, validation, the wait slot and the submission; instead of waiting it returns an AwaitJob. The view then
gives back the request's database connection and awaits the job on the event loop (inference.services.waiting:
woken by the job's announcement, no thread held), releases the slot, and builds the answer in a thread again with
the handler's `answer`, through the same exception handler and finalize_response (one error shape, the
x-ratelimit-* headers) as any other answer of the view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import PartnerApiView
from inference.models import Job
from inference.services import waiting


class AwaitJob(Response):
    """What a handler returns to answer with `answer(job)` once `job` finishes or `timeout` seconds pass; the
    `slot` it took before submitting is released however the wait ends."""

    def __init__(
        self,
        *,
        view: APIView,
        job: Job,
        timeout: float,
        slot: waiting.WaitSlot,
        answer: Callable[[Job], HttpResponseBase],
    ) -> None:
        super().__init__(status=202)
        self.view, self.job, self.timeout, self.slot, self.answer = view, job, timeout, slot, answer

    async def answered(self) -> HttpResponseBase:
        try:
            job = await waiting.job_await(job_id=self.job.pk, timeout=self.timeout)
        finally:
            await self.slot.arelease()
        return await sync_to_async(self._finish)(job)

    def _finish(self, job: Job) -> HttpResponseBase:
        view = self.view
        try:
            response = self.answer(job)
        except Exception as exc:  # noqa: BLE001 - mapped by the view's exception handler, as DRF's dispatch does
            response = view.handle_exception(exc)
        return view.finalize_response(view.request, response)


def job_awaited(
    view: PartnerApiView, *, timeout: float, answer: Callable[[Job], HttpResponseBase], submit: Callable[[], Job]
) -> AwaitJob:
    """Takes the key's wait slot, then submits the job (`submit`): a request refused `too_many_waiting` (429)
    leaves no job and no charge, and a submission that fails gives the slot back."""
    slot = waiting.wait_slot_take(api_key=view.api_key)
    try:
        job = submit()
    except BaseException:
        slot.release()
        raise
    return AwaitJob(view=view, job=job, timeout=timeout, slot=slot, answer=answer)


def _handled(sync_view: Callable[..., HttpResponseBase], request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
    response = sync_view(request, *args, **kwargs)
    if isinstance(response, AwaitJob):
        waiting.connections_release()  # a waiting request holds no database connection
    return response


def _let_the_request_thread_go() -> None:
    """Under ASGI, Django runs a request's sync steps on a thread of the request's own (asgiref's
    ThreadSensitiveContext), kept until the request ends. A request about to wait lets it go: its next sync step
    (the answer) starts another. Its database connections were given back and forgotten first."""
    current = getattr(SyncToAsync, "thread_sensitive_context", None)  # asgiref 3.x; absent: the thread stays
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    context = current.get(None) if current is not None else None
    executor = executors.pop(context, None) if context is not None and executors is not None else None
    if executor is not None:
        executor.shutdown(wait=False)


def _release_when_done(handled: asyncio.Future[Any]) -> None:
    """The request went away while its handler ran: a slot the handler took is given back."""
    if not handled.cancelled() and handled.exception() is None and isinstance(handled.result(), AwaitJob):
        slot = handled.result().slot
        asyncio.get_running_loop().create_task(slot.arelease())


class AwaitsJobs:
    # Mixin for an APIView whose handlers may return an AwaitJob: its view is async. (No docstring: a view's
    # docstring is its OpenAPI description.)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        sync_view = super().as_view(**initkwargs)  # type: ignore[misc]  # APIView.as_view, csrf-exempt

        async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            handled = asyncio.ensure_future(sync_to_async(_handled)(sync_view, request, *args, **kwargs))
            try:
                response = await asyncio.shield(handled)
            except asyncio.CancelledError:
                handled.add_done_callback(_release_when_done)
                raise
            if isinstance(response, AwaitJob):
                _let_the_request_thread_go()
                response = await response.answered()
            return response

        # What DRF's and Django's as_view set (cls, view_class, initkwargs, csrf_exempt), for the URL resolver, the
        # CSRF middleware and the schema generator.
        view.__dict__.update({name: value for name, value in sync_view.__dict__.items() if name != "__wrapped__"})
        view.__doc__ = sync_view.__doc__
        view.__name__ = sync_view.__name__
        view.__qualname__ = sync_view.__qualname__
        view.__module__ = sync_view.__module__
        return view
