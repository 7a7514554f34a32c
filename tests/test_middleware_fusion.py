"""The ASGI handler with MIDDLEWARE's plain runs fused (alliance.middleware_fusion): the same answers as Django's own
ASGI handler (sessions, CSRF, the language, security headers, an API key's request), in fewer thread hops."""

from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import SyncToAsync
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.test import Client
from django.utils.module_loading import import_string

from alliance.middleware_fusion import FusedASGIHandler, fused
from tests.factories import make_key, make_partner

VARYING = {"set-cookie", "content-length", "x-request-id", "date", "expires"}  # times tick between the two calls


def _call(app, method: str, path: str, headers: list[tuple[bytes, bytes]] = (), body: bytes = b"") -> dict:
    async def run() -> dict:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        communicator = ApplicationCommunicator(app, scope)
        await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await communicator.receive_output(30)
        chunks = []
        while True:
            message = await communicator.receive_output(30)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await communicator.wait(5)
        answered = {name.decode().lower(): value.decode() for name, value in start["headers"]}
        return {"status": start["status"], "headers": answered, "body": b"".join(chunks).decode(errors="replace")}

    return asyncio.run(run())


def _hops(app, *request) -> tuple[dict, int]:
    """The answer and how many sync_to_async calls the request took."""
    calls = 0
    original = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        return await original(self, *args, **kwargs)

    SyncToAsync.__call__ = counted
    try:
        return _call(app, *request), calls
    finally:
        SyncToAsync.__call__ = original


@pytest.fixture(scope="module")
def handlers():
    """Both handlers; the request threads' database connections close when their request ends (as under the
    pool the web process runs with), so none outlives the test database."""
    database = connections.settings["default"]
    kept = database["CONN_MAX_AGE"]
    database["CONN_MAX_AGE"] = 0
    yield ASGIHandler(), FusedASGIHandler()
    database["CONN_MAX_AGE"] = kept


def test_the_plain_middleware_run_is_one_group_and_the_settings_stay_as_written():
    paths = fused(settings.MIDDLEWARE)
    assert len(paths) < len(settings.MIDDLEWARE)
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE  # Django's checks still see it
    assert paths[0] == settings.MIDDLEWARE[0] and paths[-1] == settings.MIDDLEWARE[-1]  # order and ends kept


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("GET", "/", [], b""),
        ("GET", "/portal/login/", [(b"accept-language", b"ko")], b""),
        ("POST", "/portal/login/", [(b"content-type", b"application/x-www-form-urlencoded")], b"username=a&password=b"),
        ("GET", "/no-such-page/", [], b""),
        ("GET", "/api/v1/capabilities", [(b"host", b"evil.example")], b""),  # DisallowedHost in a loop-safe hook
    ],
)
def test_the_fused_handler_answers_as_djangos(transactional_db, handlers, method, path, headers, body):
    plain, fused_handler = handlers
    expected = _call(plain, method, path, headers, body)
    answer = _call(fused_handler, method, path, headers, body)
    assert answer["status"] == expected["status"]
    assert set(answer["headers"]) == set(expected["headers"])
    for name in set(expected["headers"]) - VARYING - {"content-security-policy"}:
        assert answer["headers"][name] == expected["headers"][name], name
    assert ("csrftoken" in answer["headers"].get("set-cookie", "")) == (
        "csrftoken" in expected["headers"].get("set-cookie", "")
    )


def test_csrf_sessions_and_the_language_still_apply(transactional_db, handlers):
    _, fused_handler = handlers
    refused = _call(
        fused_handler, "POST", "/portal/login/", [(b"content-type", b"application/x-www-form-urlencoded")], b""
    )
    assert refused["status"] == 403  # no CSRF token: CsrfViewMiddleware's process_view, inside the group
    korean = _call(fused_handler, "GET", "/portal/login/", [(b"accept-language", b"ko")])
    assert korean["status"] == 200 and re.search("[가-힣]", korean["body"])  # SiteLocaleMiddleware
    assert korean["headers"]["x-frame-options"] == "DENY"  # XFrameOptionsMiddleware's process_response
    assert "content-security-policy" in korean["headers"]  # CSPMiddleware's
    assert "csrftoken" in korean["headers"]["set-cookie"]  # CsrfViewMiddleware's process_response


def test_an_api_request_takes_fewer_thread_hops(transactional_db, handlers):
    plain, fused_handler = handlers
    _, raw = make_key(make_partner())
    request = ("GET", "/api/v1/capabilities", [(b"authorization", f"Bearer {raw}".encode())])
    expected, plain_hops = _hops(plain, *request)
    answer, fused_hops = _hops(fused_handler, *request)
    assert answer["status"] == expected["status"] == 200
    assert answer["body"] == expected["body"]
    assert fused_hops <= plain_hops - 17, (fused_hops, plain_hops)  # 21 -> 4 here


def test_a_signed_in_page_reads_its_session_and_user_in_the_views_thread(transactional_db, handlers):
    """Hooks that run on the event loop leave the session and the user lazy: the signed-in page (the session and user
    read from the database) answers as under Django's handler, with no SynchronousOnlyOperation."""
    user = get_user_model().objects.create_user("hops", password="pw-hops-123456789")
    browser = Client()
    browser.force_login(user)
    cookie = [(b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())]
    plain, fused_handler = handlers
    expected = _call(plain, "GET", "/portal/", cookie)
    answer = _call(fused_handler, "GET", "/portal/", cookie)
    assert answer["status"] == expected["status"] == 403  # signed in (not sent to sign in), without a partner
    assert "do not belong to any partner" in answer["body"]


def test_security_and_the_groups_requests_run_on_the_loop():
    paths = fused(settings.MIDDLEWARE)
    groups = [import_string(path) for path in paths if path.startswith("alliance.middleware_fusion.")]
    security = next(g for g in groups if g.member_paths == ("django.middleware.security.SecurityMiddleware",))
    main = next(g for g in groups if "django.contrib.sessions.middleware.SessionMiddleware" in g.member_paths)
    assert security(lambda r: None).inline_request and security(lambda r: None).inline_response
    main_group = main(lambda r: None)
    assert main_group.inline_request and not main_group.inline_response  # the session may save: in a thread
    assert main_group.exempt_views_inline  # CSRF is its only process_view


def test_signing_in_saves_the_session_in_a_thread_and_the_cookie_signs_in(transactional_db, handlers):
    """The session's process_response saves a modified session (off the loop): the sign-in's session cookie then
    opens a signed-in page."""
    get_user_model().objects.create_user("signer", password="pw-signer-123456789")
    _, fused_handler = handlers
    form = _call(fused_handler, "GET", "/portal/login/")
    csrf_cookie = re.search(r"csrftoken=([^;]+)", form["headers"]["set-cookie"]).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form["body"]).group(1)
    body = f"csrfmiddlewaretoken={token}&username=signer&password=pw-signer-123456789".encode()
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"cookie", f"csrftoken={csrf_cookie}".encode()),
        (b"referer", b"http://testserver/portal/login/"),
    ]
    signed_in = _call(fused_handler, "POST", "/portal/login/", headers, body)
    assert signed_in["status"] == 302, signed_in["body"][:300]
    session = re.search(r"sessionid=([^;]+)", signed_in["headers"]["set-cookie"]).group(1)
    page = _call(fused_handler, "GET", "/portal/", [(b"cookie", f"sessionid={session}".encode())])
    assert page["status"] == 403 and "do not belong to any partner" in page["body"]  # signed in, no partner
