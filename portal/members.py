"""Portal writes that partners.services does not cover: adding a member (creating the user when new)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from partners.models import Membership, Partner, Role
from partners.services import actor_for, audit_record, membership_add, membership_remove, membership_set_role


class PortalError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# What an admin is told after adding someone, whatever happened: an account that exists, one that does not, one
# that is already a member, an email that several accounts share. The answer must not tell which.
INVITE_ANSWER = (
    "If an account “{identifier}” exists, it is now a member as {role} (unless it already was). "
    "With a new username and a password, the account is created."
)


@dataclass(frozen=True)
class Invitation:
    """What was done; for the audit trail and tests, never for the answer to the admin."""

    membership: Membership | None
    user_created: bool


def _existing_user(identifier: str) -> AbstractBaseUser | None:
    """The one user with that username, or that email; None when there is none or the email is not unique."""
    users = get_user_model().objects
    user = users.filter(username__iexact=identifier).first()
    if user is None and "@" in identifier:
        matches = list(users.filter(email__iexact=identifier)[:2])
        user = matches[0] if len(matches) == 1 else None
    return user


def _check_new_account(identifier: str, email: str, password: str) -> None:
    """A new account's username and password rules, checked before anyone is looked up (so that whether an error
    comes back does not depend on whether the account exists)."""
    if "@" in identifier:
        return
    try:
        get_user_model()._meta.get_field("username").run_validators(identifier)
    except ValidationError as exc:
        raise PortalError(" ".join(exc.messages), "user") from None
    try:
        validate_password(password, get_user_model()(username=identifier, email=email))
    except ValidationError as exc:
        raise PortalError(" ".join(exc.messages), "password") from None


def _locked_owners(partner_id: int) -> int:
    """The partner's owners, their rows locked: two admins cannot each demote one of the last two owners."""
    return len(list(Membership.objects.select_for_update().filter(partner_id=partner_id, role=Role.OWNER)))


def _check_owner_rules(*, actor: Membership, target_role: str | None, new_role: str | None) -> None:
    if Role.OWNER in (target_role, new_role) and actor.role != Role.OWNER:
        raise PortalError("Only an owner can grant, change or remove the owner role.", "role")


@transaction.atomic
def member_invite(*, actor: Membership, identifier: str, role: str, email: str = "", password: str = "") -> Invitation:
    """Adds an existing user (by username or a unique email) to the partner, or, given a new username and a password,
    creates the user. The caller answers the same in every case (INVITE_ANSWER); the request is audited without its
    outcome, so the partner's audit log does not tell either. Errors depend only on the input, never on who exists."""
    partner: Partner = actor.partner
    identifier = identifier.strip()
    _check_owner_rules(actor=actor, target_role=None, new_role=role)
    if password:
        _check_new_account(identifier, email, password)
    audit_record(
        partner=partner,
        actor=actor_for(user=actor.user),
        action="membership.add_requested",
        target=identifier[:200],
        data={"role": role, "new_account_requested": bool(password)},
    )
    user = _existing_user(identifier)
    created = False
    if user is None:
        if not password or "@" in identifier:
            return Invitation(membership=None, user_created=False)
        user = get_user_model().objects.create_user(username=identifier, email=email, password=password)
        created = True
    elif Membership.objects.filter(partner=partner, user=user).exists():
        return Invitation(membership=None, user_created=False)
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
