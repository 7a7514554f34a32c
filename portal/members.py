"""Portal writes that partners.services does not cover: inviting a member (creating the user when new)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from partners.models import Membership, Partner, Role
from partners.services import actor_for, membership_add, membership_remove, membership_set_role


class PortalError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Invitation:
    membership: Membership
    user_created: bool


def _existing_user(identifier: str) -> AbstractBaseUser | None:
    users = get_user_model().objects
    user = users.filter(username__iexact=identifier).first()
    if user is None and "@" in identifier:
        matches = list(users.filter(email__iexact=identifier)[:2])
        if len(matches) > 1:
            raise PortalError("Several users have that email; give the username.", "user")
        user = matches[0] if matches else None
    return user


def _locked_owners(partner_id: int) -> int:
    """The partner's owners, their rows locked: two admins cannot each demote one of the last two owners."""
    return len(list(Membership.objects.select_for_update().filter(partner_id=partner_id, role=Role.OWNER)))


def _check_owner_rules(*, actor: Membership, target_role: str | None, new_role: str | None) -> None:
    if Role.OWNER in (target_role, new_role) and actor.role != Role.OWNER:
        raise PortalError("Only an owner can grant, change or remove the owner role.", "role")


@transaction.atomic
def member_invite(*, actor: Membership, identifier: str, role: str, email: str = "", password: str = "") -> Invitation:
    """Adds an existing user (by username or email), or creates a new user with a password, to the partner."""
    partner: Partner = actor.partner
    identifier = identifier.strip()
    _check_owner_rules(actor=actor, target_role=None, new_role=role)
    user = _existing_user(identifier)
    created = False
    if user is None:
        if not password:
            raise PortalError("No such user. To create one, give a new username and a password.", "password")
        if "@" in identifier:
            raise PortalError("No user has that email. To create one, give a username (and the email below).", "user")
        try:
            get_user_model()._meta.get_field("username").run_validators(identifier)
        except ValidationError as exc:
            raise PortalError(" ".join(exc.messages), "user") from None
        try:
            validate_password(password, get_user_model()(username=identifier, email=email))
        except ValidationError as exc:
            raise PortalError(" ".join(exc.messages), "password") from None
        user = get_user_model().objects.create_user(username=identifier, email=email, password=password)
        created = True
    elif Membership.objects.filter(partner=partner, user=user).exists():
        raise PortalError(f"{user.get_username()} is already a member of {partner.name}.", "user")
    membership = membership_add(partner=partner, user=user, role=role, actor=actor_for(user=actor.user))
    return Invitation(membership=membership, user_created=created)


@transaction.atomic
def member_set_role(*, actor: Membership, membership: Membership, role: str) -> Membership:
    _check_owner_rules(actor=actor, target_role=membership.role, new_role=role)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and role != Role.OWNER and _locked_owners(locked.partner_id) <= 1:
        raise PortalError("A partner keeps at least one owner: make someone else owner first.", "role")
    if locked.role == role:
        return locked
    return membership_set_role(membership=locked, role=role, actor=actor_for(user=actor.user))


@transaction.atomic
def member_remove(*, actor: Membership, membership: Membership) -> None:
    _check_owner_rules(actor=actor, target_role=membership.role, new_role=None)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and _locked_owners(locked.partner_id) <= 1:
        raise PortalError("The last owner cannot be removed.", "role")
    membership_remove(membership=locked, actor=actor_for(user=actor.user))
