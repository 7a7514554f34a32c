"""Webhook callbacks: URL safety (no loopback or private targets unless allowed), HMAC signatures, and the
per-partner signing secret with its rotation."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from django.conf import settings
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
    allow_private = settings.ALLIANCE_WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeWebhookUrl("The webhook URL must be an absolute http(s) URL.")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("The webhook URL must not carry credentials.")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise UnsafeWebhookUrl(f"The webhook host {parts.hostname!r} does not resolve.") from exc
    for info in infos:
        if not _address_is_public(info[4][0]):
            raise UnsafeWebhookUrl("The webhook URL points at a loopback, private or reserved address.")


def signing_secret(partner: Partner) -> str:
    """Derived per partner and secret version from the platform's signing key: nothing secret is stored, so nothing
    leaks from the database; a rotation raises the version, and the old secret no longer verifies anything."""
    version = partner.webhook_secret_version
    message = f"webhook:{partner.pk}" if version == 1 else f"webhook:{partner.pk}:v{version}"
    digest = hmac.new(settings.ALLIANCE_WEBHOOK_SIGNING_KEY.encode(), message.encode(), hashlib.sha256)
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
