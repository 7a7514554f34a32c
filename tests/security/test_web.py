"""The web as an attacker tries it: guessing passwords, touching others' keys, the admin, showcase images, cookies,
headers and the Content-Security-Policy. Real POSTs through Django's test client, a real superuser in the admin."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image, PngImagePlugin

from partners.models import ApiKey, AuditEvent, Membership, Partner
from partners.services import audit_record
from tests.factories import make_key
from tests.web.browser import CHROMIUM, LAUNCH_ARGS, skip_or_fail_without_browser
from tests.web.conftest import PASSWORD, make_member, signed_in
from usecases.models import UseCase, UseCaseImage

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """The checks under test are the same with any hasher; PBKDF2's million rounds would only make them slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def owner(partner):
    return make_member(partner, "owner", "olivia")


@pytest.fixture
def admin(partner):
    return make_member(partner, "admin", "adam")


@pytest.fixture
def developer(partner):
    return make_member(partner, "developer", "devon")


# ---------------------------------------------------------------- sign-in throttling


def _sign_in(client: Client, path: str, username: str, password: str, ip: str = "198.51.100.7"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_portal_sign_in_locks_out_a_username_and_address_after_five_failures(settings, owner):
    client = Client()
    codes = [_sign_in(client, "/portal/login/", "olivia", f"wrong-{n}").status_code for n in range(5)]
    assert codes[:4] == [200, 200, 200, 200]  # the form again, with its error
    locked = _sign_in(client, "/portal/login/", "olivia", PASSWORD)  # even the right password, during the lockout
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many sign-in attempts" in text and "try again in 15 minutes" in text
    assert locked["Retry-After"] == "900"
    assert "_auth_user_id" not in client.session


def test_a_lockout_holds_only_for_that_username_from_that_address(owner):
    other = make_member(owner.partner, "viewer", "victor")
    for n in range(5):
        _sign_in(Client(), "/portal/login/", "olivia", f"wrong-{n}")
    assert _sign_in(Client(), "/portal/login/", "olivia", PASSWORD).status_code == 429
    elsewhere = _sign_in(Client(), "/portal/login/", "olivia", PASSWORD, ip="203.0.113.50")
    assert elsewhere.status_code == 302 and elsewhere["Location"] == "/portal/"
    assert _sign_in(Client(), "/portal/login/", other.user.username, PASSWORD).status_code == 302


def test_a_successful_sign_in_resets_the_failure_count(owner):
    for n in range(4):
        _sign_in(Client(), "/portal/login/", "olivia", f"wrong-{n}")
    assert _sign_in(Client(), "/portal/login/", "olivia", PASSWORD).status_code == 302
    for n in range(4):
        assert _sign_in(Client(), "/portal/login/", "olivia", f"again-{n}").status_code == 200
    assert _sign_in(Client(), "/portal/login/", "olivia", PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(owner):
    for n in range(5):
        _sign_in(Client(), "/portal/login/", "olivia", f"wrong-{n}")
    assert _sign_in(Client(), "/portal/login/", "olivia", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - dt.timedelta(minutes=16))
    assert _sign_in(Client(), "/portal/login/", "olivia", PASSWORD).status_code == 302


def test_admin_sign_in_is_throttled_too(django_user_model):
    django_user_model.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    client = Client()
    for n in range(5):
        response = _sign_in(client, "/admin/login/", "root", f"wrong-{n}")
    assert response.status_code == 429
    assert _sign_in(client, "/admin/login/", "root", PASSWORD).status_code == 429
    assert _sign_in(client, "/admin/login/", "root", PASSWORD, ip="203.0.113.50").status_code == 302


# ---------------------------------------------------------------- who may rotate or revoke a key


def _issue_in_portal(member, name: str) -> ApiKey:
    response = signed_in(member).post("/portal/keys/issue/", {"name": name})
    assert response.status_code == 201
    return ApiKey.objects.get(partner=member.partner, name=name)


def test_a_developer_cannot_rotate_or_revoke_a_key_someone_else_created(owner, developer):
    owners_key = _issue_in_portal(owner, "owner's production key")
    cli_key, _ = make_key(owner.partner)  # issued from the command line, by no one
    client = signed_in(developer)
    for key in (owners_key, cli_key):
        assert client.post(f"/portal/keys/{key.public_id}/rotate/").status_code == 403
        assert client.post(f"/portal/keys/{key.public_id}/revoke/").status_code == 403
        key.refresh_from_db()
        assert key.revoked_at is None and key.credentials.count() == 1
    assert not AuditEvent.objects.filter(action__in=["api_key.rotated", "api_key.revoked"]).exists()


def test_a_developer_rotates_and_revokes_their_own_key(developer):
    own = _issue_in_portal(developer, "my bot")
    client = signed_in(developer)
    assert client.post(f"/portal/keys/{own.public_id}/rotate/").status_code == 200
    assert own.credentials.count() == 2
    assert client.post(f"/portal/keys/{own.public_id}/revoke/").status_code == 302
    own.refresh_from_db()
    assert own.revoked_at is not None


def test_admins_and_owners_rotate_and_revoke_any_key_of_their_partner(owner, admin, developer):
    devs_key = _issue_in_portal(developer, "dev's key")
    owners_key = _issue_in_portal(owner, "owner's key")
    assert signed_in(admin).post(f"/portal/keys/{owners_key.public_id}/rotate/").status_code == 200
    assert signed_in(owner).post(f"/portal/keys/{devs_key.public_id}/revoke/").status_code == 302
    devs_key.refresh_from_db()
    assert devs_key.revoked_at is not None and owners_key.credentials.count() == 2


def test_the_keys_page_shows_a_developer_buttons_only_for_their_own_keys(owner, developer):
    owners_key = _issue_in_portal(owner, "owner's key")
    own = _issue_in_portal(developer, "my key")
    page = signed_in(developer).get("/portal/keys/").content.decode()
    assert f"/portal/keys/{own.public_id}/revoke/" in page and f"/portal/keys/{own.public_id}/rotate/" in page
    assert f"/portal/keys/{owners_key.public_id}/revoke/" not in page
    assert f"/portal/keys/{owners_key.public_id}/rotate/" not in page
    owners_page = signed_in(owner).get("/portal/keys/").content.decode()
    assert f"/portal/keys/{own.public_id}/revoke/" in owners_page


# ---------------------------------------------------------------- the Django admin


@pytest.fixture
def operator(django_user_model) -> Client:
    """A real superuser, signed in through the admin's own form."""
    django_user_model.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    client = Client()
    assert client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD}).status_code == 302
    return client


def _change_form(client: Client, url: str) -> dict:
    """The fields a change form would post back, as rendered (the admin's own form, read from the page)."""
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if isinstance(value, dt.datetime):  # the admin's split date and time inputs
            data[f"{name}_0"], data[f"{name}_1"] = value.date().isoformat(), value.time().isoformat()
        else:
            data[name] = "" if value is None else value
    return data


def test_the_admin_cannot_change_a_keys_partner_scopes_or_revocation(operator, partner, other_partner):
    key, _ = make_key(partner, scopes=["summarization"])
    url = f"/admin/partners/apikey/{key.pk}/change/"
    data = {**_change_form(operator, url), "name": "renamed by ops"}
    data.update(partner=other_partner.pk, scopes='["text_generation"]', revoked_at_0="2030-01-01", revoked_at_1="00:00")
    assert operator.post(url, data).status_code == 302
    key.refresh_from_db()
    assert key.name == "renamed by ops"
    assert key.partner == partner and key.scopes == ["summarization"] and key.revoked_at is None
    event = AuditEvent.objects.get(action="admin.apikey.changed")
    assert event.actor == "user:root" and event.partner == partner and event.data["fields"] == ["name"]


def test_keys_are_neither_added_nor_deleted_in_the_admin_and_revoking_is_audited(operator, partner):
    key, _ = make_key(partner)
    assert operator.get("/admin/partners/apikey/add/").status_code == 403
    assert operator.post(f"/admin/partners/apikey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = "/admin/partners/apikey/"
    assert operator.post(changelist, {"action": "revoke", ACTION_CHECKBOX_NAME: [key.pk]}).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.get(action="api_key.revoked", target=key.public_id).actor == "user:root"


def test_no_one_deletes_or_edits_an_audit_event_in_the_admin(operator, partner):
    event = audit_record(partner=partner, actor="user:someone", action="api_key.revoked", target="k1")
    before = AuditEvent.objects.count()
    assert operator.post(f"/admin/partners/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = "/admin/partners/auditevent/"
    bulk = operator.post(changelist, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [event.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    edit = operator.post(f"/admin/partners/auditevent/{event.pk}/change/", {"action": "forged", "actor": "system"})
    assert edit.status_code == 403
    # deleting the partner would cascade to its audit log: refused as well
    refused = operator.post(f"/admin/partners/partner/{partner.pk}/delete/", {"post": "yes"})
    assert refused.status_code == 403
    assert AuditEvent.objects.count() == before
    event.refresh_from_db()
    assert (event.actor, event.action) == ("user:someone", "api_key.revoked")


def test_admin_changes_and_deletions_are_audited_with_the_operator_as_actor(operator, partner, developer):
    url = f"/admin/partners/membership/{developer.pk}/change/"
    data = {**_change_form(operator, url), "role": "admin"}
    assert operator.post(url, data).status_code == 302
    changed = AuditEvent.objects.get(action="admin.membership.changed")
    assert (changed.actor, changed.partner, changed.data["fields"]) == ("user:root", partner, ["role"])
    assert operator.post(f"/admin/partners/membership/{developer.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Membership.objects.filter(pk=developer.pk).exists()
    deleted = AuditEvent.objects.get(action="admin.membership.deleted")
    assert deleted.actor == "user:root" and deleted.partner == partner
    user_url = f"/admin/auth/user/{developer.user.pk}/change/"
    user_data = {**_change_form(operator, user_url), "is_staff": "on"}
    user_data = {k: v for k, v in user_data.items() if v is not False and k not in ("groups", "user_permissions")}
    posted = operator.post(user_url, user_data)
    assert posted.status_code == 302, posted.context["adminform"].form.errors
    user_event = AuditEvent.objects.get(action="admin.user.changed")
    assert user_event.actor == "user:root" and "is_staff" in user_event.data["fields"]


# ---------------------------------------------------------------- members join by invitation only


def test_the_old_silent_add_is_gone(partner, other_partner, admin, mailoutbox):
    """Members join by accepting an emailed invitation (tests/security/test_invitations.py); a username, with or
    without a password, neither adds an account nor creates one."""
    outsider = make_member(other_partner, "viewer", "eve")
    client = signed_in(admin)
    for data in ({"user": "eve", "role": "viewer"}, {"user": "newbie", "role": "developer", "password": PASSWORD}):
        response = client.post("/portal/members/invite/", data)
        assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert not Membership.objects.filter(partner=partner, user=outsider.user).exists()
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert mailoutbox == []


# ---------------------------------------------------------------- showcase images


def _upload(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")  # the claimed type is never believed


def _encoded(fmt: str, size=(16, 12), mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red").save(buffer, fmt, **save)
    return buffer.getvalue()


def _new_showcase(client: Client, upload: SimpleUploadedFile):
    fields = {"title": f"Showcase {upload.name}", "sector": "it", "capabilities": ["image_generation"], "summary": "s"}
    return client.post("/portal/showcases/new/", {**fields, "image": upload, "image_caption": "c"})


def _stored(title_part: str) -> bytes:
    image = UseCaseImage.objects.get(usecase__title__contains=title_part)
    with image.image.open("rb") as handle:
        return handle.read()


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (_encoded("GIF"), "anim.png", "must be PNG, JPEG or WebP, not GIF"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "x.png", "not a readable"),
        (b"<html><script>alert(document.cookie)</script></html>", "page.jpg", "not a readable"),
        (_encoded("PNG", size=(4097, 4097), mode="1"), "bomb.png", "the limit is 16777216 pixels"),
    ],
    ids=["gif", "svg", "html", "too-many-pixels"],
)
def test_a_showcase_image_that_is_not_a_small_png_jpeg_or_webp_is_refused(developer, data, name, message):
    response = _new_showcase(signed_in(developer), _upload(data, name))
    assert response.status_code == 400 and message in response.content.decode()
    assert not UseCaseImage.objects.exists()


def test_a_showcase_image_over_the_byte_limit_is_refused_before_it_is_read(developer):
    big = _encoded("PNG") + b"\0" * (8 * 1024 * 1024)
    response = _new_showcase(signed_in(developer), _upload(big, "big.png"))
    assert response.status_code == 400 and "the limit is 8388608" in response.content.decode()
    assert not UseCaseImage.objects.exists()


def test_showcase_images_are_re_encoded_without_metadata_or_trailing_bytes(developer):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {2: (37.0, 33.0, 0.0)}  # GPS latitude
    jpeg = _encoded("JPEG", exif=exif.tobytes(), comment=b"secret comment")
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone@example.com")
    png = _encoded("PNG", pnginfo=info) + b"<script>alert(1)</script>"  # a polyglot: an image with a page after it
    client = signed_in(developer)
    for data, name in ((jpeg, "photo.jpg"), (png, "poly.png"), (_encoded("WEBP", exif=exif.tobytes()), "p.webp")):
        assert _new_showcase(client, _upload(data, name)).status_code == 302
    stored_jpeg, stored_png, stored_webp = _stored("photo.jpg"), _stored("poly.png"), _stored("p.webp")
    for stored in (stored_jpeg, stored_png, stored_webp):
        assert b"SpyCam" not in stored and b"someone@example.com" not in stored and b"<script>" not in stored
    with Image.open(io.BytesIO(stored_jpeg)) as image:
        assert image.format == "JPEG" and not image.getexif() and "comment" not in image.info
    with Image.open(io.BytesIO(stored_png)) as image:
        assert image.format == "PNG" and image.size == (16, 12) and "Author" not in image.info
    assert stored_png.endswith(b"IEND\xaeB`\x82")
    with Image.open(io.BytesIO(stored_webp)) as image:
        assert image.format == "WEBP" and not image.getexif()
    names = [i.image.name for i in UseCaseImage.objects.all()]
    assert not any(n.endswith(("photo.jpg", "poly.png", "p.webp")) for n in names)  # random names, not the upload's


def test_showcase_images_are_served_with_their_own_content_type_and_never_as_anything_else(developer):
    client = signed_in(developer)
    for data, name in ((_encoded("JPEG"), "a.jpg"), (_encoded("WEBP"), "b.webp"), (_encoded("PNG"), "c.png")):
        assert _new_showcase(client, _upload(data, name)).status_code == 302
    served = {}
    for image in UseCaseImage.objects.select_related("usecase"):
        response = client.get(f"/usecases/{image.usecase.slug}/images/{image.pk}")
        assert response.status_code == 200 and response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]
        served[image.usecase.title.rsplit(" ", 1)[1]] = response["Content-Type"]
    assert served == {"a.jpg": "image/jpeg", "b.webp": "image/webp", "c.png": "image/png"}
    # a file stored before these checks (or by hand) that is not an image is not served, whatever its name
    usecase = UseCaseImage.objects.first().usecase
    html = UseCaseImage.objects.create(usecase=usecase, image=ContentFile(b"<html>x</html>", name="old.png"))
    assert client.get(f"/usecases/{usecase.slug}/images/{html.pk}").status_code == 404


# ---------------------------------------------------------------- HTTPS defaults and the Content-Security-Policy


def _settings_under(env: dict[str, str]) -> list[str]:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0, s.SECURE_SSL_REDIRECT)"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("ALLIANCE_SECURE", "ALLIANCE_SSL_REDIRECT")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "alliance.settings", "DJANGO_SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.split() or [result.stderr]


def test_cookies_are_secure_and_hsts_is_on_by_default_without_debug():
    assert _settings_under({"DJANGO_DEBUG": "0"}) == ["True", "True", "True", "False"]
    assert _settings_under({"DJANGO_DEBUG": "0", "ALLIANCE_SSL_REDIRECT": "1"}) == ["True", "True", "True", "True"]


def test_plain_http_runs_opt_out_explicitly_and_debug_is_plain():
    assert _settings_under({"DJANGO_DEBUG": "0", "ALLIANCE_SECURE": "0"}) == ["False", "False", "False", "False"]
    assert _settings_under({"DJANGO_DEBUG": "1"}) == ["False", "False", "False", "False"]


def test_https_answers_carry_hsts_and_every_page_a_strict_script_policy(client):
    secure = client.get("/", secure=True)
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    for path in ("/", "/playground/", "/portal/login/", "/api/docs/", "/admin/login/"):
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'", path
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'", path
    login = client.get("/portal/login/")
    assert "csrftoken" in login.cookies and login.cookies["csrftoken"]["secure"] is True


def test_no_page_carries_inline_script():
    """The policy allows no inline script: no template may hold one (or an inline event handler)."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=\"", re.IGNORECASE)
    offenders = [
        str(path.relative_to(django_settings.BASE_DIR))
        for root in ("portal/templates", "usecases/templates")
        for path in (Path(django_settings.BASE_DIR) / root).rglob("*.html")
        if inline.search(path.read_text())
    ]
    assert offenders == []


PAGES = [
    "/",
    "/playground/",
    "/api/guide/",
    "/api/docs/",
    "/api/redoc/",
    "/portal/",
    "/portal/keys/",
    "/portal/usage/",
    "/portal/jobs/",
    "/portal/members/",
    "/portal/datasets/",
    "/portal/tuning/",
    "/portal/showcases/",
    "/portal/showcases/new/",
    "/portal/audit/",
    "/admin/",
    "/admin/partners/apikey/",
    "/admin/usecases/usecase/",
]


@pytest.fixture
def chromium():
    skip_or_fail_without_browser()
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.mark.django_db(transaction=True)
def test_every_page_works_in_a_browser_under_the_content_security_policy(live_server, chromium):
    call_command("seed_alliance", verbosity=0)
    partner = Partner.objects.get(slug="woori-bank")
    owner = make_member(partner, "owner", "olga")
    make_member(Partner.objects.get(slug="lg-chem"), "owner", "olga2")
    Membership.objects.filter(user__username="olga2").update(user=owner.user)
    owner.user.is_staff = owner.user.is_superuser = True
    owner.user.save()
    context = chromium.new_context(base_url=live_server.url)
    page = context.new_page()
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));"
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/portal/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/portal/")
    # the session and CSRF cookies are Secure, and the browser keeps them on this local address all the same
    assert all(c["secure"] for c in context.cookies() if c["name"] in ("sessionid", "csrftoken"))
    violations: dict[str, list[str]] = {}
    for path in PAGES:
        response = page.goto(path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        if page.evaluate("window.__csp.length"):
            violations[path] = page.evaluate("window.__csp")
    slug = UseCase.objects.filter(status="published").first().slug
    page.goto(f"/usecases/{slug}/")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__csp") == []
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # Swagger UI started: its script ran under the CSP
    # the partner switch (an inline handler before) still submits itself when changed
    page.goto("/portal/keys/")
    page.select_option("#partner-switch", "lg-chem")
    page.wait_for_load_state("networkidle")
    assert "LG Chem" in page.locator(".subnav").inner_text()
    # Redoc's page asks Google for fonts and its own CDN for a logo: the policy refuses both (no third party sees our
    # visitors), and the page renders all the same.
    third_party = violations.pop("/api/redoc/", [])
    assert all(v.split(" ")[1].startswith("https://") and "localhost" not in v.split(" ")[1] for v in third_party)
    page.goto("/api/redoc/")
    page.wait_for_selector("h1", timeout=15_000)
    assert "AI Alliance partner platform API" in page.locator("h1").first.inner_text()
    context.close()
    assert violations == {}
    assert errors == []
