"""Following a job as it runs (the web side of inference.streams): its status changes, its text as the worker
generates it, and at the end the job itself, whether the job is running, queued, or finished long ago.

follow_job (sync: WSGI) and afollow_job (async: ASGI, holding no thread while it waits) yield the same JobEvents:
- JobEvent("status", {"status": s}) when the job's status changes (the first is its status when following began);
  {"status": "running", "attempt": n, "restarted": true} when a job whose worker died is run again after some of
  its text was sent: the text starts over (the final `job` event always carries the stored output);
- JobEvent("token", {"choice": i, "text": t}) for each piece of choice i's text (text_generation and dialogue);
- JobEvent("ping", None) while nothing happens (about once a second: keeps proxies open, finds gone clients);
- JobEvent("job", job) last, the job as stored (reloaded after its channel's end).

Replay: a follower reads the channel from its start, so a late one gets every piece produced so far. When the
stored text goes beyond what was streamed (a channel that expired, a tuned model that does not stream, a batch run
again job by job) the rest comes as one last token event, so the pieces of a succeeded job always add up to its
stored text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings

from inference import streams
from inference.models import Job, JobStatus

logger = logging.getLogger(__name__)

IDLE_MS = 1000


@dataclass(frozen=True)
class JobEvent:
    kind: Literal["status", "token", "ping", "job"]
    data: Any


def final_texts(job: Job) -> list[str]:
    """The stored text of each choice of a succeeded text_generation or dialogue job."""
    if job.status != JobStatus.SUCCEEDED or job.capability not in streams.STREAMING_CAPABILITIES:
        return []
    output = job.output or {}
    choices = output.get("choices") or [output]
    if job.capability == "dialogue":
        return [str((choice.get("message") or {}).get("content", "")) for choice in choices]
    return [str(choice.get("text", "")) for choice in choices]


class _Follower:
    """The state both loops share: the cursor, the text streamed per choice, the last status told."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.job_id = str(job.pk)
        self.cursor = streams.START
        self.streamed: dict[int, str] = {}
        self.status: str | None = None
        self.attempt = 1
        self.ended = False
        self.deadline = time.monotonic() + settings.ALLIANCE_STREAM_MAX_SECONDS

    def status_event(self, status: str) -> list[JobEvent]:
        if status == self.status:
            return []
        self.status = status
        return [JobEvent("status", {"status": status})]

    def take(self, events: list[streams.Event]) -> list[JobEvent]:
        out: list[JobEvent] = []
        for event in events:
            kind = event.get("kind")
            if kind == "token":
                choice = int(event.get("choice", 0))
                self.streamed[choice] = self.streamed.get(choice, "") + event["text"]
                out.append(JobEvent("token", {"choice": choice, "text": event["text"]}))
            elif kind == "status":
                attempt = int(event.get("attempt") or 1)
                if attempt > self.attempt:  # run again after a worker died: its text starts over
                    self.attempt = attempt
                    if self.streamed:
                        self.streamed = {}
                        self.status = None
                        out += [JobEvent("status", {"status": event["status"], "attempt": attempt, "restarted": True})]
                        self.status = event["status"]
                        continue
                out += self.status_event(event["status"])
            elif kind == "end":
                self.ended = True
        return out

    def block_ms(self) -> int:
        return 0 if self.job.is_finished else IDLE_MS

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def closing(self) -> list[JobEvent]:
        """The rest of each choice's stored text not yet streamed, the final status, and the job."""
        out: list[JobEvent] = []
        for choice, final in enumerate(final_texts(self.job)):
            sent = self.streamed.get(choice, "")
            if final.startswith(sent):
                if len(final) > len(sent):
                    out.append(JobEvent("token", {"choice": choice, "text": final[len(sent) :]}))
            else:
                logger.warning("job %s: streamed text of choice %d differs from the stored text", self.job_id, choice)
        return [*out, *self.status_event(self.job.status), JobEvent("job", self.job)]


def follow_job(job: Job) -> Iterator[JobEvent]:
    follower = _Follower(job)
    yield from follower.status_event(job.status)
    read = streams.channel().read
    while True:
        finished = job.is_finished
        events, follower.cursor = read(follower.job_id, follower.cursor, follower.block_ms())
        yield from follower.take(events)
        if follower.ended or (finished and len(events) < 1000) or follower.timed_out():
            break
        if not events:
            job.refresh_from_db()
            yield from follower.status_event(job.status)
            if not job.is_finished:
                yield JobEvent("ping", None)
    job.refresh_from_db()
    yield from follower.closing()


async def afollow_job(job: Job) -> AsyncIterator[JobEvent]:
    follower = _Follower(job)
    for event in follower.status_event(job.status):
        yield event
    read = streams.channel().aread
    refresh = sync_to_async(job.refresh_from_db)
    while True:
        finished = job.is_finished
        events, follower.cursor = await read(follower.job_id, follower.cursor, follower.block_ms())
        for event in follower.take(events):
            yield event
        if follower.ended or (finished and len(events) < 1000) or follower.timed_out():
            break
        if not events:
            await refresh()
            for event in follower.status_event(job.status):
                yield event
            if not job.is_finished:
                yield JobEvent("ping", None)
    await refresh()
    for event in follower.closing():
        yield event
