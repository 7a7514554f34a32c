"""The public directory: only active partners the operators list (Partner.listed), by sector, each with its public
profile and published showcases (never a draft); the gallery links to it; GET /api/v1/partners shows the same with no
key, refuses unknown parameters and sectors, and answers 404 for a partner that is not listed."""

from __future__ import annotations

import random

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from partners.models import AuditEvent
from tests.factories import make_partner
from tests.web.conftest import PASSWORD
from usecases.models import UseCase, UseCaseStatus

pytestmark = pytest.mark.django_db


def api() -> APIClient:
    return APIClient(REMOTE_ADDR=f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}")


@pytest.fixture
def alliance():
    bank = make_partner("Woori Bank", sector="finance", tier="founding", founding_member=True, country="KR")
    bank.listed, bank.website, bank.description = True, "https://woori.example", "A bank that builds with the lab."
    bank.save()
    school = make_partner("Seoul Academy", sector="education")
    school.listed = True
    school.save()
    hidden = make_partner("Quiet Telecom", sector="telecom")  # not listed
    gone = make_partner("Gone Finance", sector="finance")
    gone.listed, gone.is_active = True, False
    gone.save()
    for title, status in (("Loan summaries", UseCaseStatus.PUBLISHED), ("Secret draft", UseCaseStatus.DRAFT)):
        UseCase.objects.create(
            partner=bank,
            title=title,
            slug=title.lower().replace(" ", "-"),
            sector="finance",
            summary=f"{title}.",
            status=status,
        )
    return {"bank": bank, "school": school, "hidden": hidden, "gone": gone}


def test_the_directory_lists_only_listed_active_partners_by_sector(alliance):
    page = Client().get("/partners/")
    assert page.status_code == 200
    sectors = [(label, [p.name for p in partners]) for label, partners in page.context["sectors"]]
    assert sectors == [("Education", ["Seoul Academy"]), ("Finance", ["Woori Bank"])]
    assert b"Quiet Telecom" not in page.content and b"Gone Finance" not in page.content
    finance = Client().get("/partners/?sector=finance")
    assert [p.name for _, ps in finance.context["sectors"] for p in ps] == ["Woori Bank"]


def test_a_profile_shows_public_fields_and_only_published_showcases(alliance):
    page = Client().get("/partners/woori-bank/")
    assert page.status_code == 200
    for text in (b"Woori Bank", b"Finance", b"Founding", b"https://woori.example", b"A bank that builds", b"Joined"):
        assert text in page.content, text
    assert b"Loan summaries" in page.content and b"Secret draft" not in page.content
    assert Client().get("/partners/quiet-telecom/").status_code == 404
    assert Client().get("/partners/gone-finance/").status_code == 404


def test_the_gallery_and_navigation_link_to_the_directory(alliance):
    assert b'href="/partners/"' in Client().get("/").content
    detail = Client().get("/usecases/loan-summaries/")
    assert b'href="/partners/woori-bank/"' in detail.content


def test_operators_list_a_partner_in_the_admin_and_it_is_audited(alliance):
    operator = get_user_model().objects.create_superuser("opal", "opal@alliance.example", PASSWORD)
    client = Client()
    client.force_login(operator)
    hidden = alliance["hidden"]
    form = client.get(f"/admin/partners/partner/{hidden.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"listed": "on", "description": "Networks for the alliance.", "is_active": "on"})
    response = client.post(f"/admin/partners/partner/{hidden.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    event = AuditEvent.objects.filter(partner=hidden, action="admin.partner.changed").get()
    assert "listed" in event.data["fields"]
    assert b"Quiet Telecom" in Client().get("/partners/").content


def test_the_api_shows_the_directory_without_a_key(alliance):
    response = api().get("/api/v1/partners")
    assert response.status_code == 200
    body = response.json()
    assert [p["slug"] for p in body["data"]] == ["seoul-academy", "woori-bank"]
    bank = body["data"][1]
    assert bank == {
        "object": "partner",
        "slug": "woori-bank",
        "name": "Woori Bank",
        "sector": "finance",
        "tier": "founding",
        "founding_member": True,
        "country": "KR",
        "website": "https://woori.example",
        "description": "A bank that builds with the lab.",
        "joined": alliance["bank"].created_at.date().isoformat(),
        "showcases": [{"slug": "loan-summaries", "title": "Loan summaries", "summary": "Loan summaries."}],
    }
    assert api().get("/api/v1/partners/woori-bank").json() == bank
    assert [p["slug"] for p in api().get("/api/v1/partners?sector=education").json()["data"]] == ["seoul-academy"]


def test_the_api_refuses_what_it_does_not_know_and_hides_unlisted_partners(alliance):
    unknown = api().get("/api/v1/partners?tier=founding")
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "tier"
    sector = api().get("/api/v1/partners?sector=space")
    assert sector.status_code == 400 and sector.json()["error"]["code"] == "invalid_sector"
    for slug in ("quiet-telecom", "gone-finance", "nobody"):
        missing = api().get(f"/api/v1/partners/{slug}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_api_limits_each_address(alliance, settings):
    settings.ALLIANCE_PUBLIC_REQUESTS_PER_MINUTE = 3
    client = api()
    assert [client.get("/api/v1/partners").status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = client.get("/api/v1/partners")
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and int(refused["Retry-After"]) >= 1
    assert api().get("/api/v1/partners").status_code == 200


def test_the_schema_documents_the_public_operations(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = {path.rstrip("/"): operations for path, operations in schema["paths"].items()}
    operation = paths["/api/v1/partners"]["get"]
    assert operation["x-required-scopes"] == [] and "no key needed" in operation["description"]
    assert operation.get("security", []) in ([], [{}]) and "security" not in schema  # no key asked for
    assert paths["/api/v1/me"]["get"]["security"]  # whereas a partner's operation asks for one
    assert paths["/api/v1/partners/{slug}"]["get"]["x-required-scopes"] == []
    assert operation["operationId"] != paths["/api/v1/partners/{slug}"]["get"]["operationId"]


def test_the_seeded_founding_members_are_in_the_directory():
    from django.core.management import call_command

    call_command("seed_alliance", verbosity=0)
    slugs = [p["slug"] for p in api().get("/api/v1/partners").json()["data"]]
    assert "woori-bank" in slugs and "lg-ai-research" in slugs
    assert b"Woori Bank" in Client().get("/partners/").content
