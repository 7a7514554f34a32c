"""Tiers that mean something: a partner's default quotas are the platform's defaults times its tier's factor;
an operator changes a tier in the admin, which moves every capability's quota to the new tier's defaults, audited,
and the partner sees the new quotas on its usage page; an approval left blank gives the tier's defaults."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from capabilities import QUOTA_KEYS
from partners.models import AuditEvent, Quota
from partners.services import quota_for, tier_defaults
from tests.factories import make_partner
from tests.web.conftest import PASSWORD, make_member, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client() -> Client:
    operator = get_user_model().objects.create_superuser("opal", "opal@alliance.example", PASSWORD)
    client = Client()
    client.force_login(operator)
    return client


def test_default_quotas_follow_the_tier(settings):
    settings.ALLIANCE_DEFAULT_MONTHLY_UNITS, settings.ALLIANCE_DEFAULT_RPM = 1000, 60
    settings.ALLIANCE_TIER_FACTORS = {"lab": 10, "founding": 5, "strategic": 3, "standard": 1}
    founding = quota_for(partner=make_partner(tier="founding"), capability="summarization")
    standard = quota_for(partner=make_partner(tier="standard"), capability="summarization")
    assert (founding.monthly_units, founding.rpm) == (5000, 300)
    assert (standard.monthly_units, standard.rpm) == (1000, 60)
    assert tier_defaults("strategic") == {"monthly_units": 3000, "rpm": 180}


def test_an_operator_changes_a_tier_and_every_quota_moves_audited_and_shown(settings, operator_client):
    settings.ALLIANCE_DEFAULT_MONTHLY_UNITS, settings.ALLIANCE_DEFAULT_RPM = 1000, 60
    partner = make_partner("Woori Bank", sector="finance")
    quota_for(partner=partner, capability="dialogue")
    url = f"/admin/partners/partner/{partner.pk}/change/"
    form = operator_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"tier": "founding", "is_active": "on"})
    response = operator_client.post(url, data, follow=True)
    assert response.status_code == 200
    assert "each capability's quota is 5,000 units a month and 300 requests per minute" in " ".join(
        str(m) for m in response.context["messages"]
    )
    partner.refresh_from_db()
    assert partner.tier == "founding"
    quotas = Quota.objects.filter(partner=partner)
    assert {q.capability for q in quotas} == set(QUOTA_KEYS)
    assert {(q.monthly_units, q.rpm) for q in quotas} == {(5000, 300)}
    changed = AuditEvent.objects.get(partner=partner, action="partner.tier_changed")
    assert changed.actor == "user:opal" and changed.data == {
        "from": "standard",
        "to": "founding",
        "monthly_units": 5000,
        "rpm": 300,
    }
    dialogue = AuditEvent.objects.filter(partner=partner, action="quota.set", target="dialogue").get()
    assert dialogue.data["before"] == {"monthly_units": 1000, "rpm": 60}

    owner = make_member(partner, "owner", "olivia")
    page = signed_in(owner).get("/portal/usage/")
    assert b"5,000" in page.content or b"5000" in page.content
    assert b"Founding" in signed_in(owner).get("/portal/").content


def test_editing_other_fields_leaves_the_quotas_alone(settings, operator_client):
    partner = make_partner("Seoul Academy", sector="education", tier="strategic")
    quota = quota_for(partner=partner, capability="dialogue")
    Quota.objects.filter(pk=quota.pk).update(monthly_units=7, rpm=3)
    url = f"/admin/partners/partner/{partner.pk}/change/"
    form = operator_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"description": "A school.", "is_active": "on"})
    assert operator_client.post(url, data).status_code == 302
    assert Quota.objects.filter(partner=partner).count() == 1
    assert Quota.objects.values_list("monthly_units", "rpm").get(pk=quota.pk) == (7, 3)
    assert not AuditEvent.objects.filter(action="partner.tier_changed").exists()
