"""The operator's view: one admin page (staff only) with the last day per partner and capability, the queues, the
live workers and the jobs that need attention, each stuck one with a requeue button (audited)."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from alliance.errors import DomainError
from monitoring import heartbeats, selectors, services
from monitoring.models import OperatorOverview
from partners.services import actor_for


@admin.register(OperatorOverview)
class OperatorOverviewAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path(
                "requeue/<uuid:job_id>/",
                self.admin_site.admin_view(require_POST(self.requeue_view)),
                name="monitoring_operatoroverview_requeue",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        try:
            workers = heartbeats.live_workers()
            workers_error = None
        except Exception as exc:  # noqa: BLE001 - the page still shows the database's side
            workers, workers_error = [], f"{type(exc).__name__}: {exc}"
        context = {
            **self.admin_site.each_context(request),
            "title": "Operator's overview",
            "opts": self.model._meta,
            "usage": selectors.usage_last_day(),
            "queues": selectors.queue_stats(),
            "workers": workers,
            "workers_error": workers_error,
            "families": heartbeats.live_by_family(workers),
            "attention": [(job, services.requeueable(job)) for job in selectors.jobs_needing_attention()],
            "worker_failures": selectors.WORKER_FAILURES,
        }
        return TemplateResponse(request, "admin/monitoring/overview.html", context)

    def requeue_view(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        try:
            job = services.job_requeue(job_id=job_id, actor=actor_for(user=request.user))
        except DomainError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Job {job.pk} requeued on {job.queue}.")
        return HttpResponseRedirect(reverse("admin:monitoring_operatoroverview_changelist"))
