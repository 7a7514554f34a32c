from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from partners.models import AuditEvent, Membership, Partner
from partners.services import membership_add, membership_remove, membership_set_role, quota_set

pytestmark = pytest.mark.django_db


def test_membership_changes_are_audited_with_who_what_and_when(partner):
    user = get_user_model().objects.create_user("mina", password="correct horse battery")
    membership = membership_add(partner=partner, user=user, role="developer", actor="user:owner")
    membership_set_role(membership=membership, role="admin", actor="user:owner")
    membership_remove(membership=membership, actor="user:owner")
    events = list(AuditEvent.objects.filter(partner=partner, target="mina").order_by("id"))
    assert [event.action for event in events] == ["membership.added", "membership.role_changed", "membership.removed"]
    assert events[1].data == {"from": "developer", "to": "admin"}
    assert all(event.actor == "user:owner" and event.created_at is not None for event in events)
    assert not Membership.objects.filter(partner=partner).exists()


def test_quota_changes_are_audited_with_before_and_after(partner):
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=500, rpm=7, actor="user:ops")
    event = AuditEvent.objects.get(partner=partner, action="quota.set")
    assert event.actor == "user:ops"
    assert event.data["after"] == {"monthly_units": 500, "rpm": 7}


def test_set_quota_command(partner):
    out = io.StringIO()
    call_command("set_quota", partner.slug, "keyword_extraction", "--monthly-units", "1234", "--rpm", "9", stdout=out)
    quota = partner.quotas.get(capability="keyword_extraction")
    assert (quota.monthly_units, quota.rpm) == (1234, 9)
    assert "1234" in out.getvalue()


def test_seed_alliance_loads_the_founding_members_once():
    call_command("seed_alliance", stdout=io.StringIO())
    call_command("seed_alliance", stdout=io.StringIO())
    slugs = set(Partner.objects.values_list("slug", flat=True))
    assert {"google", "woori-bank", "lg-chem", "lg-ai-research", "korea-university-medical-center"} <= slugs
    assert Partner.objects.count() == 13
    assert Partner.objects.get(slug="lg-ai-research").tier == "lab"
    assert Partner.objects.filter(founding_member=True).count() == 13
