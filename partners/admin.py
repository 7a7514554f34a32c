from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from partners.models import ApiKey, AuditEvent, Membership, Partner, Quota, UsageRecord
from partners.services import actor_for, quota_set


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "sector", "tier", "founding_member", "is_active"]
    list_filter = ["sector", "tier", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "partner", "role"]
    list_filter = ["role"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["public_id", "partner", "name", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = ["public_id", "created_at", "last_used_at"]
    list_filter = ["partner"]


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
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


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["partner", "capability", "kind", "units", "created_at"]
    list_filter = ["kind", "capability"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "partner", "actor", "action", "target"]
    list_filter = ["action"]
    readonly_fields = ["partner", "actor", "action", "target", "data", "created_at"]
