from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _advance_recipe_runs(sender: Any, *, job_ids: list[str], **kwargs: Any) -> None:
    """A finished job may be a step of a showcase recipe's run: the next step is submitted (usecases.runs)."""
    from usecases.runs import recipe_runs_advance_for_jobs

    recipe_runs_advance_for_jobs(job_ids)


def _record_tuned_showcases(sender: Any, *, job_id: str, **kwargs: Any) -> None:
    """A tuning job the platform started for a showcase succeeded: the showcase records its results with the model."""
    from usecases.showcase_tuning import tuned_showcases_record

    tuned_showcases_record(job_id=job_id)


class UsecasesConfig(AppConfig):
    name = "usecases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from inference.signals import jobs_finished, tuning_job_succeeded

        jobs_finished.connect(_advance_recipe_runs, dispatch_uid="usecases.advance_recipe_runs")
        tuning_job_succeeded.connect(_record_tuned_showcases, dispatch_uid="usecases.record_tuned_showcases")
