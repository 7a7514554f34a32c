"""The person's own account: password reset (by an emailed link) and change, and the profile page, which lists the
person's partners and roles and lets them leave one (except as its last owner)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from partners import ratelimit
from partners.models import Membership
from partners.selectors import memberships_of_user
from portal.access import SESSION_PARTNER
from portal.members import PortalError, member_leave

# Reset requests per address a minute: each sends an email, whoever asks.
RESETS_PER_MINUTE = 5


class PasswordResetView(auth_views.PasswordResetView):
    """Answers the same whether or not an account has the address (Django's view sends only to existing ones)."""

    template_name = "portal/password_reset.html"
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password-reset-done")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        window = ratelimit.hit(f"password-reset:{self.request.META.get('REMOTE_ADDR', '')}", RESETS_PER_MINUTE)
        if not window.allowed:
            form.add_error(None, _("Too many reset requests from your address; try again in a minute."))
            response = self.form_invalid(form)
            response.status_code = 429
            response["Retry-After"] = str(max(1, int(window.reset_seconds)))
            return response
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password-reset-complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/password_reset_complete.html"


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "portal/password_change.html"
    success_url = reverse_lazy("portal:profile")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        messages.success(self.request, _("Your password is changed."))
        return super().form_valid(form)


@login_required(login_url="portal:login")
def profile(request: HttpRequest) -> HttpResponse:
    memberships = list(memberships_of_user(user=request.user))
    return render(request, "portal/profile.html", {"memberships": memberships})


@require_POST
@login_required(login_url="portal:login")
def leave(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = Membership.objects.select_related("partner").filter(pk=membership_id, user=request.user).first()
    if membership is None:
        raise Http404("No such membership.")
    try:
        member_leave(membership=membership)
    except PortalError as exc:
        messages.error(request, str(exc))
    else:
        if request.session.get(SESSION_PARTNER) == membership.partner_id:
            request.session.pop(SESSION_PARTNER)
        messages.success(request, _("You have left %(partner)s.") % {"partner": membership.partner.name})
    return redirect("portal:profile")
