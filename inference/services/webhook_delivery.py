"""Delivery of a finished job to its webhook URL, signed; retried by the task until a 2xx.

The host is resolved once (`webhook_target`) and the connection goes to an address that was checked, with the URL's
host name kept for the Host header and, over https, for SNI and certificate verification. One total deadline
(ALLIANCE_WEBHOOK_TIMEOUT_SECONDS) covers connecting, TLS, sending and the answer's status line and headers, however
slowly an endpoint trickles bytes. No proxy is used (the environment's HTTP(S)_PROXY included), no redirect followed,
and the answer's body is not read.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time

from django.conf import settings

from inference.models import Job, WebhookDelivery
from inference.representations import job_representation
from inference.webhook_security import (
    Resolver,
    UnsafeWebhookUrl,
    WebhookTarget,
    signature_header,
    signing_secret,
    system_resolver,
    webhook_target,
)


class DeadlineExceeded(OSError):
    pass


class _Deadline:
    """Seconds left until a fixed instant; `abort` shuts the socket in use when the instant passes."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds
        self.sock: socket.socket | None = None
        self.expired = False
        self._timer = threading.Timer(seconds, self._abort)
        self._timer.daemon = True

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"The endpoint did not answer within {self.seconds:g} s.")
        return left

    def _abort(self) -> None:
        self.expired = True
        if self.sock is not None:
            with contextlib.suppress(OSError):  # already closed
                self.sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _connect(target: WebhookTarget, deadline: _Deadline) -> socket.socket:
    """A TCP connection to the first checked address that accepts, within the deadline."""
    error: OSError = OSError(f"No address of {target.host} accepted a connection.")
    for address in target.addresses:
        try:
            sock = socket.create_connection((address, target.port), timeout=deadline.left())
        except DeadlineExceeded:
            raise
        except OSError as exc:
            error = OSError(f"{address}: {exc}")
            continue
        deadline.sock = sock
        return sock
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a checked address; Host is the URL's host name."""

    def __init__(self, target: WebhookTarget, deadline: _Deadline) -> None:
        super().__init__(target.host, target.port, timeout=deadline.left())
        self._target = target
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _connect(self._target, self._deadline)
        self.sock.settimeout(self._deadline.left())


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI, certificate verification and Host use the URL's host name."""

    def __init__(self, target: WebhookTarget, deadline: _Deadline) -> None:
        super().__init__(target.host, target.port, timeout=deadline.left(), context=ssl.create_default_context())
        self._target = target
        self._deadline = deadline

    def connect(self) -> None:
        raw = _connect(self._target, self._deadline)
        raw.settimeout(self._deadline.left())
        # The handshake is bounded by the socket's timeout (what is left); then the deadline watches the TLS socket.
        self.sock = self._context.wrap_socket(raw, server_hostname=self._target.host)
        self._deadline.sock = self.sock
        self.sock.settimeout(self._deadline.left())


def post_to_target(target: WebhookTarget, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POSTs `body` to a checked target; the answer's status code. Raises OSError (DeadlineExceeded past the
    deadline) when there is no answer."""
    with _Deadline(timeout) as deadline:
        kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
        connection = kind(target, deadline)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            if connection.sock is not None:
                connection.sock.settimeout(deadline.left())
            return connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            # Each socket operation waits at most what is left, so its timeout is the deadline's too.
            if deadline.expired or isinstance(exc, TimeoutError) or time.monotonic() >= deadline.at:
                raise DeadlineExceeded(f"The endpoint did not answer within {timeout:g} s.") from exc
            if isinstance(exc, http.client.HTTPException):
                raise OSError(f"Invalid answer: {type(exc).__name__}") from exc
            raise
        finally:
            connection.close()


def webhook_deliver(*, job_id: str, attempt: int, resolve: Resolver = system_resolver) -> bool:
    """POSTs the finished job to its webhook URL. True when delivered (2xx) or when there is nothing to do.

    `resolve` answers the host's addresses, once per delivery; the connection goes only to those it answered."""
    job = Job.objects.select_related("partner").filter(pk=job_id).first()
    if job is None or not job.webhook_url:
        return True
    body = json.dumps({"type": f"job.{job.status}", "data": job_representation(job)}).encode()
    delivery = WebhookDelivery(job=job, attempt=attempt)
    try:
        target = webhook_target(job.webhook_url, resolve=resolve)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "alliance-webhooks/1",
            "X-Alliance-Job": str(job.pk),
            "X-Alliance-Signature": signature_header(signing_secret(job.partner), body),
        }
        delivery.status_code = post_to_target(target, body, headers, settings.ALLIANCE_WEBHOOK_TIMEOUT_SECONDS)
        delivery.delivered = 200 <= delivery.status_code < 300
        if not delivery.delivered:
            delivery.error = f"HTTP {delivery.status_code}"
    except (UnsafeWebhookUrl, OSError) as exc:
        delivery.error = str(exc)[:500]
    delivery.save()
    return delivery.delivered
