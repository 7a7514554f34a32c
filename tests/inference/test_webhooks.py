from __future__ import annotations

import time

import pytest

from inference import webhook_security as webhooks


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "file:///etc/passwd",
        "https://user:pw@example.com/hook",
    ],
)
def test_private_loopback_and_odd_urls_are_refused(url):
    with pytest.raises(webhooks.UnsafeWebhookUrl):
        webhooks.check_webhook_url(url, allow_private=False)


def test_a_setting_allows_private_addresses():
    webhooks.check_webhook_url("http://127.0.0.1:9000/hook", allow_private=True)


def test_a_public_address_is_allowed():
    webhooks.check_webhook_url("https://93.184.215.14/hook", allow_private=False)


def test_signatures_verify_and_reject_tampering_and_replays():
    body = b'{"type": "job.succeeded"}'
    header = webhooks.signature_header("whsec_test", body)
    assert webhooks.verify_signature("whsec_test", body, header)
    assert not webhooks.verify_signature("whsec_other", body, header)
    assert not webhooks.verify_signature("whsec_test", body + b" ", header)
    old = webhooks.signature_header("whsec_test", body, timestamp=int(time.time()) - 3600)
    assert not webhooks.verify_signature("whsec_test", body, old)


@pytest.mark.django_db
def test_signing_secrets_differ_per_partner(partner, other_partner):
    assert webhooks.signing_secret(partner).startswith("whsec_")
    assert webhooks.signing_secret(partner) != webhooks.signing_secret(other_partner)
