"""Showcase recipes: the template language, validation on save, and runs advanced step by step by the services
(each step a real job: submitted, charged, then finished through the same services a worker calls)."""

from __future__ import annotations

import copy
import json
import os

import pytest
from django.contrib.auth import get_user_model
from django.utils.text import slugify

from alliance.errors import Conflict, Forbidden, InvalidInput
from inference.models import Dataset, Job, JobStatus, TunedModel, TuningJob
from inference.services import job_claim, job_fail, job_succeed
from partners.models import Quota
from partners.services import quota_for
from tests.factories import make_key, make_partner
from usecases import recipes
from usecases.models import RecipeRun, UseCase, UseCaseStatus
from usecases.recipes import RecipeInvalid, inputs_check, python_script, recipe_check, render
from usecases.runs import recipe_run_advance, recipe_run_record, recipe_run_start, showcase_recordings_start
from usecases.seed import SHOWCASES
from usecases.services import recipe_validate, usecase_create, usecase_update

COUNSELLING = next(entry for entry in SHOWCASES if entry["partner"] == "lg-uplus")["recipe"]


def _any_model(capability: str, model: str | None) -> None:
    return None


# ---------------------------------------------------------------- the template language


def test_a_whole_reference_keeps_its_value_and_an_embedded_one_is_written_into_the_text():
    outputs = {"reply": {"message": {"content": "Sorry!"}}, "kw": {"keywords": [{"keyword": "bill"}]}}
    template = {
        "messages": "{{steps.kw.output.keywords}}",
        "text": "Customer: {{ input.message }} / Agent: {{steps.reply.output.message.content}}",
        "first": "{{steps.kw.output.keywords.0.keyword}}",
        "n": 5,
    }
    assert render(template, inputs={"message": "Hi"}, outputs=outputs) == {
        "messages": [{"keyword": "bill"}],
        "text": "Customer: Hi / Agent: Sorry!",
        "first": "bill",
        "n": 5,
    }


def test_a_path_the_output_lacks_is_named_when_the_step_runs():
    with pytest.raises(RecipeInvalid) as caught:
        render("{{steps.reply.output.nothing}}", inputs={}, outputs={"reply": {"message": {}}})
    assert caught.value.code == "recipe_reference_missing" and "nothing" in caught.value.message


def test_the_seeded_recipes_are_valid():
    for entry in SHOWCASES:
        assert recipe_check(entry["recipe"], model_check=_any_model)["steps"], entry["title"]
    assert [step["capability"] for step in COUNSELLING["steps"]] == [
        "dialogue",
        "text_classification",
        "summarization",
        "keyword_extraction",
    ]


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        (
            lambda r: r["steps"][2]["input"].update(text="{{steps.keywords.output.keywords}}"),
            "steps[2].input.text",
            "earlier step",
        ),
        (
            lambda r: r["steps"][0]["input"]["messages"][1].update(content="{{input.mood}}"),
            "messages[1].content",
            "no declared input",
        ),
        (lambda r: r["steps"][1].update(capability="mind_reading"), "steps[1].capability", "Unknown capability"),
        (lambda r: r["steps"][1]["input"].update(label="x"), "steps[1].input", "no input field 'label'"),
        (lambda r: r["steps"][3].update(params={"top_k": 3}), "steps[3].params", "top_k"),
        (lambda r: r["steps"][3].update(id="reply"), "steps[3].id", "used twice"),
        (lambda r: r["steps"][1]["input"].update(text="{{ import os }}"), "steps[1].input.text", "not a reference"),
        (lambda r: r["steps"][1]["input"].update(labels=["only"]), "steps[1].input", "example inputs"),
        (lambda r: r.update(code="print(1)"), "recipe", "Unknown field 'code'"),
        (lambda r: r.update(steps=[]), "recipe.steps", "1 to 8"),
    ],
)
def test_a_broken_recipe_is_refused_naming_the_place(change, param, words):
    recipe = copy.deepcopy(COUNSELLING)
    change(recipe)
    with pytest.raises(RecipeInvalid) as caught:
        recipe_check(recipe, model_check=_any_model)
    assert param in caught.value.param and words in caught.value.message
    assert isinstance(caught.value, InvalidInput)


def test_the_visitors_inputs_are_checked():
    checked = recipe_check(COUNSELLING, model_check=_any_model)
    assert inputs_check(checked, {"message": "  My bill is wrong.  "}) == {"message": "My bill is wrong."}
    for given, param in (({}, "inputs.message"), ({"message": "x", "extra": "y"}, "inputs.extra"), ([], "inputs")):
        with pytest.raises(RecipeInvalid) as caught:
            inputs_check(checked, given)
        assert caught.value.param == param


def test_view_code_is_a_python_script_that_runs_the_same_steps():
    script = python_script(recipe_check(COUNSELLING, model_check=_any_model), base_url="https://alliance.example/")
    compile(script, "recipe.py", "exec")  # valid Python
    assert 'API = "https://alliance.example/api/v1/jobs"' in script
    assert script.index('run("dialogue"') < script.index('run("summarization"') < script.index('run("keyword')
    assert "{outputs['reply']['message']['content']}" in script and "inputs['message']" in script
    assert 'params={"max_new_tokens": 80, "temperature": 0.0}' in script
    flags = {**COUNSELLING, "steps": [{**COUNSELLING["steps"][1], "params": {"multi_label": True}}]}
    flagged = python_script(recipe_check(flags, model_check=_any_model), base_url="http://x")
    compile(flagged, "recipe.py", "exec")
    assert 'params={"multi_label": True}' in flagged


# ---------------------------------------------------------------- validation with the partner's models


@pytest.fixture
def uplus(db):
    return make_partner("LG Uplus", sector="telecom")


def _user(name: str = "devon"):
    return get_user_model().objects.create_user(username=name, password="x-long-password-1")


def test_models_are_checked_for_the_partner(uplus):
    recipe = copy.deepcopy(COUNSELLING)
    recipe["steps"][1]["model"] = "alliance-captioner"  # serves image captioning, not classification
    with pytest.raises(RecipeInvalid) as caught:
        recipe_validate(partner=uplus, recipe=recipe)
    assert caught.value.param == "recipe.steps[1].model"
    other = make_partner("Woori Bank", sector="finance")
    tuning = TuningJob.objects.create(
        partner=other, task="classification", base_model="all-MiniLM-L6-v2", method="lora", status="succeeded"
    )
    TunedModel.objects.create(
        partner=other,
        name="ft:all-MiniLM-L6-v2:woori:abc",
        tuning_job=tuning,
        base_model="all-MiniLM-L6-v2",
        task="classification",
        adapter_path="x",
    )
    recipe["steps"][1]["model"] = "ft:all-MiniLM-L6-v2:woori:abc"
    with pytest.raises(RecipeInvalid) as caught:
        recipe_validate(partner=uplus, recipe=recipe)
    assert "No model" in caught.value.message  # another partner's tuned model does not exist for this one
    assert recipe_validate(partner=other, recipe=recipe)["steps"][1]["model"] == "ft:all-MiniLM-L6-v2:woori:abc"


def test_a_draft_keeps_only_a_valid_recipe_and_a_published_one_is_not_edited(uplus):
    user = _user()
    usecase = usecase_create(partner=uplus, user=user, title="Chatbot", sector="telecom", capabilities=[], summary="s")
    broken = copy.deepcopy(COUNSELLING)
    broken["steps"][0]["capability"] = "telepathy"
    with pytest.raises(RecipeInvalid):
        usecase_update(usecase=usecase, user=user, recipe=broken)
    usecase.refresh_from_db()
    assert usecase.recipe == {}
    usecase_update(usecase=usecase, user=user, recipe=COUNSELLING)
    usecase.refresh_from_db()
    assert len(usecase.recipe["steps"]) == 4


# ---------------------------------------------------------------- runs


@pytest.fixture
def showcase(uplus):
    return UseCase.objects.create(
        partner=uplus,
        title="Counselling",
        slug="counselling",
        sector="telecom",
        summary="s",
        status=UseCaseStatus.PUBLISHED,
        recipe=recipe_check(COUNSELLING, model_check=_any_model),
    )


def _finish(job: Job, output: dict) -> None:
    claimed = job_claim(str(job.pk))
    assert claimed is not None
    assert job_succeed(job=claimed[0], token=claimed[1], output=output)


OUTPUTS = {
    "dialogue": {"message": {"role": "assistant", "content": "I am sorry; I will refund the double charge today."}},
    "text_classification": {"label": "frustrated", "scores": {"frustrated": 0.8, "worried": 0.1}},
    "summarization": {"summary": "Customer was double charged; agent refunds today."},
    "keyword_extraction": {"keywords": [{"keyword": "double charge", "score": 0.7}]},
}


def test_each_step_is_submitted_when_the_one_before_finishes(showcase, uplus, django_capture_on_commit_callbacks):
    api_key, _ = make_key(uplus)
    message = "Nobody fixed the double charge on my bill."
    run = recipe_run_start(usecase=showcase, api_key=api_key, inputs={"message": message})
    for position, step in enumerate(showcase.recipe["steps"]):
        steps = list(run.steps.select_related("job"))
        assert len(steps) == position + 1 and steps[-1].step_id == step["id"]
        job = steps[-1].job
        assert job.capability == step["capability"] and job.partner_id == uplus.pk and job.units > 0
        if step["id"] == "note":  # built from the visitor's input and the reply's output
            assert job.input["text"] == f"Customer: {message}\nAgent: {OUTPUTS['dialogue']['message']['content']}"
        with django_capture_on_commit_callbacks(execute=True):  # the jobs_finished signal, as in the worker
            _finish(job, OUTPUTS[step["capability"]])
        run.refresh_from_db()
    assert run.status == "succeeded" and run.finished_at is not None
    assert Job.objects.filter(recipe_step__run=run, status=JobStatus.SUCCEEDED).count() == 4
    assert recipe_run_advance(run_id=run.pk) is None  # a finished run does not move again


def test_a_failed_step_ends_the_run_and_no_later_step_runs(showcase, uplus, django_capture_on_commit_callbacks):
    api_key, _ = make_key(uplus)
    run = recipe_run_start(usecase=showcase, api_key=api_key, inputs={"message": "Help."})
    job = run.steps.get().job
    claimed = job_claim(str(job.pk))
    with django_capture_on_commit_callbacks(execute=True):
        job_fail(job=claimed[0], token=claimed[1], code="model_error", message="The model failed.")
    run.refresh_from_db()
    assert run.status == "failed" and run.error["step"] == "reply" and run.error["code"] == "model_error"
    assert run.steps.count() == 1


def test_a_step_over_the_quota_fails_the_run_with_the_quota_error(showcase, uplus, django_capture_on_commit_callbacks):
    api_key, _ = make_key(uplus)
    run = recipe_run_start(usecase=showcase, api_key=api_key, inputs={"message": "Help."})
    quota_for(partner=uplus, capability="text_classification")
    Quota.objects.filter(partner=uplus, capability="text_classification").update(monthly_units=0)
    with django_capture_on_commit_callbacks(execute=True):
        _finish(run.steps.get().job, OUTPUTS["dialogue"])
    run.refresh_from_db()
    assert run.status == "failed" and run.error["step"] == "emotion" and run.steps.count() == 1
    assert "quota" in run.error["code"]


def test_a_refused_first_step_leaves_no_run(showcase, uplus):
    api_key, _ = make_key(uplus, scopes=["keyword_extraction"])  # not dialogue
    with pytest.raises(Forbidden):
        recipe_run_start(usecase=showcase, api_key=api_key, inputs={"message": "Help."})
    assert not RecipeRun.objects.exists() and not Job.objects.exists()
    showcase.recipe = {}
    with pytest.raises(Conflict):
        recipe_run_start(usecase=showcase, api_key=make_key(uplus)[0], inputs={"message": "Help."})


def test_only_the_showcases_partner_records_a_succeeded_run(showcase, uplus, django_capture_on_commit_callbacks):
    other = make_partner("Google")
    foreign = recipe_run_start(usecase=showcase, api_key=make_key(other)[0], inputs={"message": "Hi."})
    own = recipe_run_start(usecase=showcase, api_key=make_key(uplus)[0], inputs={"message": "Hi."})
    with pytest.raises(Conflict):
        recipe_run_record(run=own, user=None)  # still running
    RecipeRun.objects.filter(pk__in=[foreign.pk, own.pk]).update(status="succeeded")
    foreign.refresh_from_db()
    own.refresh_from_db()
    with pytest.raises(Forbidden):
        recipe_run_record(run=foreign, user=None)
    assert recipe_run_record(run=own, user=None).recorded


def test_recordings_start_once_per_showcase(showcase, uplus):
    runs = showcase_recordings_start(usecase=showcase, recordings=[{}, {"message": "Thank you, it works now."}])
    assert [run.inputs["message"] for run in runs] == [
        COUNSELLING["inputs"][0]["example"],
        "Thank you, it works now.",
    ]
    assert all(run.record_when_done and run.api_key.name == "showcase-recorder" for run in runs)
    assert showcase_recordings_start(usecase=showcase, recordings=[{}]) == []


def test_the_seed_carries_the_recipes(db):
    from django.core.management import call_command

    call_command("seed_alliance", stdout=open(os.devnull, "w"))  # noqa: SIM115
    for entry in SHOWCASES:
        assert UseCase.objects.get(slug=slugify(entry["title"])).recipe["steps"], entry["title"]


def test_recipe_json_stays_small():
    assert all(len(json.dumps(entry["recipe"])) < recipes.MAX_RECIPE_BYTES for entry in SHOWCASES)


def test_a_key_revoked_mid_run_stops_the_next_step(showcase, uplus, django_capture_on_commit_callbacks):
    from partners.services import api_key_revoke

    api_key, _ = make_key(uplus)
    run = recipe_run_start(usecase=showcase, api_key=api_key, inputs={"message": "Help."})
    api_key_revoke(api_key=api_key, actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        _finish(run.steps.get().job, OUTPUTS["dialogue"])
    run.refresh_from_db()
    assert run.status == "failed" and run.error["code"] == "key_revoked" and run.steps.count() == 1


def test_record_showcases_queues_each_seeded_showcases_recordings_once(db):
    from django.core.management import call_command

    call_command("seed_alliance", stdout=open(os.devnull, "w"))  # noqa: SIM115
    call_command("record_showcases", stdout=open(os.devnull, "w"))  # noqa: SIM115
    runs = RecipeRun.objects.select_related("usecase", "api_key")
    # A showcase of a tuned model (the AI banker) starts its tuning job first; its recordings wait for the model.
    by_showcase = {entry["partner"]: 0 if entry.get("tuning") else len(entry["recordings"]) for entry in SHOWCASES}
    assert {p: runs.filter(usecase__partner__slug=p).count() for p in by_showcase} == by_showcase
    assert all(run.record_when_done and run.partner_id == run.usecase.partner_id for run in runs)
    assert {job.capability for job in Job.objects.all()} == {"image_generation", "dialogue", "question_answering"}
    [tuning] = TuningJob.objects.select_related("dataset", "api_key", "partner")
    assert (tuning.partner.slug, tuning.dataset.filename, tuning.api_key.name) == (
        "woori-bank",
        "banker_intents.jsonl",
        "showcase-recorder",
    )
    assert tuning.dataset.stats["rows"] == 56 and tuning.hyperparameters["validation_fraction"] == 0.25
    call_command("record_showcases", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert RecipeRun.objects.count() == sum(by_showcase.values()) and TuningJob.objects.count() == 1
    TuningJob.objects.update(status="failed")  # e.g. its worker was lost: tried again, on the dataset uploaded once
    call_command("record_showcases", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert TuningJob.objects.filter(status="queued", dataset=tuning.dataset).count() == 1
    assert Dataset.objects.count() == 1
