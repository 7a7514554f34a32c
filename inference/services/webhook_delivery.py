"""Delivery of a finished job to its webhook URL, signed; retried by the task until a 2xx."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings

from inference.models import Job, WebhookDelivery
from inference.representations import job_representation
from inference.webhook_security import UnsafeWebhookUrl, check_webhook_url, signature_header, signing_secret


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def webhook_deliver(*, job_id: str, attempt: int) -> bool:
    """POSTs the finished job to its webhook URL. True when delivered (2xx) or when there is nothing to do."""
    job = Job.objects.select_related("partner").filter(pk=job_id).first()
    if job is None or not job.webhook_url:
        return True
    body = json.dumps({"type": f"job.{job.status}", "data": job_representation(job)}).encode()
    delivery = WebhookDelivery(job=job, attempt=attempt)
    try:
        check_webhook_url(job.webhook_url)
        request = urllib.request.Request(
            job.webhook_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "alliance-webhooks/1",
                "X-Alliance-Job": str(job.pk),
                "X-Alliance-Signature": signature_header(signing_secret(job.partner), body),
            },
        )
        opener = urllib.request.build_opener(_NoRedirect)
        with opener.open(request, timeout=settings.ALLIANCE_WEBHOOK_TIMEOUT_SECONDS) as response:
            delivery.status_code = response.status
            delivery.delivered = 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        delivery.status_code = exc.code
        delivery.error = f"HTTP {exc.code}"
    except (UnsafeWebhookUrl, OSError) as exc:
        delivery.error = str(exc)[:500]
    delivery.save()
    return delivery.delivered
