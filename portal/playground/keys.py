"""The playground's per-member API key: issued once through api_key_issue; its raw value is never kept.

Playground jobs go through the same job_submit as the API, so they are charged, scoped, audited and listed like
any other job, under a key named `playground:<username>` that the partner can see (and revoke) in the portal.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from partners.models import ApiKey, Membership
from partners.selectors import api_key_named
from partners.services import actor_for, api_key_issue


def playground_key_name(membership: Membership) -> str:
    return f"playground:{membership.user.get_username()}"


@transaction.atomic
def playground_key_for(membership: Membership) -> ApiKey:
    """The member's usable playground key, issued on first use (or again after a revocation)."""
    Membership.objects.select_for_update().filter(pk=membership.pk).first()  # one issuer per member at a time
    name = playground_key_name(membership)
    api_key = api_key_named(partner=membership.partner, name=name, now=timezone.now())
    if api_key is None:
        api_key, _raw = api_key_issue(
            partner=membership.partner,
            name=name,
            actor=actor_for(user=membership.user),
            created_by=membership.user,
        )
    return api_key
