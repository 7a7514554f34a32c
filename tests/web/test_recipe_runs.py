"""A showcase's recipe on its page: run by signed-in members on their own partner's quota, watched by polling,
recorded by the showcase's partner, shown to visitors as recorded runs; authored (and checked) in the portal."""

from __future__ import annotations

import json
import os

import pytest
from django.core.management import call_command
from django.test import Client

from inference.models import Job
from inference.services import job_claim, job_succeed
from partners.models import Partner
from tests.web.conftest import make_member, signed_in
from usecases.models import RecipeRun, UseCase

SLUG = "a-counselling-customer-service-chatbot"


@pytest.fixture
def seeded(db):
    call_command("seed_alliance", stdout=open(os.devnull, "w"))  # noqa: SIM115
    return UseCase.objects.get(slug=SLUG)


def _start(client: Client, message: str = "My bill is wrong again.") -> object:
    return client.post(
        f"/usecases/{SLUG}/runs", json.dumps({"inputs": {"message": message}}), content_type="application/json"
    )


def test_visitors_see_the_recipe_its_code_and_a_sign_in_link(seeded):
    page = Client().get(f"/usecases/{SLUG}/").content.decode()
    assert 'data-testid="recipe"' in page and "View code" in page and "Sign in to run" in page
    assert "run(&quot;dialogue&quot;" in page and "ALLIANCE_API_KEY" in page
    assert "recipe.js" not in page  # nothing to run for a visitor
    assert _start(Client()).status_code == 401


def test_a_developer_runs_the_recipe_on_their_own_partners_quota(seeded):
    google = Partner.objects.get(slug="google")
    devon = make_member(google, "developer")
    client = signed_in(devon)
    assert 'data-testid="run-recipe"' in client.get(f"/usecases/{SLUG}/").content.decode()
    response = _start(client)
    assert response.status_code == 202, response.json()
    run = response.json()
    assert run["status"] == "running" and [s["status"] for s in run["steps"]] == ["queued", *["waiting"] * 3]
    job = Job.objects.get()
    assert job.partner == google and job.api_key.name == f"playground:{devon.user.username}"
    assert job.input["messages"][-1] == {"role": "user", "content": "My bill is wrong again."}
    polled = client.get(run["url"]).json()
    assert polled["id"] == run["id"] and polled["steps"][0]["job_id"] == str(job.pk)
    assert not polled["can_record"]  # Google cannot record LG Uplus's showcase

    # another partner's member, and a visitor, do not see an unrecorded run
    other = signed_in(make_member(Partner.objects.get(slug="lg-uplus"), "developer"))
    assert other.get(run["url"]).status_code == 404
    assert Client().get(run["url"]).status_code == 404
    assert other.post(run["url"] + "/record").status_code == 404


def test_refusals_come_in_the_one_error_shape(seeded):
    google = Partner.objects.get(slug="google")
    viewer = signed_in(make_member(google, "viewer"))
    assert _start(viewer).json()["error"]["code"] == "role_denied"
    developer = signed_in(make_member(google, "developer"))
    missing = developer.post(f"/usecases/{SLUG}/runs", "{}", content_type="application/json")
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "inputs"
    empty = _start(developer, message="   ")
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "inputs.message"
    assert not RecipeRun.objects.exists()


def test_the_showcases_partner_records_a_run_that_every_visitor_then_sees(seeded):
    uplus = Partner.objects.get(slug="lg-uplus")
    client = signed_in(make_member(uplus, "developer"))
    run = _start(client, "I was double charged and I am angry.").json()
    claimed = job_claim(run["steps"][0]["job_id"])
    reply = {"message": {"role": "assistant", "content": "I am sorry; the refund is on its way."}}
    assert job_succeed(job=claimed[0], token=claimed[1], output=reply)
    RecipeRun.objects.filter(pk=run["id"]).update(status="succeeded")
    assert client.get(run["url"]).json()["can_record"]
    recorded = client.post(run["url"] + "/record").json()
    assert recorded["recorded"]
    public = Client().get(run["url"]).json()
    assert public["recorded"] and all(step["job_id"] is None for step in public["steps"])
    page = Client().get(f"/usecases/{SLUG}/").content.decode()
    assert 'data-testid="recorded-runs"' in page and "I was double charged and I am angry." in page
    assert "the refund is on its way." in page
    gallery = Client().get("/").content.decode()  # the card shows the recorded run's first results
    assert (
        'data-testid="card-results"' in gallery
        and "<dt>Reply</dt><dd>I am sorry; the refund is on its way.</dd>" in gallery
    )


RECIPE = {
    "inputs": [{"name": "text", "label": "Text", "example": "Great service."}],
    "steps": [{"id": "kw", "capability": "keyword_extraction", "input": {"text": "{{input.text}}"}}],
}


def test_a_partner_authors_a_recipe_in_the_portal_and_a_broken_one_is_refused(db):
    partner = Partner.objects.create(name="EBS", slug="ebs", sector="education")
    client = signed_in(make_member(partner, "developer"))
    form = {"title": "Study helper", "sector": "education", "capabilities": ["keyword_extraction"], "summary": "s"}
    broken = {**RECIPE, "steps": [{**RECIPE["steps"][0], "input": {"text": "{{steps.later.output.text}}"}}]}
    response = client.post("/portal/showcases/new/", {**form, "recipe": json.dumps(broken)})
    assert response.status_code == 400 and "must name an earlier step" in response.content.decode()
    assert not UseCase.objects.exists()
    response = client.post("/portal/showcases/new/", {**form, "recipe": json.dumps(RECIPE)})
    assert response.status_code == 302
    assert UseCase.objects.get().recipe["steps"][0]["capability"] == "keyword_extraction"
