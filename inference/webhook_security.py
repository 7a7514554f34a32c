"""Webhook callbacks: URL safety (no loopback or private targets unless allowed), the addresses a delivery may
connect to, HMAC signatures, and the per-partner signing secret with its rotation."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F

from partners.models import Partner
from partners.services import audit_record


class UnsafeWebhookUrl(ValueError):
    pass


def _address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_global and not ip.is_multicast


def check_webhook_url(url: str, *, allow_private: bool | None = None) -> None:
    """At submission: a well-formed http(s) URL whose host resolves to public addresses only (unless allowed)."""
    allow_private = settings.ALLIANCE_WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private
    _split(url)
    if not allow_private:
        webhook_target(url, allow_private=False)


def _split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path and query) of an acceptable webhook URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeWebhookUrl("The webhook URL must be an absolute http(s) URL.")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("The webhook URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookUrl("The webhook URL has an invalid port.") from exc
    return parts.scheme, parts.hostname, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


# Delivery: the host is resolved once, the addresses are checked, and the delivery connects to a checked address
# (never resolving the name again, so a DNS answer that changes in between, "DNS rebinding", reaches nothing).
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of `host`, from the system's resolver (a literal IP is its own answer)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str  # the name for the Host header and TLS (SNI and certificate verification)
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]  # checked: the only addresses a delivery may connect to


def webhook_target(
    url: str, *, resolve: Resolver = system_resolver, allow_private: bool | None = None
) -> WebhookTarget:
    """Resolves the webhook's host once and checks every address it answers; the delivery connects to these."""
    allow_private = settings.ALLIANCE_WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private
    scheme, host, port, path = _split(url)
    try:
        addresses = tuple(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise UnsafeWebhookUrl(f"The webhook host {host!r} does not resolve.") from exc
    if not addresses:
        raise UnsafeWebhookUrl(f"The webhook host {host!r} does not resolve.")
    if not allow_private and not all(_address_is_public(address) for address in addresses):
        raise UnsafeWebhookUrl("The webhook URL points at a loopback, private or reserved address.")
    return WebhookTarget(scheme, host, port, path, addresses)


def signing_key() -> bytes:
    if not settings.ALLIANCE_WEBHOOK_SIGNING_KEY:
        raise ImproperlyConfigured(
            "ALLIANCE_WEBHOOK_SIGNING_KEY is not set: set it, or start the embedded default with "
            "`python manage.py up`, which generates one and keeps it in var/secrets.env."
        )
    return settings.ALLIANCE_WEBHOOK_SIGNING_KEY.encode()


def signing_secret(partner: Partner) -> str:
    """Derived per partner and secret version from the platform's signing key: nothing secret is stored, so nothing
    leaks from the database; a rotation raises the version, and the old secret no longer verifies anything."""
    version = partner.webhook_secret_version
    message = f"webhook:{partner.pk}" if version == 1 else f"webhook:{partner.pk}:v{version}"
    digest = hmac.new(signing_key(), message.encode(), hashlib.sha256)
    return "whsec_" + digest.hexdigest()


@transaction.atomic
def webhook_secret_rotate(*, partner: Partner, actor: str) -> str:
    """A new signing secret for the partner; webhooks sent from now on are signed with it. Returns it."""
    Partner.objects.filter(pk=partner.pk).update(webhook_secret_version=F("webhook_secret_version") + 1)
    partner.refresh_from_db(fields=["webhook_secret_version"])
    audit_record(
        partner=partner,
        actor=actor,
        action="webhook_secret.rotated",
        target=partner.slug,
        data={"version": partner.webhook_secret_version},
    )
    return signing_secret(partner)


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, tolerance_seconds: int = 300) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    expected = signature_header(secret, body, timestamp).split(",", 1)[1].removeprefix("v1=")
    return hmac.compare_digest(expected, fields.get("v1", ""))
