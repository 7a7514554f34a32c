"""Partners and their people: creation, activation, memberships and roles (each audited)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from partners.models import (
    Membership,
    Partner,
    Role,
)
from partners.services.audit import audit_record


@transaction.atomic
def partner_create(
    *,
    name: str,
    sector: str,
    tier: str = "standard",
    founding_member: bool = False,
    country: str = "",
    website: str = "",
    description: str = "",
    listed: bool = False,
    actor: str = "system",
) -> Partner:
    partner = Partner.objects.create(
        name=name,
        slug=slugify(name),
        sector=sector,
        tier=tier,
        founding_member=founding_member,
        country=country,
        website=website,
        description=description,
        listed=listed,
    )
    audit_record(partner=partner, actor=actor, action="partner.created", target=partner.slug)
    return partner


@transaction.atomic
def partner_set_active(*, partner: Partner, is_active: bool, actor: str) -> Partner:
    partner.is_active = is_active
    partner.save(update_fields=["is_active"])
    audit_record(partner=partner, actor=actor, action="partner.activated" if is_active else "partner.deactivated")
    return partner


@transaction.atomic
def membership_add(*, partner: Partner, user: AbstractBaseUser, role: str, actor: str) -> Membership:
    membership = Membership.objects.create(partner=partner, user=user, role=Role(role))
    audit_record(
        partner=partner, actor=actor, action="membership.added", target=user.get_username(), data={"role": role}
    )
    return membership


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str, actor: str) -> Membership:
    previous = membership.role
    membership.role = Role(role)
    membership.save(update_fields=["role"])
    audit_record(
        partner=membership.partner,
        actor=actor,
        action="membership.role_changed",
        target=membership.user.get_username(),
        data={"from": previous, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: str) -> None:
    audit_record(
        partner=membership.partner,
        actor=actor,
        action="membership.removed",
        target=membership.user.get_username(),
        data={"role": membership.role},
    )
    membership.delete()
