"""The alliance operators' admin. Every change made here is audited like a change made anywhere else; the audit
log itself can only be read; a key's owner, scopes and revocation are not edited here (revoke with the action)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest

from partners.models import ApiKey, AuditEvent, Invitation, Membership, Partner, Quota, UsageRecord
from partners.services import actor_for, api_key_revoke, audit_record, quota_set


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
    list_display = ["name", "slug", "sector", "tier", "founding_member", "is_active"]
    list_filter = ["sector", "tier", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


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
