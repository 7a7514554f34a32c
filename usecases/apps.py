from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _advance_recipe_runs(sender: Any, *, job_ids: list[str], **kwargs: Any) -> None:
    """A finished job may be a step of a showcase recipe's run: the next step is submitted (usecases.runs)."""
    from usecases.runs import recipe_runs_advance_for_jobs

    recipe_runs_advance_for_jobs(job_ids)


class UsecasesConfig(AppConfig):
    name = "usecases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from inference.signals import jobs_finished

        jobs_finished.connect(_advance_recipe_runs, dispatch_uid="usecases.advance_recipe_runs")
