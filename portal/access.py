"""Who is acting in the portal: the signed-in user's membership of the partner chosen in the session.

Roles are checked here, on the server, for every view: hiding a button is only a courtesy.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from alliance.api.errors import ApiError
from partners.models import ApiKey, Membership, Role
from partners.selectors import memberships_of_user

SESSION_PARTNER = "portal_partner_id"
ROLE_RANK = {Role.VIEWER: 0, Role.DEVELOPER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(minimum)]


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership for the partner chosen in the session, else the user's first partner (by name)."""
    if not request.user.is_authenticated:
        return None
    memberships = list(memberships_of_user(user=request.user))
    if not memberships:
        return None
    chosen = request.session.get(SESSION_PARTNER)
    membership = next((m for m in memberships if m.partner_id == chosen), memberships[0])
    if membership.partner_id != chosen:
        request.session[SESSION_PARTNER] = membership.partner_id
    membership.all_memberships = memberships
    return membership


RUN_ROLE = Role.DEVELOPER  # the least role that runs jobs from the web (the playground, a showcase's recipe)


def member_who_runs(request: HttpRequest, *, what: str) -> Membership:
    """The signed-in member who may run jobs from the web; ApiError (401/403 in the API's error shape) otherwise."""
    membership = current_membership(request)
    if membership is None:
        raise ApiError(
            f"Sign in as a member of a partner to run {what}.",
            code="not_authenticated" if not request.user.is_authenticated else "no_partner",
            status_code=401 if not request.user.is_authenticated else 403,
        )
    if not role_at_least(membership.role, RUN_ROLE):
        raise ApiError(
            f"Your role ({membership.role}) cannot run jobs; a developer, admin or owner can.",
            code="role_denied",
            status_code=403,
        )
    return membership


def choose_partner(request: HttpRequest, slug: str) -> Membership | None:
    membership = next((m for m in memberships_of_user(user=request.user) if m.partner.slug == slug), None)
    if membership is not None:
        request.session[SESSION_PARTNER] = membership.partner_id
    return membership


def may_change_key(membership: Membership, api_key: ApiKey) -> bool:
    """Who may rotate or revoke a key: admins and owners any key of their partner, a developer only a key they created
    (keys issued from the command line, by no one, are the admins' alone). Views and the keys page both ask this."""
    if api_key.partner_id != membership.partner_id:
        return False
    if role_at_least(membership.role, Role.ADMIN):
        return True
    return role_at_least(membership.role, Role.DEVELOPER) and api_key.created_by_id == membership.user_id


class Can:
    """What a role may do; templates read it to show or hide controls, views enforce the same rules."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.manage_keys = role_at_least(role, Role.DEVELOPER)
        self.run_jobs = role_at_least(role, Role.DEVELOPER)
        self.edit_showcases = role_at_least(role, Role.DEVELOPER)
        self.manage_members = role_at_least(role, Role.ADMIN)
        self.see_audit = role_at_least(role, Role.ADMIN)
        self.grant_owner = role == Role.OWNER


def portal_view(min_role: str = Role.VIEWER) -> Callable:
    """Requires a signed-in member of a partner with at least `min_role`; sets request.membership/partner/can."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), "portal:login")
            membership = current_membership(request)
            if membership is None:
                return render(request, "portal/no_partner.html", status=403)
            if not role_at_least(membership.role, min_role):
                raise PermissionDenied(_("This needs the %(role)s role or higher.") % {"role": min_role})
            request.membership = membership
            request.partner = membership.partner
            request.can = Can(membership.role)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
