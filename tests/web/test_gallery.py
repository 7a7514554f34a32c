"""The public gallery and the showcase review workflow (partner submits, operator approves or rejects)."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.test import Client

from partners.models import Partner
from tests.web.conftest import make_member, signed_in
from usecases.models import UseCase

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(db):
    call_command("seed_alliance", stdout=open("/dev/null", "w"))  # noqa: SIM115


def _titles(response) -> list[str]:
    return re.findall(r'data-testid="showcase-card".*?<h3><a href="[^"]+">([^<]+)</a>', response.content.decode(), re.S)


def test_the_gallery_lists_featured_and_all_published_showcases(seeded, client):
    response = client.get("/")
    assert response.status_code == 200
    titles = _titles(response)
    assert titles.count("Tilda, the AI fashion artist") == 2  # featured, and in the full list
    assert "An AI banker tuned on finance language" in titles


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"sector": "finance"}, ["An AI banker tuned on finance language"]),
        ({"capability": "image_generation"}, ["Tilda, the AI fashion artist"]),
        ({"partner": "elsevier"}, ["Deep Document Understanding of chemistry papers"]),
        ({"q": "counsellor"}, ["A counselling customer-service chatbot"]),
        ({"sector": "medical"}, []),
    ],
)
def test_the_gallery_filters_and_searches(seeded, client, query, expected):
    response = client.get("/", query)
    assert _titles(response) == expected
    if not expected:
        assert "No showcases match these filters" in response.content.decode()


def test_a_showcase_page_has_its_story_and_a_try_it_link_with_its_example(seeded, client):
    page = client.get("/usecases/an-ai-banker-tuned-on-finance-language/").content.decode()
    assert "Woori Bank" in page and "finance language" in page
    link = re.search(r'href="([^"]+)" data-testid="try-it"', page).group(1).replace("&amp;", "&")
    assert link == "/playground/?capability=text_classification&usecase=an-ai-banker-tuned-on-finance-language"
    playground = client.get(link).content.decode()
    assert "early repayment fee" in playground and "Sign in" in playground


def test_unpublished_showcases_are_hidden_from_the_public_and_previewed_by_members(seeded, client):
    partner = Partner.objects.get(slug="woori-bank")
    member = make_member(partner, "viewer")
    draft = UseCase.objects.create(
        title="Secret draft", slug="secret-draft", partner=partner, sector="finance", summary="Not yet."
    )
    assert client.get("/usecases/secret-draft/").status_code == 404
    assert "Secret draft" not in client.get("/").content.decode()
    preview = signed_in(member).get("/usecases/secret-draft/")
    assert preview.status_code == 200 and "Preview" in preview.content.decode()
    assert draft.status == "draft"


def test_the_review_workflow_from_draft_to_published_and_rejected(partner, admin_client):
    developer = make_member(partner, "developer", "dana")
    portal = signed_in(developer)
    created = portal.post(
        "/portal/showcases/new/",
        {
            "title": "Fraud alerts that explain themselves",
            "sector": "finance",
            "capabilities": ["text_classification", "summarization"],
            "summary": "Classifies transactions and explains each alert.",
            "story": "It started with a pilot.",
            "results": "Fewer false alarms\nFaster reviews",
            "example_input": '{"text": "Card used in two countries within an hour", "labels": ["fraud", "normal"]}',
        },
    )
    assert created.status_code == 302
    usecase = UseCase.objects.get(title="Fraud alerts that explain themselves")
    assert usecase.status == "draft" and usecase.partner == partner
    assert portal.post(f"/portal/showcases/{usecase.pk}/submit/").status_code == 302
    usecase.refresh_from_db()
    assert usecase.status == "in_review" and usecase.submitted_by == developer.user
    assert Client().get(f"/usecases/{usecase.slug}/").status_code == 404

    # the operator rejects with a reason: first the form, then the action applied
    changelist = "/admin/usecases/usecase/"
    form = admin_client.post(changelist, {"action": "reject", ACTION_CHECKBOX_NAME: [usecase.pk]})
    assert form.status_code == 200 and "Reason" in form.content.decode()
    admin_client.post(
        changelist,
        {"action": "reject", ACTION_CHECKBOX_NAME: [usecase.pk], "apply": "1", "reason": "Add a measured result."},
    )
    usecase.refresh_from_db()
    assert usecase.status == "rejected" and usecase.rejection_reason == "Add a measured result."
    assert "Add a measured result." in portal.get("/portal/showcases/").content.decode()

    # the partner edits and resubmits; the operator approves; it is public
    portal.post(f"/portal/showcases/{usecase.pk}/submit/")
    admin_client.post(changelist, {"action": "approve", ACTION_CHECKBOX_NAME: [usecase.pk]})
    usecase.refresh_from_db()
    assert usecase.status == "published" and usecase.published_at is not None
    public = Client().get(f"/usecases/{usecase.slug}/").content.decode()
    assert "Fewer false alarms" in public and "Faster reviews" in public
    assert "Fraud alerts that explain themselves" in Client().get("/", {"sector": "finance"}).content.decode()
    actions = list(partner.audit_events.filter(target=usecase.slug).values_list("action", flat=True))
    assert {"usecase.created", "usecase.submitted", "usecase.rejected", "usecase.published"} <= set(actions)


def test_approving_twice_or_approving_a_draft_changes_nothing(partner, admin_client):
    usecase = UseCase.objects.create(title="Draft", slug="draft", partner=partner, sector="it", summary="s")
    admin_client.post("/admin/usecases/usecase/", {"action": "approve", ACTION_CHECKBOX_NAME: [usecase.pk]})
    usecase.refresh_from_db()
    assert usecase.status == "draft"


def test_viewers_cannot_write_showcases(viewer):
    client = signed_in(viewer)
    assert client.get("/portal/showcases/new/").status_code == 403
    assert client.post("/portal/showcases/new/", {"title": "x"}).status_code == 403


def test_a_showcase_image_is_served_for_published_showcases_only(partner, tmp_path, settings):
    import io

    from PIL import Image

    developer = make_member(partner, "developer")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    buffer.seek(0)
    buffer.name = "result.png"
    client = signed_in(developer)
    client.post(
        "/portal/showcases/new/",
        {
            "title": "With a picture",
            "sector": "it",
            "capabilities": ["image_generation"],
            "summary": "s",
            "image": buffer,
            "image_caption": "A red square",
        },
    )
    usecase = UseCase.objects.get(title="With a picture")
    image = usecase.images.get()
    url = f"/usecases/{usecase.slug}/images/{image.pk}"
    assert Client().get(url).status_code == 404
    assert client.get(url).status_code == 200
    UseCase.objects.filter(pk=usecase.pk).update(status="published")
    response = Client().get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"\x89PNG")
