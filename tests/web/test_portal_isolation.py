"""Every portal and playground route, walked from the URL configuration: a member of one partner gets 404 for
another partner's keys, jobs, files, datasets, tuning runs, members and showcases, sees none of them on any page,
and changes none of them. A new route that is not in the tables below fails this test until its isolation is
declared."""

from __future__ import annotations

import re

import pytest

from inference.models import TuningJob
from partners.models import ApiKey, Invitation, Membership
from partners.services import invitation_create
from tests.factories import make_key
from tests.routes import routes_under
from tests.web.conftest import make_member, signed_in
from usecases.models import UseCase

pytestmark = pytest.mark.django_db

# route -> (kind of resource in the path, methods to try)
OWNED = {
    "portal/keys/<str:public_id>/rotate/": ("key", ["post"]),
    "portal/keys/<str:public_id>/revoke/": ("key", ["post"]),
    "portal/jobs/<str:job_id>/": ("job", ["get"]),
    "portal/files/<str:file_id>": ("file", ["get"]),
    "portal/datasets/<str:dataset_id>/delete/": ("dataset", ["post"]),
    "portal/tuning/<str:job_id>/": ("tuning_job", ["get"]),
    "portal/tuning/<str:job_id>/status": ("tuning_job", ["get"]),
    "portal/tuning/<str:job_id>/cancel/": ("tuning_job", ["post"]),
    "portal/members/<int:membership_id>/role/": ("membership", ["post"]),
    "portal/members/<int:membership_id>/remove/": ("membership", ["post"]),
    "portal/members/invitations/<int:invitation_id>/revoke/": ("invitation", ["post"]),
    "portal/showcases/<int:usecase_id>/": ("usecase", ["get", "post"]),
    "portal/showcases/<int:usecase_id>/submit/": ("usecase", ["post"]),
    "playground/jobs/<str:job_id>": ("job", ["get"]),
    "playground/jobs/<str:job_id>/events": ("job", ["get"]),
    "portal/profile/memberships/<int:membership_id>/leave/": ("membership", ["post"]),
}
# pages that show the signed-in member's partner only
PAGES = {
    "portal/",
    "portal/keys/",
    "portal/usage/",
    "portal/jobs/",
    "portal/datasets/",
    "portal/tuning/",
    "portal/members/",
    "portal/audit/",
    "portal/showcases/",
    "playground/",
    "portal/profile/",
}
# forms with no resource in the path; where the body may name another partner's resource, the named test covers it
FORMS = {
    "portal/login/": "signs in; no partner resource",
    "portal/logout/": "signs out",
    "portal/switch/": "test_portal::test_a_member_of_two_partners_switches_between_them (another partner: 404)",
    "portal/keys/issue/": "issues a key for the member's own partner",
    "portal/keys/webhook-secret/rotate/": "test_scopes: rotates the member's own partner's secret (admins only)",
    "portal/datasets/upload/": "uploads to the member's own partner",
    "portal/tuning/estimate": "test_portal_tuning::test_another_partners_datasets_and_runs_are_404 (400)",
    "portal/tuning/start/": "test_portal_tuning: the dataset is looked up in the member's partner",
    "portal/members/invite/": "invites to the member's own partner",
    "portal/invitations/<str:token>/": "the token is the capability: test_invitations (unknown 404, spent 410)",
    "portal/invitations/<str:token>/accept/": "test_invitations: joins the token's partner only, once",
    "portal/invitations/<str:token>/decline/": "test_invitations: declines the token's invitation only, once",
    "portal/showcases/new/": "creates for the member's own partner",
    "playground/jobs": "test_playground: runs with the member's partner's playground key",
    "portal/password/change/": "changes the signed-in person's own password",
    "portal/password/reset/": "test_accounts: emails a link only to the address's own account, same answer",
    "portal/password/reset/sent/": "a page with no data",
    "portal/password/reset/<uidb64>/<token>/": "the token is the capability: test_accounts (single use)",
    "portal/password/reset/done/": "a page with no data",
}


@pytest.fixture
def their_portal(other_partner, theirs) -> dict[str, str]:
    """The other partner's API resources plus a key, a member and a showcase of theirs."""
    key, _ = make_key(other_partner)
    member = make_member(other_partner, "developer", "their-member")
    their_admin = make_member(other_partner, "admin", "their-admin")
    invitation, _ = invitation_create(inviter=their_admin, email="their-invitee@example.com", role="viewer")
    showcase = UseCase.objects.create(
        title="Their secret showcase", slug="their-secret-showcase", partner=other_partner, sector="manufacturing",
        summary="Not for other partners' eyes.",
    )  # fmt: skip
    return {
        **theirs,
        "key": key.public_id,
        "membership": str(member.pk),
        "usecase": str(showcase.pk),
        "invitation": str(invitation.pk),
    }


def test_every_portal_route_is_declared_here():
    undeclared = [
        route
        for route in routes_under(("portal/", "playground/"))
        if route not in OWNED and route not in PAGES and route not in FORMS
    ]
    assert undeclared == [], f"declare the isolation of these routes in this test: {undeclared}"


def test_another_partners_resources_answer_404_on_every_portal_route(owner, their_portal):
    client = signed_in(owner)
    for route, (kind, methods) in OWNED.items():
        path = "/" + re.sub(r"<[^>]+>", their_portal[kind], route)
        for method in methods:
            response = getattr(client, method)(path)
            assert response.status_code == 404, (method, path, response.status_code)


def test_no_portal_page_shows_another_partners_resources(owner, their_portal, other_partner):
    client = signed_in(owner)
    opaque_ids = [value for value in their_portal.values() if not value.isdigit()]  # small integers match anywhere
    names = ["their-member", "Their secret showcase", "their-invitee", "their-admin"]
    identifiers = [*opaque_ids, other_partner.name, *names]
    for route in PAGES:
        response = client.get("/" + route)
        assert response.status_code == 200, route
        page = response.content.decode()
        leaked = [identifier for identifier in identifiers if identifier in page]
        assert leaked == [], (route, leaked)


def test_trying_every_portal_route_changes_none_of_their_resources(owner, their_portal, other_partner):
    test_another_partners_resources_answer_404_on_every_portal_route(owner, their_portal)
    key = ApiKey.objects.get(public_id=their_portal["key"])
    assert key.revoked_at is None and key.credentials.count() == 1
    assert Membership.objects.get(pk=their_portal["membership"]).role == "developer"
    assert Invitation.objects.get(pk=their_portal["invitation"]).revoked_at is None
    assert UseCase.objects.get(pk=their_portal["usecase"]).status == "draft"
    assert TuningJob.objects.get(pk=their_portal["tuning_job"]).status == "queued"
    assert other_partner.datasets.filter(public_id=their_portal["dataset"]).exists()
    assert other_partner.jobs.get(pk=their_portal["job"]).status == "queued"
