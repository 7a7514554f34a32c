"""Every API route, walked from the URL configuration: another partner's resources answer 404 and never show
in lists. A new route that is not in the tables below fails this test until its isolation is declared."""

from __future__ import annotations

import json
import re

import pytest

from inference.models import TuningJob
from tests.routes import routes_under

pytestmark = pytest.mark.django_db

# route -> (kind of resource in the path, methods to try)
OWNED = {
    "api/v1/jobs/<str:job_id>": ("job", ["get"]),
    "api/v1/jobs/<str:job_id>/cancel": ("job", ["post"]),
    "api/v1/jobs/<str:job_id>/events": ("job", ["get"]),
    "api/v1/files/<str:file_id>": ("file", ["get", "delete"]),
    "api/v1/files/<str:file_id>/content": ("file", ["get"]),
    "api/v1/datasets/<str:dataset_id>": ("dataset", ["get", "delete"]),
    "api/v1/tuning-jobs/<str:job_id>": ("tuning_job", ["get"]),
    "api/v1/tuning-jobs/<str:job_id>/events": ("tuning_job", ["get"]),
    "api/v1/tuning-jobs/<str:job_id>/cancel": ("tuning_job", ["post"]),
    "v1/models/<path:model>": ("tuned_model", ["get"]),
    "v1/files/<str:file_id>": ("dataset", ["get", "delete"]),
    "v1/files/<str:file_id>/content": ("dataset", ["get"]),
    "api/v1/batches/<str:batch_id>": ("batch", ["get"]),
    "api/v1/batches/<str:batch_id>/cancel": ("batch", ["post"]),
    "v1/batches/<str:batch_id>": ("batch", ["get"]),
    "v1/batches/<str:batch_id>/cancel": ("batch", ["post"]),
    "v1/fine_tuning/jobs/<str:job_id>": ("tuning_job", ["get"]),
    "v1/fine_tuning/jobs/<str:job_id>/events": ("tuning_job", ["get"]),
    "v1/fine_tuning/jobs/<str:job_id>/checkpoints": ("tuning_job", ["get"]),
    "v1/fine_tuning/jobs/<str:job_id>/cancel": ("tuning_job", ["post"]),
}
# routes whose GET lists the caller's own resources
LISTS = {
    "api/v1/jobs",
    "api/v1/files",
    "api/v1/datasets",
    "api/v1/tuning-jobs",
    "api/v1/models",
    "api/v1/usage",
    "api/v1/capabilities",
    "api/v1/me",
    "v1/models",
    "v1/files",
    "v1/fine_tuning/jobs",
    "api/v1/batches",
    "v1/batches",
}
# routes that only create; a reference to another partner's resource in their body is tested where named
CREATE_ONLY = {
    "api/v1/tuning-jobs/estimate": "test_datasets_and_tuning_api::another partner's dataset",
    "v1/chat/completions": "test_openai_sdk / jobs API: models are checked per partner",
    "v1/completions": "same path as chat",
    "v1/embeddings": "same path as chat",
    "v1/images/generations": "same path as chat",
}

# public, key-less reads of what operators chose to publish
PUBLIC = {
    "api/v1/partners": "test_directory: only listed partners' public fields",
    "api/v1/partners/<slug:slug>": "test_directory: an unlisted partner answers 404",
}


def test_every_api_route_is_declared_here():
    undeclared = [
        route
        for route in routes_under(("api/v1/", "v1/"))
        if route not in OWNED and route not in LISTS and route not in CREATE_ONLY and route not in PUBLIC
    ]
    assert undeclared == [], f"declare the isolation of these routes in this test: {undeclared}"


def test_another_partners_resources_answer_404_on_every_route(api, theirs):
    for route, (kind, methods) in OWNED.items():
        path = "/" + re.sub(r"<[^>]+>", theirs[kind], route)
        for method in methods:
            response = getattr(api, method)(path)
            assert response.status_code == 404, (method, path, response.status_code)
            assert response.json()["error"]["type"] == "not_found_error"


def test_lists_never_show_another_partners_resources(api, theirs):
    identifiers = [value for value in theirs.values()] + ["lg-chem"]
    for route in LISTS:
        response = api.get("/" + route)
        assert response.status_code == 200, route
        body = json.dumps(response.json())
        leaked = [identifier for identifier in identifiers if identifier in body]
        assert leaked == [], (route, leaked)


def test_trying_another_partners_resources_changes_none_of_them(api, theirs, other_partner):
    test_another_partners_resources_answer_404_on_every_route(api, theirs)
    assert TuningJob.objects.get(pk=theirs["tuning_job"]).status == "queued"
    assert other_partner.datasets.filter(public_id=theirs["dataset"]).exists()
    assert other_partner.files.filter(public_id=theirs["file"]).exists()
    assert other_partner.jobs.get(pk=theirs["job"]).status == "queued"
    assert other_partner.batches.get().status == "in_progress"
