"""Scopes on every API route: each operation declares the scope it needs (walked from the URL configuration), a key
without it is refused with 403 `insufficient_scope`, a key with it is let through; jobs are seen only through the
key's capabilities; the webhook secret goes only to `admin` keys and portal admins, and rotating it re-signs."""

from __future__ import annotations

import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from PIL import Image
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import ANY_KEY, HANDLED_METHODS, SUBMITS_JOB, PartnerApiView, scopes_of
from api.partners import PublicApiView
from inference.images import store_file
from inference.models import FilePurpose, Job
from inference.services.webhook_delivery import webhook_deliver
from inference.webhook_security import signature_header, signing_secret, verify_signature, webhook_secret_rotate
from partners.models import AuditEvent, Partner
from partners.scopes import ALL_SCOPES, CAPABILITY_SCOPES, RESOURCE_SCOPES
from partners.services import api_key_authenticate
from tests.factories import client_for, keyword_job, make_key
from tests.routes import routes_under, views_under
from tests.web.conftest import make_member, signed_in

pytestmark = pytest.mark.django_db

API_PREFIXES = ("api/v1/", "v1/")
# The public directory: read-only, no key (api/partners.py); every other route acts for a key's partner.
PUBLIC_ROUTES = {"api/v1/partners", "api/v1/partners/<slug:slug>"}
VIEWS = [(route, view) for route, view in views_under(API_PREFIXES) if route not in PUBLIC_ROUTES]
OPERATIONS = [
    (route, method.upper(), view.required_scopes[method.upper()])
    for route, view in VIEWS
    for method in HANDLED_METHODS
    if getattr(view, method, None) is not None
]
SCOPED = [(route, method, rule) for route, method, rule in OPERATIONS if rule not in (ANY_KEY, SUBMITS_JOB)]


def _png(name: str = "mine.png") -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG")
    upload = io.BytesIO(buffer.getvalue())
    upload.name = name
    return upload


def _dataset_file() -> io.BytesIO:
    rows = "\n".join(json.dumps({"text": f"row {i}", "label": "ab"[i % 2]}) for i in range(12))
    data = io.BytesIO(rows.encode())
    data.name = "mine.jsonl"
    return data


@pytest.fixture
def ours(partner) -> dict[str, str]:
    """One of each of the partner's resources, made through the API with a key that may do everything."""
    api = client_for(make_key(partner)[1])
    job = api.post("/api/v1/jobs", keyword_job(), format="json").json()
    stored = api.post("/api/v1/files", {"file": _png()}, format="multipart").json()
    dataset = api.post("/api/v1/datasets", {"file": _dataset_file(), "task": "classification"}, format="multipart")
    dataset_id = dataset.json()["id"]
    tuning = api.post("/api/v1/tuning-jobs", {"dataset": dataset_id, "task": "classification"}, format="json").json()
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "all-MiniLM-L6-v2", "input": "x"},
    }
    upload = io.BytesIO(json.dumps(line).encode())
    upload.name = "batch.jsonl"
    batch_file = api.post("/v1/files", {"file": upload, "purpose": "batch"}, format="multipart").json()
    batch = api.post(
        "/api/v1/batches",
        {"capability": "keyword_extraction", "requests": [{"custom_id": "a", "input": keyword_job()["input"]}]},
        format="json",
    ).json()
    return {
        "job": job["id"],
        "file": stored["id"],
        "dataset": dataset_id,
        "tuning_job": tuning["id"],
        "batch_file": batch_file["id"],
        "batch": batch["id"],
    }


def _path(route: str, ids: dict[str, str], scope: str | None = None) -> str:
    """The route with the partner's own resources in its parameters (for /v1/files, the kind of file `scope`
    reaches: a batch file with files:*, a tuning dataset with datasets:*)."""
    if route.startswith("v1/files/"):
        kind = "batch_file" if scope in ("files:read", "files:write") or route.endswith("/content") else "dataset"
    elif "tuning-jobs/" in route or "fine_tuning/jobs/" in route:
        kind = "tuning_job"
    else:
        parameter = re.search(r"<\w+:(\w+)>", route)
        kind = {"job_id": "job", "file_id": "file", "dataset_id": "dataset", "batch_id": "batch"}.get(
            parameter.group(1) if parameter else ""
        )
    value = ids.get(kind, "all-MiniLM-L6-v2")
    return "/" + re.sub(r"<[^>]+>", value, route)


def _call(client, method: str, path: str):
    return getattr(client, method.lower())(path, {}, format="json")


def test_every_api_route_is_a_partner_view_that_declares_a_scope_for_each_method():
    assert {route for route, _ in VIEWS} | PUBLIC_ROUTES == set(routes_under(API_PREFIXES))
    for route, view in views_under(API_PREFIXES):
        if route in PUBLIC_ROUTES:
            assert issubclass(view, PublicApiView) and set(HANDLED_METHODS) & set(vars(view)) == {"get"}, route
    assert len(OPERATIONS) >= 30
    for route, view in VIEWS:
        assert issubclass(view, PartnerApiView), route
        for method in HANDLED_METHODS:
            if getattr(view, method, None) is not None:
                rule = view.required_scopes.get(method.upper())
                assert rule is not None, (route, method)
                assert all(scope in (*ALL_SCOPES, ANY_KEY, SUBMITS_JOB) for scope in scopes_of(rule)), (route, rule)


def test_the_declared_scopes_are_the_documented_ones():
    declared = {route: {method: rule for r, method, rule in OPERATIONS if r == route} for route, _ in VIEWS}
    assert declared["api/v1/jobs"] == {"GET": "jobs:read", "POST": SUBMITS_JOB}
    assert declared["api/v1/jobs/<str:job_id>/cancel"] == {"POST": "jobs:write"}
    assert declared["api/v1/files"] == {"GET": "files:read", "POST": "files:write"}
    assert declared["api/v1/files/<str:file_id>/content"] == {"GET": ("files:read", "jobs:read")}
    assert declared["v1/files"] == {"GET": ("datasets:read", "files:read"), "POST": ("datasets:write", "files:write")}
    assert declared["v1/files/<str:file_id>/content"] == {"GET": "files:read"}
    assert declared["v1/batches"] == declared["api/v1/batches"] == {"GET": "jobs:read", "POST": SUBMITS_JOB}
    assert declared["v1/batches/<str:batch_id>/cancel"] == {"POST": "jobs:write"}
    assert declared["api/v1/tuning-jobs/estimate"] == {"POST": "tuning"}
    assert declared["v1/fine_tuning/jobs"] == {"GET": "tuning", "POST": "tuning"}
    assert declared["api/v1/usage"] == {"GET": "usage:read"}
    assert declared["v1/chat/completions"] == {"POST": "dialogue"}
    assert declared["v1/images/generations"] == {"POST": "image_generation"}
    assert declared["api/v1/me"] == {"GET": ANY_KEY}


def test_a_view_that_forgets_to_declare_a_scope_fails_when_defined():
    with pytest.raises(ImproperlyConfigured, match="declares no scope for it"):

        class Forgetful(PartnerApiView):
            def get(self, request: Request) -> Response:
                return Response({})

    with pytest.raises(ImproperlyConfigured, match="is not valid"):

        class Misspelt(PartnerApiView):
            required_scopes = {"GET": "job:read"}

            def get(self, request: Request) -> Response:
                return Response({})


@pytest.mark.parametrize(("route", "method", "rule"), SCOPED, ids=[f"{m} {r}" for r, m, _ in SCOPED])
def test_an_operation_refuses_a_key_without_its_scope_and_accepts_one_with_it(partner, ours, route, method, rule):
    needed = scopes_of(rule)
    path = _path(route, ours)
    _, without = make_key(partner, scopes=[scope for scope in ALL_SCOPES if scope not in needed])
    refused = _call(client_for(without), method, path)
    assert refused.status_code == 403, (method, path, refused.status_code)
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "insufficient_scope")
    assert error["details"] == [{"required_scopes": list(needed)}]
    assert all(f"`{scope}`" in error["message"] for scope in needed)

    for scope in needed:  # each scope of an any-of rule suffices; jobs are seen through the key's capabilities
        _, holder = make_key(partner, scopes=[scope, *CAPABILITY_SCOPES])
        accepted = _call(client_for(holder), method, _path(route, ours, scope))
        assert accepted.status_code not in (401, 403), (method, path, scope, accepted.status_code)
        if method == "GET" and not (scope == "jobs:read" and route.endswith("/content")):
            assert accepted.status_code == 200, (method, path, scope, accepted.status_code, accepted.content[:200])


def test_operations_open_to_any_key_accept_a_key_with_an_unrelated_scope(partner, ours):
    _, raw = make_key(partner, scopes=["usage:read"])
    for route, method, rule in OPERATIONS:
        if rule == ANY_KEY:
            response = _call(client_for(raw), method, _path(route, ours))
            assert response.status_code == 200, (method, route, response.status_code)


def test_submitting_a_job_needs_the_capabilitys_scope_and_nothing_else(partner):
    _, other_capability = make_key(partner, scopes=["summarization", *RESOURCE_SCOPES])
    refused = client_for(other_capability).post("/api/v1/jobs", keyword_job(), format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert refused.json()["error"]["details"] == [{"required_scopes": ["keyword_extraction"]}]
    _, only_capability = make_key(partner, scopes=["keyword_extraction"])
    accepted = client_for(only_capability).post("/api/v1/jobs", keyword_job(), format="json")
    assert accepted.status_code == 202


def test_jobs_are_listed_and_reached_only_through_the_keys_capabilities(partner):
    everything = client_for(make_key(partner)[1])
    keyword = everything.post("/api/v1/jobs", keyword_job(), format="json").json()
    summary = everything.post(
        "/api/v1/jobs", {"capability": "summarization", "input": {"text": "A long text. " * 20}}, format="json"
    ).json()
    assert {job["id"] for job in everything.get("/api/v1/jobs").json()["data"]} == {keyword["id"], summary["id"]}

    keyword_only = client_for(make_key(partner, scopes=["keyword_extraction", "jobs:read", "jobs:write"])[1])
    assert [job["id"] for job in keyword_only.get("/api/v1/jobs").json()["data"]] == [keyword["id"]]
    assert keyword_only.get("/api/v1/jobs?capability=summarization").json()["data"] == []
    assert keyword_only.get(f"/api/v1/jobs/{keyword['id']}").status_code == 200
    assert keyword_only.get(f"/api/v1/jobs/{summary['id']}").status_code == 404
    assert keyword_only.post(f"/api/v1/jobs/{summary['id']}/cancel").status_code == 404
    assert Job.objects.get(pk=summary["id"]).status == "queued"

    no_capability = client_for(make_key(partner, scopes=["jobs:read"])[1])
    assert no_capability.get("/api/v1/jobs").json()["data"] == []


def test_jobs_read_downloads_only_images_generated_by_the_keys_capabilities(partner):
    everything = client_for(make_key(partner)[1])
    job = everything.post(
        "/api/v1/jobs", {"capability": "image_generation", "input": {"prompt": "a teal square"}}, format="json"
    ).json()
    generated = store_file(
        partner=partner,
        data=_png().getvalue(),
        filename="out.png",
        content_type="image/png",
        purpose=FilePurpose.GENERATED,
        job=Job.objects.get(pk=job["id"]),
    )
    uploaded = everything.post("/api/v1/files", {"file": _png()}, format="multipart").json()
    painter = client_for(make_key(partner, scopes=["image_generation", "jobs:read"])[1])
    assert painter.get(f"/api/v1/files/{generated.public_id}/content").status_code == 200
    assert painter.get(f"/api/v1/files/{uploaded['id']}/content").status_code == 404
    assert painter.get(f"/api/v1/files/{generated.public_id}").status_code == 403
    reader = client_for(make_key(partner, scopes=["keyword_extraction", "jobs:read"])[1])
    assert reader.get(f"/api/v1/files/{generated.public_id}/content").status_code == 404


def test_tuned_models_are_listed_only_to_keys_of_their_capability(partner, ours):
    from inference.models import TunedModel, TuningJob

    TunedModel.objects.create(
        name="ft:all-MiniLM-L6-v2:woori:c1a55",
        partner=partner,
        task="classification",
        tuning_job=TuningJob.objects.get(pk=ours["tuning_job"]),
        base_model="all-MiniLM-L6-v2",
        adapter_path="adapters/x",
    )
    classifier = client_for(make_key(partner, scopes=["text_classification"])[1])
    chatter = client_for(make_key(partner, scopes=["dialogue"])[1])
    for path in ("/api/v1/models", "/v1/models"):
        assert "ft:all-MiniLM-L6-v2:woori:c1a55" in json.dumps(classifier.get(path).json()), path
        assert "ft:all-MiniLM-L6-v2:woori:c1a55" not in json.dumps(chatter.get(path).json()), path
    assert chatter.get("/v1/models/ft:all-MiniLM-L6-v2:woori:c1a55").status_code == 404


def test_me_shows_the_webhook_secret_only_to_an_admin_key(partner):
    secret = signing_secret(partner)
    for scopes in ([], ["admin"]):
        response = client_for(make_key(partner, scopes=scopes)[1]).get("/api/v1/me")
        assert response.json()["webhook_signing_secret"] == secret, scopes
        assert response["Cache-Control"] == "no-store"
    for scopes in (["jobs:read"], ["keyword_extraction", *[s for s in RESOURCE_SCOPES if s != "admin"]]):
        response = client_for(make_key(partner, scopes=scopes)[1]).get("/api/v1/me")
        assert response.status_code == 200
        assert "webhook_signing_secret" not in response.json() and secret not in response.content.decode()
        assert response.json()["key"]["scopes"] == sorted(scopes)


def test_rotating_the_webhook_secret_changes_it_and_is_audited(partner, other_partner):
    before, theirs = signing_secret(partner), signing_secret(other_partner)
    body = b'{"type": "job.succeeded"}'
    old_header = signature_header(before, body)
    after = webhook_secret_rotate(partner=partner, actor="user:olivia")
    assert after == signing_secret(Partner.objects.get(pk=partner.pk)) != before
    assert signing_secret(other_partner) == theirs
    assert not verify_signature(after, body, old_header)
    event = AuditEvent.objects.get(partner=partner, action="webhook_secret.rotated")
    assert (event.actor, event.data) == ("user:olivia", {"version": 2})
    assert webhook_secret_rotate(partner=partner, actor="system") not in (before, after)


class _Receiver(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhooks_delivered_after_a_rotation_are_signed_with_the_new_secret(partner, settings):
    settings.ALLIANCE_WEBHOOK_ALLOW_PRIVATE = True
    _Receiver.calls = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    job = Job.objects.create(
        partner=partner,
        capability="keyword_extraction",
        model="all-MiniLM-L6-v2",
        queue="embeddings",
        input={"text": "x", "top_k": 1},
        status="succeeded",
        output={"keywords": []},
        webhook_url=f"http://127.0.0.1:{server.server_port}/hooks",
    )
    try:
        old = signing_secret(partner)
        assert webhook_deliver(job_id=str(job.pk), attempt=1)
        new = webhook_secret_rotate(partner=partner, actor="test")
        assert webhook_deliver(job_id=str(job.pk), attempt=2)
    finally:
        server.shutdown()
    (first_headers, first_body), (second_headers, second_body) = _Receiver.calls
    assert verify_signature(old, first_body, first_headers["X-Alliance-Signature"])
    assert verify_signature(new, second_body, second_headers["X-Alliance-Signature"])
    assert not verify_signature(old, second_body, second_headers["X-Alliance-Signature"])


def test_portal_admins_see_and_rotate_the_webhook_secret_developers_do_not(partner):
    owner, developer = make_member(partner, "owner"), make_member(partner, "developer")
    secret = signing_secret(partner)
    page = signed_in(owner).get("/portal/keys/")
    assert secret in page.content.decode() and "no-store" in page["Cache-Control"]
    assert secret not in signed_in(developer).get("/portal/keys/").content.decode()
    assert signed_in(developer).post("/portal/keys/webhook-secret/rotate/").status_code == 403
    assert signing_secret(Partner.objects.get(pk=partner.pk)) == secret
    response = signed_in(owner).post("/portal/keys/webhook-secret/rotate/")
    assert response.status_code == 302
    rotated = signing_secret(Partner.objects.get(pk=partner.pk))
    assert rotated != secret and rotated in signed_in(owner).get("/portal/keys/").content.decode()
    assert AuditEvent.objects.filter(partner=partner, action="webhook_secret.rotated").count() == 1


def test_the_portal_issues_keys_with_resource_scopes_grouped_apart(partner):
    developer = make_member(partner, "developer")
    page = signed_in(developer).get("/portal/keys/").content.decode()
    capabilities = page.split('data-scope-group="capabilities"')[1].split("</div>")[0]
    resources = page.split('data-scope-group="resources"')[1].split("</div>")[0]
    assert 'value="keyword_extraction"' in capabilities and 'value="jobs:read"' not in capabilities
    assert 'value="jobs:read"' in resources and 'value="admin"' in resources
    response = signed_in(developer).post("/portal/keys/issue/", {"name": "reader", "scopes": ["jobs:read", "dialogue"]})
    assert response.status_code == 201
    raw = re.search(r'data-testid="raw-key">([^<]+)<', response.content.decode()).group(1)
    assert api_key_authenticate(raw).scopes == ["dialogue", "jobs:read"]
    refused = signed_in(developer).post("/portal/keys/issue/", {"name": "bad", "scopes": ["root"]})
    assert refused.status_code == 400


def test_issue_api_key_accepts_resource_scopes_and_refuses_unknown_ones(partner):
    out = io.StringIO()
    call_command("issue_api_key", partner.slug, "--scopes", "jobs:read,keyword_extraction", stdout=out)
    assert api_key_authenticate(out.getvalue().strip()).scopes == ["jobs:read", "keyword_extraction"]
    with pytest.raises(CommandError, match="Unknown scope: jobs:delete"):
        call_command("issue_api_key", partner.slug, "--scopes", "jobs:delete", stdout=io.StringIO())


def test_the_schema_names_the_scope_of_every_operation(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if method in HANDLED_METHODS
    ]
    assert len(operations) >= len(OPERATIONS)
    for path, method, operation in operations:
        assert "x-required-scopes" in operation, (path, method)
        assert "Scope: " in operation["description"], (path, method)
    by_path = {(path.rstrip("/"), method): operation for path, method, operation in operations}
    assert by_path[("/api/v1/usage", "get")]["x-required-scopes"] == ["usage:read"]
    assert by_path[("/api/v1/files/{file_id}/content", "get")]["x-required-scopes"] == ["files:read", "jobs:read"]
    assert by_path[("/v1/chat/completions", "post")]["x-required-scopes"] == ["dialogue"]
    assert by_path[("/api/v1/me", "get")]["x-required-scopes"] == []


@pytest.mark.django_db(transaction=True)
def test_keys_scoped_to_capabilities_before_resource_scopes_keep_reading_their_jobs():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("partners", "0001_initial")], [("partners", "0002_scopes_webhook_secret_version")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    partner = apps.get_model("partners", "Partner").objects.create(name="Old", slug="old", sector="it")
    ApiKey = apps.get_model("partners", "ApiKey")
    ApiKey.objects.create(public_id="old-scoped", partner=partner, name="a", scopes=["keyword_extraction"])
    ApiKey.objects.create(public_id="old-all", partner=partner, name="b", scopes=[])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    apps = executor.loader.project_state(after).apps
    scopes = dict(apps.get_model("partners", "ApiKey").objects.values_list("public_id", "scopes"))
    assert scopes == {"old-scoped": ["jobs:read", "keyword_extraction"], "old-all": []}
    assert apps.get_model("partners", "Partner").objects.get(slug="old").webhook_secret_version == 1
    executor = MigrationExecutor(connection)  # back to the latest of every app for the next tests
    executor.migrate(executor.loader.graph.leaf_nodes())
