from __future__ import annotations

import itertools

from rest_framework.test import APIClient

from partners.models import ApiKey, Partner
from partners.services import api_key_issue, partner_create

_counter = itertools.count(1)


def make_partner(name: str | None = None, *, sector: str = "it", **fields: object) -> Partner:
    return partner_create(name=name or f"Partner {next(_counter)}", sector=sector, **fields)


def make_key(partner: Partner, *, scopes: list[str] | None = None, **fields: object) -> tuple[ApiKey, str]:
    return api_key_issue(partner=partner, name=f"key {next(_counter)}", scopes=scopes or [], actor="test", **fields)


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


KEYWORD_TEXT = (
    "Parameter-efficient tuning lets each alliance partner adapt a foundation model to its own documents, "
    "while the partner's private data stays encrypted and the adapter serves only that partner."
)


def keyword_job(text: str = KEYWORD_TEXT, **extra: object) -> dict:
    return {"capability": "keyword_extraction", "input": {"text": text, "top_k": 5}, **extra}
