"""A recipe run as the showcase page shows it: each step's result reduced to what a person reads (a reply, a label
with its scores, a summary, keywords, an answer, an image), for the page's first render and for its polling alike."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import get_language

from portal.script_texts import STEP_STATUSES
from usecases import recipes
from usecases.models import RecipeRun, UseCase
from usecases.selectors import recipe_run_representation, tuned_model_figures


def step_display(capability: str, output: dict[str, Any] | None) -> dict[str, Any] | None:
    if not output:
        return None
    if capability == "dialogue":
        return {"text": (output.get("message") or {}).get("content", "")}
    if capability == "text_classification":
        scores = sorted((output.get("scores") or {}).items(), key=lambda item: -item[1])[:4]
        return {"label": output.get("label"), "scores": [{"label": k, "score": round(v, 3)} for k, v in scores]}
    if capability == "summarization":
        return {"text": output.get("summary", "")}
    if capability == "keyword_extraction":
        return {"tags": [item.get("keyword") for item in output.get("keywords", [])]}
    if capability == "question_answering":
        return {"text": output.get("answer", "")}
    if capability == "text_generation":
        return {"text": output.get("text", "")}
    if capability == "image_captioning":
        return {"text": output.get("caption", "")}
    if capability == "image_generation":
        image = output.get("image") or {}
        return {"image": image.get("url"), "width": image.get("width"), "height": image.get("height")}
    return {"text": str(output)}


def _korean() -> bool:
    return (get_language() or "en").lower().startswith("ko")


def run_json(request: HttpRequest, run: RecipeRun, *, own: bool) -> dict[str, Any]:
    slug = run.usecase.slug
    representation = recipe_run_representation(
        run,
        image_url=lambda image_id: reverse("usecase-image", args=[slug, image_id]),
        file_url=(lambda file_id: reverse("portal:file", args=[file_id])) if own else None,
    )
    korean = _korean()
    tuned = tuned_model_figures(partner_id=run.partner_id, names=[step["model"] for step in representation["steps"]])
    for step, recipe_step in zip(representation["steps"], run.recipe["steps"], strict=True):
        step["display"] = step_display(step["capability"], step["output"])
        step["title"] = recipes.step_title(recipe_step, korean=korean)
        step["status_text"] = str(STEP_STATUSES.get(step["status"], step["status"]))
        step["tuned"] = tuned.get(step["model"])
    labels = {item["name"]: item["label"] for item in recipes.localized(run.recipe, get_language())["inputs"]}
    representation["input_rows"] = [
        {"label": labels.get(name, name), "value": value} for name, value in run.inputs.items()
    ]
    representation["url"] = reverse("usecase-run", args=[slug, run.pk])
    representation["can_record"] = own and not run.recorded and run.partner_id == run.usecase.partner_id
    return representation


def card_results(usecase: UseCase, limit: int = 3) -> list[dict[str, str]]:
    """A few text results of the showcase's first recorded run, for its gallery card: (step title, what it said)."""
    runs = list(getattr(usecase, "recorded_runs", None) or [])
    if not runs:
        return []
    found = []
    jobs = {step.step_id: step.job for step in runs[0].steps.all()}
    for step in runs[0].recipe["steps"]:
        job = jobs.get(step["id"])
        display = step_display(step["capability"], job.output if job is not None else None) or {}
        text = display.get("label") or display.get("text") or ", ".join(display.get("tags") or [])
        if text:
            title = recipes.step_title(step, korean=_korean())
            found.append({"title": title, "text": text if len(text) <= 140 else text[:137] + "..."})
    return found[:limit]
