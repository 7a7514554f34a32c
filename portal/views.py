"""The partner admin portal: keys, quotas and usage, jobs and their files, members, showcases, the audit log.

Views stay thin: reads come from selectors, writes go through services, and every view states its minimum role.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import smtplib
from collections import defaultdict

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from alliance.errors import DomainError, Forbidden, NotFound
from capabilities import CAPABILITY_NAMES
from inference import selectors as job_selectors
from inference.images import file_path
from inference.services.tuning_jobs import active_tuning_jobs
from inference.storage import storage_use
from inference.webhook_security import signing_secret, webhook_secret_rotate
from partners.models import Invitation, Membership, Role
from partners.selectors import (
    active_api_keys_of,
    api_keys_of,
    audit_events_of,
    invitation_by_token,
    members_of,
    pending_invitations_of,
    quota_usage,
    usage_by_day,
)
from partners.services import (
    actor_for,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    invitation_accept,
    invitation_decline,
    invitation_revoke,
    invitation_sign_up,
    month_start,
)
from partners.services.invitations import REFUSALS as INVITATION_REFUSALS
from portal import forms
from portal.access import choose_partner, may_change_key, portal_view, role_at_least
from portal.charts import daily_chart
from portal.members import INVITE_ANSWER, PortalError, member_invite, member_remove, member_set_role
from usecases.recipes import RecipeInvalid
from usecases.selectors import usecases_of
from usecases.services import (
    UseCaseTransitionError,
    usecase_create,
    usecase_image_add,
    usecase_submit,
    usecase_update,
)


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("portal:home")


def locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """django-axes' answer to a sign-in (portal or admin) while its username and address are locked out."""
    minutes = max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {"username": username, "failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes}
    response = render(request, "portal/locked_out.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


class LogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("gallery")


def _page(request: HttpRequest, items, per_page: int = 25):
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def _actor(request: HttpRequest) -> str:
    return actor_for(user=request.user)


# ---------------------------------------------------------------- overview and partner switch


@portal_view()
def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    month = month_start(now)
    quotas = quota_usage(partner=request.partner, month=month, capabilities=CAPABILITY_NAMES)
    jobs = job_selectors.jobs_of(partner=request.partner)
    context = {
        "units_used": sum(row["used"] for row in quotas),
        "jobs_this_month": jobs.filter(created_at__date__gte=month).count(),
        "active_keys": active_api_keys_of(partner=request.partner, now=now).count(),
        "members": members_of(partner=request.partner).count(),
        "recent_jobs": jobs[:5],
        "month": month,
    }
    return render(request, "portal/home.html", context)


@require_POST
@portal_view()
def switch_partner(request: HttpRequest) -> HttpResponse:
    membership = choose_partner(request, request.POST.get("partner", ""))
    if membership is None:
        raise Http404("You are not a member of that partner.")
    messages.info(
        request,
        _("Now working as %(partner)s (%(role)s).")
        % {"partner": membership.partner.name, "role": membership.get_role_display().lower()},
    )
    target = request.POST.get("next") or reverse("portal:home")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("portal:home")
    return redirect(target)


# ---------------------------------------------------------------- API keys


def _key_rows(request: HttpRequest) -> list[dict]:
    now = timezone.now()
    rows = []
    for key in api_keys_of(partner=request.partner).select_related("created_by").prefetch_related("credentials"):
        if key.revoked_at:
            state = "revoked"
        elif key.expires_at and key.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        in_grace = [c for c in key.credentials.all() if c.valid_until and c.valid_until > now]
        rows.append(
            {
                "key": key,
                "state": state,
                "grace_until": max((c.valid_until for c in in_grace), default=None),
                "may_change": may_change_key(request.membership, key),
            }
        )
    return rows


def _sees_webhook_secret(request: HttpRequest) -> bool:
    return role_at_least(request.membership.role, Role.ADMIN)


def _keys_page(request: HttpRequest, *, form=None, secret: dict | None = None, status: int = 200) -> HttpResponse:
    webhook_secret = signing_secret(request.partner) if _sees_webhook_secret(request) else None
    context = {
        "keys": _key_rows(request),
        "form": form or forms.ApiKeyIssueForm(),
        "rotate_form": forms.ApiKeyRotateForm(),
        "secret": secret,
        "webhook_secret": webhook_secret,
    }
    response = render(request, "portal/keys.html", context, status=status)
    if secret or webhook_secret:
        response["Cache-Control"] = "no-store"
    return response


@portal_view()
def keys(request: HttpRequest) -> HttpResponse:
    return _keys_page(request)


@never_cache
@require_POST
@portal_view(min_role=Role.DEVELOPER)
def key_issue(request: HttpRequest) -> HttpResponse:
    form = forms.ApiKeyIssueForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, form=form, status=400)
    days = form.cleaned_data.get("expires_in_days")
    try:
        api_key, raw = api_key_issue(
            partner=request.partner,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
            actor=_actor(request),
            created_by=request.user,
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _keys_page(request, form=form, status=400)
    secret = {"key": api_key, "raw": raw, "action": "issued"}
    return _keys_page(request, secret=secret, status=201)


def _key_to_change(request: HttpRequest, public_id: str):
    """The partner's key, if this member may rotate or revoke it (403 otherwise; 404 for another partner's)."""
    api_key = api_keys_of(partner=request.partner).filter(public_id=public_id).first()
    if api_key is None:
        raise Http404("No such key.")
    if not may_change_key(request.membership, api_key):
        raise PermissionDenied(_("Only an admin or owner may rotate or revoke a key that someone else created."))
    return api_key


@never_cache
@require_POST
@portal_view(min_role=Role.DEVELOPER)
def key_rotate(request: HttpRequest, public_id: str) -> HttpResponse:
    api_key = _key_to_change(request, public_id)
    form = forms.ApiKeyRotateForm(request.POST)
    hours = form.cleaned_data.get("grace_hours") if form.is_valid() else None
    hours = 24 if hours is None else hours
    try:
        raw = api_key_rotate(api_key=api_key, actor=_actor(request), grace_seconds=hours * 3600)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:keys")
    secret = {"key": api_key, "raw": raw, "action": "rotated", "grace_hours": hours}
    return _keys_page(request, secret=secret)


@require_POST
@portal_view(min_role=Role.DEVELOPER)
def key_revoke(request: HttpRequest, public_id: str) -> HttpResponse:
    api_key = _key_to_change(request, public_id)
    api_key_revoke(api_key=api_key, actor=_actor(request))
    messages.success(
        request,
        _("Key %(id)s (%(name)s) is revoked; it can never be used again.")
        % {"id": api_key.public_id, "name": api_key.name},
    )
    return redirect("portal:keys")


@never_cache
@require_POST
@portal_view(min_role=Role.ADMIN)
def webhook_secret_rotate_view(request: HttpRequest) -> HttpResponse:
    webhook_secret_rotate(partner=request.partner, actor=_actor(request))
    messages.success(
        request, _("The webhook signing secret is rotated: webhooks are signed with the new one from now.")
    )
    return redirect("portal:keys")


# ---------------------------------------------------------------- quotas and usage


@portal_view()
def usage(request: HttpRequest) -> HttpResponse:
    form = forms.UsageFilterForm(request.GET or None)
    capability = form.cleaned_data.get("capability") if form.is_valid() else None
    now = timezone.now()
    month = month_start(now)
    since = dt.datetime.combine(month, dt.time.min, tzinfo=dt.UTC)
    until = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    rows = usage_by_day(partner=request.partner, since=since, until=until, capability=capability or None)
    per_day: dict[dt.date, int] = defaultdict(int)
    for row in rows:
        per_day[dt.date.fromisoformat(row["date"])] += row["units"]
    days = [month + dt.timedelta(days=i) for i in range((now.date() - month).days + 1)]
    context = {
        "form": form,
        "capability": capability,
        "month": month,
        "quotas": quota_usage(partner=request.partner, month=month, capabilities=CAPABILITY_NAMES),
        "chart": daily_chart(days, per_day),
        "rows": rows,
        "storage": storage_use(partner_id=request.partner.pk),
        "tuning_active": active_tuning_jobs(partner_id=request.partner.pk),
        "tuning_max": settings.ALLIANCE_MAX_ACTIVE_TUNING_JOBS,
        "waiting_max": settings.ALLIANCE_API_KEY_MAX_WAITING,
        "write_rpm": settings.ALLIANCE_API_KEY_WRITE_RPM,
    }
    return render(request, "portal/usage.html", context)


# ---------------------------------------------------------------- jobs and files


@portal_view()
def jobs(request: HttpRequest) -> HttpResponse:
    form = forms.JobFilterForm(request.GET or None)
    filters = {k: v for k, v in form.cleaned_data.items() if v} if form.is_valid() else {}
    page = _page(request, job_selectors.jobs_of(partner=request.partner, **filters).select_related("api_key"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "portal/jobs.html",
        {"form": form, "page": page, "filtered": bool(filters), "query": query.urlencode()},
    )


@portal_view()
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = job_selectors.job_of(partner=request.partner, job_id=job_id)
    except NotFound:
        raise Http404("No such job.") from None
    input_image = job.input.get("image") if isinstance(job.input, dict) else None
    output_image = (job.output or {}).get("image") if isinstance(job.output, dict) else None
    return render(
        request,
        "portal/job_detail.html",
        {
            "job": job,
            "input_image": input_image if isinstance(input_image, str) and input_image.startswith("file_") else None,
            "output_image": output_image.get("file_id") if isinstance(output_image, dict) else None,
        },
    )


def file_content(request: HttpRequest, file_id: str) -> FileResponse:
    """A stored file, to signed-in members of its partner only; everyone else gets a 404."""
    stored = job_selectors.stored_file_for_member(user=request.user, file_id=file_id)
    if stored is None:
        raise Http404("No such file.")
    path = file_path(stored)
    if not path.exists():
        raise Http404("The file's content is gone.")
    response = FileResponse(path.open("rb"), content_type=stored.content_type, filename=stored.filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


# ---------------------------------------------------------------- members and the audit log


def _member_of(request: HttpRequest, membership_id: int) -> Membership:
    membership = members_of(partner=request.partner).filter(pk=membership_id).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


def _members_page(request: HttpRequest, *, form=None, status: int = 200) -> HttpResponse:
    invitations = (
        pending_invitations_of(partner=request.partner, now=timezone.now()) if request.can.manage_members else []
    )
    context = {
        "members": members_of(partner=request.partner),
        "invitations": invitations,
        "form": form or forms.InviteForm(),
        "roles": Role.choices,
    }
    return render(request, "portal/members.html", context, status=status)


@portal_view()
def members(request: HttpRequest) -> HttpResponse:
    return _members_page(request)


@require_POST
@portal_view(min_role=Role.ADMIN)
def member_invite_view(request: HttpRequest) -> HttpResponse:
    form = forms.InviteForm(request.POST)
    if not form.is_valid():
        return _members_page(request, form=form, status=400)
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    try:
        invitation = member_invite(
            actor=request.membership,
            email=email,
            role=role,
            link_for=lambda token: request.build_absolute_uri(reverse("portal:invitation", args=[token])),
        )
    except DomainError as exc:
        form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        return _members_page(request, form=form, status=403 if isinstance(exc, Forbidden) else 400)
    except (OSError, smtplib.SMTPException):
        form.add_error(None, _("The email could not be sent, so no invitation was made. Try again later."))
        return _members_page(request, form=form, status=503)
    # The same answer whether or not an account has that address: nothing here looked.
    days = settings.ALLIANCE_INVITATION_DAYS
    messages.success(
        request, str(INVITE_ANSWER).format(email=invitation.email, role=Role(role).label.lower(), days=days)
    )
    return redirect("portal:members")


@require_POST
@portal_view(min_role=Role.ADMIN)
def invitation_revoke_view(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = pending_invitations_of(partner=request.partner, now=timezone.now()).filter(pk=invitation_id).first()
    if invitation is None:
        raise Http404("No such pending invitation.")
    try:
        invitation_revoke(revoker=request.membership, invitation=invitation)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("The invitation to %(email)s is revoked; its link no longer works.") % {"email": invitation.email},
        )
    return redirect("portal:members")


# ---------------------------------------------------------------- an invitation's link (no membership needed)


def _invitation_refused(request: HttpRequest, code: str, message: str, status: int) -> HttpResponse:
    """The page for a link that cannot be used: it names no partner, so a token tells nothing once it is spent."""
    return render(request, "portal/invitation_gone.html", {"code": code, "message": message}, status=status)


def _pending_invitation(request: HttpRequest, token: str) -> Invitation | HttpResponse:
    invitation = invitation_by_token(token)
    if invitation is None:
        return _invitation_refused(request, "not_found", _("There is no invitation with this link."), 404)
    state = invitation.state(timezone.now())
    if state != "pending":
        return _invitation_refused(request, *INVITATION_REFUSALS[state], 410)
    if not invitation.partner.is_active:
        return _invitation_refused(request, "partner_inactive", _("This invitation can no longer be accepted."), 410)
    return invitation


def _refusal_of(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return _invitation_refused(request, exc.code, exc.message, 410 if exc.code in _GONE_CODES else 409)


_GONE_CODES = {"invitation_used", "invitation_revoked", "invitation_expired", "partner_inactive"}


def _joined(request: HttpRequest, membership: Membership) -> HttpResponse:
    choose_partner(request, membership.partner.slug)
    role = membership.get_role_display().lower()
    messages.success(
        request,
        _("Welcome to %(partner)s: you are a member as %(role)s.") % {"partner": membership.partner.name, "role": role},
    )
    return redirect("portal:home")


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_view(request: HttpRequest, token: str) -> HttpResponse:
    """Shows the invitation; a visitor without an account signs up here (POST) and joins."""
    found = _pending_invitation(request, token)
    if isinstance(found, HttpResponse):
        return found
    form = None
    if not request.user.is_authenticated:
        form = forms.InvitationSignUpForm(request.POST or None, email=found.email)
        if request.method == "POST" and form.is_valid():
            try:
                membership = invitation_sign_up(
                    invitation=found, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
                )
            except DomainError as exc:
                if exc.param not in form.fields:
                    return _refusal_of(request, exc)
                form.add_error(exc.param, exc.message)
            else:
                login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
                return _joined(request, membership)
    elif request.method == "POST":
        return HttpResponseNotAllowed(["GET"])
    login_url = f"{reverse('portal:login')}?{urlencode({'next': request.path})}"
    context = {"invitation": found, "form": form, "login_url": login_url, "token": token}
    return render(request, "portal/invitation.html", context, status=400 if form is not None and form.errors else 200)


@never_cache
@require_POST
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    found = _pending_invitation(request, token)
    if isinstance(found, HttpResponse):
        return found
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("portal:invitation", args=[token]), "portal:login")
    try:
        membership = invitation_accept(invitation=found, user=request.user)
    except DomainError as exc:
        return _refusal_of(request, exc)
    return _joined(request, membership)


@never_cache
@require_POST
def invitation_decline_view(request: HttpRequest, token: str) -> HttpResponse:
    found = _pending_invitation(request, token)
    if isinstance(found, HttpResponse):
        return found
    try:
        invitation_decline(invitation=found, user=request.user if request.user.is_authenticated else None)
    except DomainError as exc:
        return _refusal_of(request, exc)
    return render(request, "portal/invitation_declined.html", {"partner_name": found.partner.name})


@require_POST
@portal_view(min_role=Role.ADMIN)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _member_of(request, membership_id)
    form = forms.RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a valid role."))
        return redirect("portal:members")
    try:
        member_set_role(actor=request.membership, membership=membership, role=form.cleaned_data["role"])
    except PortalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("%(user)s is now %(role)s.")
            % {"user": membership.user.get_username(), "role": form.cleaned_data["role"]},
        )
    return redirect("portal:members")


@require_POST
@portal_view(min_role=Role.ADMIN)
def member_remove_view(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _member_of(request, membership_id)
    try:
        member_remove(actor=request.membership, membership=membership)
    except PortalError as exc:
        messages.error(request, str(exc))
        return redirect("portal:members")
    messages.success(
        request,
        _("%(user)s no longer belongs to %(partner)s.")
        % {"user": membership.user.get_username(), "partner": request.partner.name},
    )
    if membership.user_id == request.user.id:
        return redirect("portal:home")
    return redirect("portal:members")


@portal_view(min_role=Role.ADMIN)
def audit(request: HttpRequest) -> HttpResponse:
    page = _page(request, audit_events_of(partner=request.partner), per_page=50)
    return render(request, "portal/audit.html", {"page": page})


# ---------------------------------------------------------------- showcases


@portal_view()
def showcases(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/showcases.html", {"usecases": usecases_of(partner=request.partner)})


def _showcase_of(request: HttpRequest, usecase_id: int):
    usecase = usecases_of(partner=request.partner).filter(pk=usecase_id).first()
    if usecase is None:
        raise Http404("No such showcase.")
    return usecase


def _save_showcase(request: HttpRequest, form: forms.UseCaseForm, usecase=None):
    data = {k: v for k, v in form.cleaned_data.items() if k not in ("image", "image_caption")}
    if usecase is None:
        usecase = usecase_create(partner=request.partner, user=request.user, **data)
    else:
        usecase = usecase_update(usecase=usecase, user=request.user, **data)
    if form.cleaned_data.get("image"):
        image, caption = form.cleaned_data["image"], form.cleaned_data["image_caption"]
        try:
            usecase_image_add(usecase=usecase, user=request.user, image=image, caption=caption)
        except DomainError as exc:
            messages.error(request, _("The text is saved; the picture is not: %(reason)s") % {"reason": exc.message})
    return usecase


@portal_view(min_role=Role.DEVELOPER)
def showcase_new(request: HttpRequest) -> HttpResponse:
    form = forms.UseCaseForm(request.POST or None, request.FILES or None, initial={"sector": request.partner.sector})
    if request.method == "POST" and form.is_valid():
        try:
            usecase = _save_showcase(request, form)
        except RecipeInvalid as exc:
            form.add_error("recipe", f"{exc.param}: {exc.message}")
        else:
            messages.success(request, _("Draft saved. Submit it for review when it is ready."))
            return redirect("portal:showcase-edit", usecase.pk)
    return render(request, "portal/showcase_form.html", {"form": form}, status=400 if form.errors else 200)


@portal_view(min_role=Role.DEVELOPER)
def showcase_edit(request: HttpRequest, usecase_id: int) -> HttpResponse:
    usecase = _showcase_of(request, usecase_id)
    texts = ("title", "title_ko", "summary", "summary_ko", "story", "story_ko")
    initial = {name: getattr(usecase, name) for name in ("sector", "capabilities", *texts)}
    initial.update(results=usecase.results, try_capability=usecase.try_capability)
    if usecase.example_input:
        initial["example_input"] = json.dumps(usecase.example_input, indent=2, ensure_ascii=False)
    if usecase.recipe:
        initial["recipe"] = json.dumps(usecase.recipe, indent=2, ensure_ascii=False)
    form = forms.UseCaseForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            _save_showcase(request, form, usecase)
        except UseCaseTransitionError as exc:
            messages.error(request, str(exc))
        except RecipeInvalid as exc:
            form.add_error("recipe", f"{exc.param}: {exc.message}")
        else:
            messages.success(request, _("Saved."))
        if not form.errors:
            return redirect("portal:showcase-edit", usecase.pk)
    return render(
        request,
        "portal/showcase_form.html",
        {"form": form, "usecase": usecase, "editable": usecase.status in ("draft", "rejected")},
        status=400 if form.errors else 200,
    )


@require_POST
@portal_view(min_role=Role.DEVELOPER)
def showcase_submit(request: HttpRequest, usecase_id: int) -> HttpResponse:
    usecase = _showcase_of(request, usecase_id)
    try:
        usecase_submit(usecase=usecase, user=request.user)
    except UseCaseTransitionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Submitted: an alliance operator will review it before it is public."))
    return redirect("portal:showcases")
