"""Portal writes that partners.services does not cover: inviting by email, and the owner rules of role changes."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from partners.models import Invitation, Membership, Role
from partners.services import actor_for, invitation_create, membership_remove, membership_set_role


class PortalError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# What an admin is told after inviting someone, whatever the address: whether an account has it is not said.
INVITE_ANSWER = gettext_lazy("An invitation to {email} to join as {role} is sent; its link is valid for {days} days.")


@transaction.atomic
def member_invite(*, actor: Membership, email: str, role: str, link_for: Callable[[str], str]) -> Invitation:
    """Makes an invitation and emails its link (`link_for(token)`); if the email cannot be sent, no invitation
    remains. Nothing here looks up accounts, so the answer cannot depend on them."""
    invitation, token = invitation_create(inviter=actor, email=email, role=role)
    inviter = actor.user.get_username()
    context = {"invitation": invitation, "inviter": inviter, "link": link_for(token)}
    body = render_to_string("portal/invitation_email.txt", {**context, "days": settings.ALLIANCE_INVITATION_DAYS})
    send_mail(
        _("%(inviter)s invites you to %(partner)s on the AI alliance platform")
        % {"inviter": inviter, "partner": actor.partner.name},
        body,
        None,
        [invitation.email],
    )
    return invitation


def _locked_owners(partner_id: int) -> int:
    """The partner's owners, their rows locked: two admins cannot each demote one of the last two owners."""
    return len(list(Membership.objects.select_for_update().filter(partner_id=partner_id, role=Role.OWNER)))


def _check_owner_rules(*, actor: Membership, target_role: str | None, new_role: str | None) -> None:
    if Role.OWNER in (target_role, new_role) and actor.role != Role.OWNER:
        raise PortalError(_("Only an owner can grant, change or remove the owner role."), "role")


@transaction.atomic
def member_set_role(*, actor: Membership, membership: Membership, role: str) -> Membership:
    _check_owner_rules(actor=actor, target_role=membership.role, new_role=role)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and role != Role.OWNER and _locked_owners(locked.partner_id) <= 1:
        raise PortalError(_("A partner keeps at least one owner: make someone else owner first."), "role")
    if locked.role == role:
        return locked
    return membership_set_role(membership=locked, role=role, actor=actor_for(user=actor.user))


@transaction.atomic
def member_remove(*, actor: Membership, membership: Membership) -> None:
    _check_owner_rules(actor=actor, target_role=membership.role, new_role=None)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and _locked_owners(locked.partner_id) <= 1:
        raise PortalError(_("The last owner cannot be removed."), "role")
    membership_remove(membership=locked, actor=actor_for(user=actor.user))


@transaction.atomic
def member_leave(*, membership: Membership) -> None:
    """The member leaves the partner by their own choice; a partner's last owner cannot (make another owner first)."""
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and _locked_owners(locked.partner_id) <= 1:
        raise PortalError(
            _("You are the last owner of %(partner)s: make someone else owner before you leave.")
            % {"partner": locked.partner.name},
            "role",
        )
    membership_remove(membership=locked, actor=actor_for(user=locked.user))
