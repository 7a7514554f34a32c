"""Time-ordered job ids: version 7 UUIDs whose order follows creation time."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from alliance.ids import uuid7
from inference.models import Job

MS_2026_11_29 = int(dt.datetime(2026, 11, 29, tzinfo=dt.UTC).timestamp() * 1000)


def test_a_uuid7_carries_its_version_variant_and_millisecond():
    value = uuid7(MS_2026_11_29)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == MS_2026_11_29


def test_uuid7s_sort_by_their_millisecond_and_stay_unguessable():
    earlier = [uuid7(MS_2026_11_29) for _ in range(1000)]
    later = [uuid7(MS_2026_11_29 + 1) for _ in range(1000)]
    assert max(earlier) < min(later)
    assert len(set(earlier)) == 1000  # 74 random bits: no two alike within one millisecond


def test_a_default_uuid7_is_stamped_now():
    before = dt.datetime.now(dt.UTC).timestamp() * 1000
    stamped = uuid7().int >> 80
    after = dt.datetime.now(dt.UTC).timestamp() * 1000
    assert int(before) <= stamped <= int(after) + 1


@pytest.mark.django_db
def test_job_ids_are_uuid7s_stamped_at_submission_in_order(api):
    from tests.factories import keyword_job

    ids = [uuid.UUID(api.post("/api/v1/jobs", keyword_job(), format="json").json()["id"]) for _ in range(3)]
    stamps = [i.int >> 80 for i in ids]
    assert all(i.version == 7 for i in ids)
    assert stamps == sorted(stamps)
    for job in Job.objects.filter(pk__in=ids):
        assert abs(job.created_at.timestamp() * 1000 - (job.pk.int >> 80)) < 1000
