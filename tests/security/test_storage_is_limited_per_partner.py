"""A partner's stored bytes and files are limited (uploaded images, generated images, datasets, through every upload
route), the limit holds under concurrent uploads, the portal shows the use, and uploads spend a per-key write
bucket."""

from __future__ import annotations

import base64
import io
import json
import threading

import pytest
from django.db import connection
from django.test import override_settings
from PIL import Image

from alliance.errors import LimitReached
from inference.images import CheckedImage, check_image_bytes, store_file, store_image
from inference.models import Dataset, FilePurpose, StoredFile
from inference.storage import storage_use
from tests.factories import client_for, make_key, make_partner

pytestmark = pytest.mark.django_db


def png(size: int = 8, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((size, size), 50 + seed).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def image_upload(data: bytes) -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = "photo.png"
    return upload


def dataset_upload(rows: int = 12) -> io.BytesIO:
    upload = io.BytesIO("\n".join(json.dumps({"text": f"row {i}", "label": "ab"[i % 2]}) for i in range(rows)).encode())
    upload.name = "rows.jsonl"
    return upload


def test_an_upload_past_the_byte_limit_is_refused_naming_the_limit_and_the_use(partner, api):
    first = png(16)
    with override_settings(ALLIANCE_STORAGE_MAX_BYTES=len(first) + 100):
        assert api.post("/api/v1/files", {"file": image_upload(first)}, format="multipart").status_code == 201
        refused = api.post("/api/v1/files", {"file": image_upload(png(16, 1))}, format="multipart")
        assert refused.status_code == 413
        error = refused.json()["error"]
        assert error["code"] == "storage_quota_exceeded"
        assert f"{len(first)} of {len(first) + 100} bytes are stored" in error["message"]
        assert StoredFile.objects.filter(partner=partner).count() == 1
        stored = StoredFile.objects.get(partner=partner)
        assert api.delete(f"/api/v1/files/{stored.public_id}").status_code == 200  # deleting frees the space
        assert api.post("/api/v1/files", {"file": image_upload(png(16, 1))}, format="multipart").status_code == 201


def test_files_and_datasets_count_against_one_file_limit_on_every_upload_route(partner, api):
    with override_settings(ALLIANCE_STORAGE_MAX_FILES=2):
        assert api.post("/api/v1/files", {"file": image_upload(png())}, format="multipart").status_code == 201
        created = api.post("/api/v1/datasets", {"file": dataset_upload(), "task": "classification"}, format="multipart")
        assert created.status_code == 201
        refusals = [
            api.post("/api/v1/files", {"file": image_upload(png())}, format="multipart"),
            api.post("/api/v1/datasets", {"file": dataset_upload(), "task": "classification"}, format="multipart"),
            api.post("/v1/files", {"file": dataset_upload(), "purpose": "fine-tune"}, format="multipart"),
        ]
        for refused in refusals:
            assert refused.status_code == 429, refused.json()
            assert refused.json()["error"]["code"] == "storage_quota_exceeded"
            assert "2 of 2 files are stored" in refused.json()["error"]["message"]
        base64_image = {"capability": "image_captioning", "input": {"image": base64.b64encode(png()).decode()}}
        assert api.post("/api/v1/jobs", base64_image, format="json").status_code == 429  # an inline image is an upload
    assert StoredFile.objects.filter(partner=partner).count() == 1
    assert Dataset.objects.filter(partner=partner).count() == 1


def test_the_portal_dataset_upload_is_refused_past_the_limit_with_the_message(client, partner):
    from django.contrib.auth import get_user_model

    from partners.services import membership_add

    user = get_user_model().objects.create_user("dev", password="pw-long-enough-1")
    membership_add(partner=partner, user=user, role="developer", actor="test")
    client.force_login(user)
    with override_settings(ALLIANCE_STORAGE_MAX_BYTES=10):
        response = client.post("/portal/datasets/upload/", {"file": dataset_upload(), "task": "classification"})
    assert response.status_code == 413
    assert b"Storage quota exceeded" in response.content
    assert not Dataset.objects.filter(partner=partner).exists()


def test_generated_images_are_stored_for_their_paid_job_but_count_against_later_uploads(partner):
    with override_settings(ALLIANCE_STORAGE_MAX_FILES=1):
        store_file(
            partner=partner, data=png(), filename="out.png", content_type="image/png", purpose=FilePurpose.GENERATED
        )
        store_file(
            partner=partner, data=png(), filename="out.png", content_type="image/png", purpose=FilePurpose.GENERATED
        )
        assert storage_use(partner_id=partner.pk).files == 2
        with pytest.raises(LimitReached, match="2 of 1 files are stored") as refused:
            store_image(partner=partner, image=check_image_bytes(png()))
        assert refused.value.code == "storage_quota_exceeded"


def test_the_portal_usage_page_shows_the_storage_in_use_and_the_limits(client, partner, api):
    from django.contrib.auth import get_user_model

    from partners.services import membership_add

    api.post("/api/v1/files", {"file": image_upload(png())}, format="multipart")
    user = get_user_model().objects.create_user("viewer", password="pw-long-enough-1")
    membership_add(partner=partner, user=user, role="viewer", actor="test")
    client.force_login(user)
    with override_settings(ALLIANCE_STORAGE_MAX_FILES=7, ALLIANCE_MAX_ACTIVE_TUNING_JOBS=5):
        page = client.get("/portal/usage/").content.decode()
    table = page[page.index('data-testid="storage-table"') :]
    assert '<td class="num">1</td>\n      <td class="num">7</td>' in table
    assert '<td class="num">0</td><td class="num">5</td>' in table
    assert "1.0\xa0GB" in table  # the default byte limit


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_never_exceed_the_file_limit():
    partner = make_partner("Elsevier", sector="education")
    image = CheckedImage(data=png(), format="PNG", width=8, height=8)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def upload() -> None:
        try:
            barrier.wait()
            store_image(partner=partner, image=image)
            outcomes.append("stored")
        except Exception as exc:  # noqa: BLE001 - the refusal is the outcome under test
            outcomes.append(getattr(exc, "code", repr(exc)))
        finally:
            connection.close()

    with override_settings(ALLIANCE_STORAGE_MAX_FILES=3):
        threads = [threading.Thread(target=upload) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(outcomes) == ["storage_quota_exceeded"] * 5 + ["stored"] * 3
    assert StoredFile.objects.filter(partner=partner).count() == 3


def test_uploads_spend_the_keys_write_bucket_and_reads_do_not(partner):
    _, raw = make_key(partner)
    api = client_for(raw)
    with override_settings(ALLIANCE_API_KEY_WRITE_RPM=2):
        codes = [
            api.post("/api/v1/files", {"file": image_upload(png())}, format="multipart").status_code for _ in range(2)
        ]
        refused = api.post("/api/v1/datasets", {"file": dataset_upload(), "task": "classification"}, format="multipart")
        also_refused = api.post("/v1/files", {"file": dataset_upload(), "purpose": "fine-tune"}, format="multipart")
        reads = [api.get("/api/v1/files").status_code for _ in range(3)]
    assert codes == [201, 201]
    assert refused.status_code == also_refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused["x-ratelimit-limit-requests"] == "2" and refused["x-ratelimit-remaining-requests"] == "0"
    assert reads == [200, 200, 200]
    other_key = client_for(make_key(partner)[1])  # the bucket is per key
    assert other_key.post("/api/v1/files", {"file": image_upload(png())}, format="multipart").status_code == 201
