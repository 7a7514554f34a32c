from django.contrib import admin

from usecases.models import UseCase


@admin.register(UseCase)
class UseCaseAdmin(admin.ModelAdmin):
    list_display = ["title", "partner", "sector", "status", "featured"]
    list_filter = ["status", "sector", "featured"]
    prepopulated_fields = {"slug": ["title"]}
