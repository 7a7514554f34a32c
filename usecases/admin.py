from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from partners.admin import AuditedAdmin
from usecases.forms import RejectForm
from usecases.models import UseCase, UseCaseImage, UseCaseStatus
from usecases.services import UseCaseTransitionError, usecase_approve, usecase_reject, usecase_unpublish


class UseCaseImageInline(admin.TabularInline):
    """Images come from partners through the portal, where they are checked and re-encoded; operators may caption,
    reorder or remove them here, not upload new ones."""

    model = UseCaseImage
    extra = 0
    readonly_fields = ["image"]

    def has_add_permission(self, request: HttpRequest, obj: UseCase | None = None) -> bool:
        return False


@admin.register(UseCase)
class UseCaseAdmin(AuditedAdmin):
    list_display = ["title", "partner", "sector", "status", "featured", "submitted_at", "reviewed_at"]
    list_filter = ["status", "sector", "featured"]
    search_fields = ["title", "title_ko", "summary", "summary_ko", "partner__name"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = [
        "recipe",  # reviewed here as the partner wrote it (validated when saved in the portal)
        "status",
        "rejection_reason",
        "submitted_by",
        "submitted_at",
        "reviewed_by",
        "reviewed_at",
        "published_at",
        "created_at",
        "updated_at",
    ]
    inlines = [UseCaseImageInline]
    actions = ["approve", "reject", "unpublish"]

    def _each(self, request: HttpRequest, queryset: QuerySet[UseCase], step, verb: str, **kwargs) -> None:
        done, refused = 0, []
        for usecase in queryset:
            try:
                step(usecase=usecase, reviewer=request.user, **kwargs)
                done += 1
            except UseCaseTransitionError as exc:
                refused.append(f"{usecase.title}: {exc}")
        if done:
            self.message_user(request, f"{done} showcase(s) {verb}.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description="Approve and publish selected showcases (in review)")
    def approve(self, request: HttpRequest, queryset: QuerySet[UseCase]) -> None:
        self._each(request, queryset, usecase_approve, "published")

    @admin.action(description="Reject selected showcases with a reason")
    def reject(self, request: HttpRequest, queryset: QuerySet[UseCase]) -> TemplateResponse | None:
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._each(request, queryset, usecase_reject, "rejected", reason=form.cleaned_data["reason"])
            return None
        return TemplateResponse(
            request,
            "admin/usecases/reject.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reject showcases",
                "form": form,
                "usecases": queryset,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Unpublish selected showcases (back to draft)")
    def unpublish(self, request: HttpRequest, queryset: QuerySet[UseCase]) -> None:
        self._each(request, queryset, usecase_unpublish, "unpublished")

    def get_queryset(self, request: HttpRequest) -> QuerySet[UseCase]:
        return super().get_queryset(request).select_related("partner")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        waiting = UseCase.objects.filter(status=UseCaseStatus.IN_REVIEW).count()
        if waiting and request.method == "GET" and "status__exact" not in request.GET:
            self.message_user(request, f"{waiting} showcase(s) wait for review: filter by status 'In review'.")
        return super().changelist_view(request, extra_context)
