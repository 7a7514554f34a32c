"""The alliance operators' admin. Every change made here is audited like a change made anywhere else; the audit
log itself can only be read; a key's owner, scopes and revocation are not edited here (revoke with the action)."""

from __future__ import annotations

import smtplib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from alliance.errors import DomainError
from partners.models import (
    ApiKey,
    Application,
    ApplicationStatus,
    AuditEvent,
    Invitation,
    Membership,
    Partner,
    Quota,
    Tier,
    UsageRecord,
)
from partners.services import (
    actor_for,
    api_key_revoke,
    application_approve,
    application_decline,
    audit_record,
    partner_set_tier,
    quota_set,
    tier_defaults,
)


def _partner_of(obj: models.Model) -> Partner | None:
    if isinstance(obj, Partner):
        return obj if obj.pk else None
    partner = getattr(obj, "partner", None)
    return partner if isinstance(partner, Partner) else None


def admin_audit(request: HttpRequest, obj: models.Model, verb: str, fields: list[str] | None = None) -> AuditEvent:
    """One audit event for an operator's change in the admin: actor user:<name>, action admin.<model>.<verb>."""
    data: dict[str, Any] = {"model": obj._meta.label, "id": obj.pk}
    if fields is not None:
        data["fields"] = sorted(fields)
    return audit_record(
        partner=_partner_of(obj),
        actor=actor_for(user=request.user),
        action=f"admin.{obj._meta.model_name}.{verb}",
        target=str(obj)[:200],
        data=data,
    )


class AuditedAdmin(admin.ModelAdmin):
    """Saves and deletes (one object, the bulk action, inline rows) each write an AuditEvent in the same transaction."""

    def save_model(self, request: HttpRequest, obj: models.Model, form: ModelForm, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            admin_audit(request, obj, "changed" if change else "added", list(form.changed_data))

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with transaction.atomic():
            admin_audit(request, obj, "deleted")
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for obj in queryset:
                admin_audit(request, obj, "deleted")
            super().delete_queryset(request, queryset)

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseFormSet, change: bool) -> None:
        with transaction.atomic():
            super().save_formset(request, form, formset, change)
            for obj in formset.new_objects:
                admin_audit(request, obj, "added")
            for obj, fields in formset.changed_objects:
                admin_audit(request, obj, "changed", list(fields))
            for obj in formset.deleted_objects:
                admin_audit(request, obj, "deleted")


@admin.register(Partner)
class PartnerAdmin(AuditedAdmin):
    list_display = ["name", "slug", "sector", "tier", "founding_member", "is_active", "listed"]
    list_filter = ["sector", "tier", "is_active", "listed"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]

    def save_model(self, request: HttpRequest, obj: Partner, form: Any, change: bool) -> None:
        """A change of tier goes through the service: every capability's quota moves to the new tier's defaults."""
        if not (change and "tier" in form.changed_data):
            super().save_model(request, obj, form, change)
            return
        new_tier, obj.tier = obj.tier, form.initial["tier"]
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            defaults = partner_set_tier(partner=obj, tier=new_tier, actor=actor_for(user=request.user))
        self.message_user(
            request,
            f"{obj.name} is now {obj.get_tier_display()}: each capability's quota is "
            f"{defaults['monthly_units']:,} units a month and {defaults['rpm']:,} requests per minute.",
            messages.SUCCESS,
        )


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "partner", "role"]
    list_filter = ["role"]


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    """Keys are issued where their secret can be shown once (the portal, `issue_api_key`), so not here; revocation is
    final and goes through the service; deleting a key would erase what its jobs and audit events point at."""

    list_display = ["public_id", "partner", "name", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["public_id", "partner", "scopes", "created_by", "created_at", "revoked_at", "last_used_at"]
    list_filter = ["partner"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected keys (final)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.select_related("partner").filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key, actor=actor_for(user=request.user))
            revoked += 1
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)


@admin.register(Quota)
class QuotaAdmin(AuditedAdmin):
    list_display = ["partner", "capability", "monthly_units", "rpm"]
    list_filter = ["capability"]

    def save_model(self, request: HttpRequest, obj: Quota, form: Any, change: bool) -> None:
        """Through the service, so an operator's change is validated and audited like any other."""
        saved = quota_set(
            partner=obj.partner,
            capability=obj.capability,
            monthly_units=obj.monthly_units,
            rpm=obj.rpm,
            actor=actor_for(user=request.user),
        )
        obj.pk = saved.pk


class ReadOnlyAdmin(admin.ModelAdmin):
    """A ledger: operators read it; no one adds, edits or deletes a row here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ["partner", "capability", "kind", "units", "created_at"]
    list_filter = ["kind", "capability"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    """Invitations are made, accepted, declined and revoked in the portal, each step audited; operators read them
    (the token's hash is not shown)."""

    list_display = ["email", "partner", "role", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email"]
    exclude = ["token_hash"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Not even a superuser deletes or edits an audit event here; deleting a partner that has some is refused too
    (the admin asks every related model's delete permission)."""

    list_display = ["created_at", "partner", "actor", "action", "target"]
    list_filter = ["action"]
    search_fields = ["actor", "action", "target"]


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    """Django's user admin, with its changes (staff and superuser flags, groups, passwords, deletions) audited."""

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if request.resolver_match and request.resolver_match.url_name == "auth_user_password_change":
            admin_audit(request, obj, "password_changed")
        return super().log_change(request, obj, message)


def _tier_help() -> str:
    return "; ".join(
        f"{label}: {tier_defaults(value)['monthly_units']:,} units, {tier_defaults(value)['rpm']:,} rpm"
        for value, label in Tier.choices
    )


class ApproveForm(forms.Form):
    tier = forms.ChoiceField(choices=Tier.choices, initial=Tier.STANDARD)
    monthly_units = forms.IntegerField(
        min_value=0, required=False, help_text="Each capability's monthly units; blank: the tier's default."
    )
    rpm = forms.IntegerField(
        min_value=1,
        required=False,
        label="Requests per minute",
        help_text="Per API key, each capability; blank: the tier's default.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tier"].help_text = "Defaults by tier: " + _tier_help() + "."


class DeclineForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text="Sent to the applicant.")


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    """Applications come from the public "Join the alliance" page; operators approve (tier and initial quotas; the
    partner is created and the contact invited as its owner) or decline with a reason, each through the service,
    audited and emailed to the contact."""

    list_display = ["company_name", "sector", "country", "contact_email", "status", "created_at", "decide"]
    list_filter = ["status", "sector"]
    search_fields = ["company_name", "contact_email", "contact_name"]

    @admin.display(description="Decision")
    def decide(self, obj: Application) -> str:
        if obj.status != ApplicationStatus.PENDING:
            return obj.get_status_display()
        return format_html(
            '<a href="{}">Approve</a> · <a href="{}">Decline</a>',
            reverse("admin:partners_application_approve", args=[obj.pk]),
            reverse("admin:partners_application_decline", args=[obj.pk]),
        )

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/approve/", wrap(self.approve_view), name="partners_application_approve"),
            path("<int:pk>/decline/", wrap(self.decline_view), name="partners_application_decline"),
            *super().get_urls(),
        ]

    def _decision_page(
        self, request: HttpRequest, application: Application, form: forms.Form, verb: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "application": application,
            "form": form,
            "verb": verb,
            "title": f"{verb} {application.company_name}",
        }
        status = 400 if form.is_bound else 200
        return TemplateResponse(request, "admin/partners/application/decide.html", context, status=status)

    def _decided(self, request: HttpRequest, message: str) -> HttpResponse:
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:partners_application_changelist"))

    def _check_decider(self, request: HttpRequest) -> None:
        """Deciding who joins takes the right to add partners (superusers have it), not only a staff account."""
        if not request.user.has_perm("partners.add_partner"):
            raise PermissionDenied("Deciding applications needs the permission to add partners.")

    def approve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        self._check_decider(request)
        application = get_object_or_404(Application, pk=pk)
        form = ApproveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                partner, invitation = application_approve(
                    application=application,
                    operator=request.user,
                    link_for=lambda token: request.build_absolute_uri(reverse("portal:invitation", args=[token])),
                    **form.cleaned_data,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            except (OSError, smtplib.SMTPException):
                form.add_error(None, "The invitation email could not be sent, so nothing was approved. Try again.")
            else:
                return self._decided(
                    request, f"{partner.name} is a partner; {invitation.email} is invited as its owner."
                )
        return self._decision_page(request, application, form, "Approve")

    def decline_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        self._check_decider(request)
        application = get_object_or_404(Application, pk=pk)
        form = DeclineForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                application_decline(application=application, operator=request.user, reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error(None, exc.message)
            except (OSError, smtplib.SMTPException):
                form.add_error(None, "The email could not be sent, so nothing was declined. Try again.")
            else:
                return self._decided(request, f"The application of {application.company_name} is declined.")
        return self._decision_page(request, application, form, "Decline")
