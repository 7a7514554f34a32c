"""WhiteNoise's middleware, able to run on the event loop as well: under ASGI a middleware that is sync only would
hold a thread for the whole of every request behind it, waits included (Django adapts it with async_to_sync)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any = None, **kwargs: Any) -> None:
        super().__init__(get_response, **kwargs)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:  # development: finds files on disk
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        response = await sync_to_async(self.serve)(static_file, request)
        file = getattr(response, "file_to_stream", None)
        if file is not None:  # read in chunks off the event loop, rather than all at once
            response.streaming_content = _chunks(file)
        return response


async def _chunks(file: Any, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    read = sync_to_async(file.read, thread_sensitive=False)
    try:
        while chunk := await read(size):
            yield chunk
    finally:
        file.close()
