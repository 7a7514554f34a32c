"""alliance.bulk.insert_rows: rows given as dicts land as Django would save the same values, defaults included."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from alliance.bulk import insert_rows
from alliance.ids import uuid7
from inference.models import Job
from partners.models import UsageKind, UsageRecord
from tests.factories import make_key, make_partner

pytestmark = pytest.mark.django_db

SKIP = {"id", "created_at"}


def test_rows_take_the_same_defaults_as_a_saved_instance():
    partner = make_partner("Woori Bank")
    key, _ = make_key(partner)
    values = {"partner_id": partner.pk, "api_key_id": key.pk, "capability": "summarization", "model": "m"}
    values |= {"queue": "llm", "input": {"text": "안녕하세요", "n": [1, 2]}, "units": 7, "custom_id": "r1"}
    saved = Job.objects.create(**values)
    inserted_id = uuid7()
    insert_rows(Job, [{"id": inserted_id, **values}])
    inserted = Job.objects.get(pk=inserted_id)
    assert {k: v for k, v in model_to_dict(inserted).items() if k not in SKIP} == {
        k: v for k, v in model_to_dict(saved).items() if k not in SKIP
    }
    assert inserted.status == "queued" and inserted.params == {} and inserted.output is None
    assert inserted.created_at is not None and abs((inserted.created_at - saved.created_at).total_seconds()) < 60


def test_many_rows_in_one_statement_each_as_given():
    partner = make_partner("EBS")
    rows = [
        {"partner_id": partner.pk, "capability": "dialogue", "job_id": uuid7(), "kind": UsageKind.CHARGE}
        | {"units": units, "month": "2026-12-01"}
        for units in (1, 2, 3)
    ]
    insert_rows(UsageRecord, rows)
    stored = UsageRecord.objects.filter(partner=partner).order_by("units")
    assert [(r.job_id, r.units, r.api_key_id) for r in stored] == [(row["job_id"], row["units"], None) for row in rows]
    stamps = sorted(r.created_at for r in stored)
    assert (stamps[-1] - stamps[0]).total_seconds() < 1  # the insertion's time (one `now` on PostgreSQL)


def test_a_missing_unique_field_or_an_unknown_one_is_refused():
    partner = make_partner("LG Uplus")
    row = {"partner_id": partner.pk, "capability": "c", "model": "m", "queue": "q", "input": {}}
    with pytest.raises(ValueError, match="unique id"):
        insert_rows(Job, [row])
    with pytest.raises(ValueError, match="no inserted field colour"):
        insert_rows(Job, [{"id": uuid7(), **row, "colour": "red"}])
    assert not Job.objects.exists()
