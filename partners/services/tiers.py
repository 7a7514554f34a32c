"""Tiers that mean something: a tier sets a partner's default quotas (partners.services.quotas.tier_defaults);
changing it is an operator's action, audited, which sets every capability's quota to the new tier's defaults (each
change a `quota.set` event the partner's admins see in the portal's audit log)."""

from __future__ import annotations

from django.db import transaction

from alliance.errors import InvalidInput
from capabilities import QUOTA_KEYS
from partners.models import Partner, Tier
from partners.services.audit import audit_record
from partners.services.quotas import quota_set, tier_defaults


@transaction.atomic
def partner_set_tier(*, partner: Partner, tier: str, actor: str) -> dict[str, int]:
    """Moves the partner to `tier` and its quotas to the tier's defaults; returns those defaults."""
    if tier not in Tier.values:
        raise InvalidInput(f"Unknown tier {tier!r}.", code="invalid_tier", param="tier")
    previous = Partner.objects.select_for_update().values_list("tier", flat=True).get(pk=partner.pk)
    partner.tier = tier
    partner.save(update_fields=["tier"])
    defaults = tier_defaults(tier)
    for capability in QUOTA_KEYS:
        quota_set(partner=partner, capability=capability, actor=actor, **defaults)
    audit_record(
        partner=partner,
        actor=actor,
        action="partner.tier_changed",
        target=partner.slug,
        data={"from": previous, "to": tier, **defaults},
    )
    return defaults
