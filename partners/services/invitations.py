"""Invitations to join a partner: made by an admin or owner, sent by email, accepted or declined once by whoever holds
the link, revocable while pending. The link's token is random and stored only as its SHA-256 hash. Each step is
audited; each refusal is a domain error with its own code."""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from alliance.errors import Conflict, Forbidden, InvalidInput, NotFound
from partners.models import Invitation, Membership, Partner, Role, invitation_token_hash
from partners.services.audit import actor_for, audit_record
from partners.services.members import membership_add

_MANAGERS = (Role.ADMIN, Role.OWNER)
# Why an invitation is no longer usable, by its state: the code of the refusal and the sentence for people.
REFUSALS = {
    "accepted": ("invitation_used", "This invitation has already been accepted."),
    "declined": ("invitation_used", "This invitation has been declined."),
    "revoked": ("invitation_revoked", "This invitation has been revoked."),
    "expired": ("invitation_expired", "This invitation has expired; ask for a new one."),
}


def _check_inviter(inviter: Membership, role: str) -> None:
    if inviter.role not in _MANAGERS:
        raise Forbidden("Only an admin or owner can invite or revoke invitations.", code="role_too_low")
    if role == Role.OWNER and inviter.role != Role.OWNER:
        raise Forbidden("Only an owner can invite an owner.", code="owner_invites_owner", param="role")


def _normalised_email(email: str) -> str:
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidInput("Enter a valid email address.", code="invalid_email", param="email") from None
    return email


@transaction.atomic
def invitation_create(
    *, inviter: Membership, email: str, role: str, now: dt.datetime | None = None
) -> tuple[Invitation, str]:
    """A new pending invitation and its raw token (for the link; never stored). A pending invitation of the same
    partner to the same address is replaced (revoked). Nothing here looks at whether an account has that address."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", code="invalid_role", param="role")
    _check_inviter(inviter, role)
    email = _normalised_email(email)
    now = now or timezone.now()
    partner: Partner = inviter.partner
    actor = actor_for(user=inviter.user)
    for previous in Invitation.objects.select_for_update().filter(
        partner=partner, email=email, accepted_at=None, declined_at=None, revoked_at=None, expires_at__gt=now
    ):
        _revoke(previous, actor=actor, now=now, reason="replaced")
    return _issue(partner=partner, email=email, role=role, invited_by=inviter.user, actor=actor, now=now)


def _issue(
    *, partner: Partner, email: str, role: str, invited_by: AbstractBaseUser | None, actor: str, now: dt.datetime
) -> tuple[Invitation, str]:
    raw = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        partner=partner,
        email=email,
        role=Role(role),
        invited_by=invited_by,
        token_hash=invitation_token_hash(raw),
        expires_at=now + dt.timedelta(days=settings.ALLIANCE_INVITATION_DAYS),
    )
    audit_record(
        partner=partner,
        actor=actor,
        action="invitation.created",
        target=email,
        data={"invitation": invitation.pk, "role": role, "expires_at": invitation.expires_at.isoformat()},
    )
    return invitation, raw


@transaction.atomic
def invitation_create_owner(
    *, partner: Partner, email: str, operator: AbstractBaseUser, now: dt.datetime | None = None
) -> tuple[Invitation, str]:
    """An alliance operator's invitation of a new partner's first owner (an approved application's contact)."""
    return _issue(
        partner=partner,
        email=_normalised_email(email),
        role=Role.OWNER,
        invited_by=operator,
        actor=actor_for(user=operator),
        now=now or timezone.now(),
    )


def _locked_pending(invitation: Invitation, now: dt.datetime) -> Invitation:
    locked = Invitation.objects.select_for_update().select_related("partner").get(pk=invitation.pk)
    state = locked.state(now)
    if state != "pending":
        code, message = REFUSALS[state]
        raise Conflict(message, code=code)
    if not locked.partner.is_active:
        raise Conflict("This partner is not active.", code="partner_inactive")
    return locked


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: AbstractBaseUser, now: dt.datetime | None = None) -> Membership:
    """The user joins the partner with the invited role; the invitation is used up."""
    now = now or timezone.now()
    locked = _locked_pending(invitation, now)
    if Membership.objects.filter(partner=locked.partner, user=user).exists():
        raise Conflict(f"You are already a member of {locked.partner.name}.", code="already_member")
    locked.accepted_at, locked.accepted_by = now, user
    locked.save(update_fields=["accepted_at", "accepted_by"])
    actor = actor_for(user=user)
    audit_record(
        partner=locked.partner,
        actor=actor,
        action="invitation.accepted",
        target=locked.email,
        data={"invitation": locked.pk, "role": locked.role},
    )
    return membership_add(partner=locked.partner, user=user, role=locked.role, actor=actor)


@transaction.atomic
def invitation_sign_up(
    *, invitation: Invitation, username: str, password: str, now: dt.datetime | None = None
) -> Membership:
    """A new account with the invited address (the caller has checked the username and the password), which accepts
    the invitation; both or neither."""
    now = now or timezone.now()
    locked = _locked_pending(invitation, now)
    users = get_user_model().objects
    if users.filter(username__iexact=username).exists():
        raise Conflict("A user with that username already exists.", code="username_taken", param="username")
    user = users.create_user(username=username, email=locked.email, password=password)
    audit_record(partner=locked.partner, actor=actor_for(user=user), action="invitation.signed_up", target=locked.email)
    return invitation_accept(invitation=locked, user=user, now=now)


@transaction.atomic
def invitation_decline(
    *, invitation: Invitation, user: AbstractBaseUser | None = None, now: dt.datetime | None = None
) -> Invitation:
    """Whoever holds the link declines it (signed in or not); the invitation is used up."""
    now = now or timezone.now()
    locked = _locked_pending(invitation, now)
    locked.declined_at = now
    locked.save(update_fields=["declined_at"])
    audit_record(
        partner=locked.partner,
        actor=actor_for(user=user) if user is not None else f"invitee:{locked.email}",
        action="invitation.declined",
        target=locked.email,
        data={"invitation": locked.pk},
    )
    return locked


def _revoke(invitation: Invitation, *, actor: str, now: dt.datetime, reason: str) -> None:
    invitation.revoked_at = now
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        partner=invitation.partner,
        actor=actor,
        action="invitation.revoked",
        target=invitation.email,
        data={"invitation": invitation.pk, "role": invitation.role, "reason": reason},
    )


@transaction.atomic
def invitation_revoke(*, revoker: Membership, invitation: Invitation, now: dt.datetime | None = None) -> Invitation:
    """An admin or owner of the invitation's partner withdraws it while pending (only an owner an owner's)."""
    if invitation.partner_id != revoker.partner_id:
        raise NotFound("No such invitation.", code="not_found")
    _check_inviter(revoker, invitation.role)
    now = now or timezone.now()
    locked = _locked_pending(invitation, now)
    _revoke(locked, actor=actor_for(user=revoker.user), now=now, reason="revoked")
    return locked
