from django.contrib import admin

from inference.models import Job
from partners.admin import AuditedAdmin


@admin.register(Job)
class JobAdmin(AuditedAdmin):
    list_display = ["id", "partner", "capability", "status", "units", "created_at", "finished_at"]
    list_filter = ["status", "capability"]
    readonly_fields = [field.name for field in Job._meta.fields]
