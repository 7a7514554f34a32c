from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from partners.models import Membership, Partner
from partners.services import membership_add
from tests.services import skip_or_fail_without_services

PASSWORD = "correct-horse-battery-staple"
_names = itertools.count(1)


def make_member(partner: Partner, role: str, username: str | None = None) -> Membership:
    user = get_user_model().objects.create_user(
        username=username or f"user{next(_names)}",
        email=f"{username or 'u'}{next(_names)}@example.com",
        password=PASSWORD,
    )
    return membership_add(partner=partner, user=user, role=role, actor="test")


def signed_in(membership: Membership, *, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(membership.user)
    return client


@pytest.fixture
def owner(partner):
    return make_member(partner, "owner", "olivia")


@pytest.fixture
def developer(partner):
    return make_member(partner, "developer", "devon")


@pytest.fixture
def viewer(partner):
    return make_member(partner, "viewer", "vera")


@pytest.fixture
def live_services(transactional_db) -> None:
    """PostgreSQL and Redis, with this test's rows committed so the worker process sees them."""
    skip_or_fail_without_services()
