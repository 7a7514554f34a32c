"""Many rows in one INSERT with one parameter: on PostgreSQL a JSON array that `jsonb_to_recordset` expands into
rows, so the statement's cost is one json.dumps and one server-side parse instead of Django's per-value adaptation
(bulk_create spends ~2 ms a row of a wide table on that); elsewhere (SQLite, the embedded default) bulk_create."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models


class _RowEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder keeping a datetime's microseconds (it cuts them to milliseconds): the row holds exactly the
    instance's values, as an ordinary INSERT would."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return o.isoformat()
        return super().default(o)


_encoder = _RowEncoder(separators=(",", ":"))


def insert_many(objects: Sequence[models.Model]) -> None:
    """Inserts unsaved model instances of one model as they are (their Python defaults and auto_now_add values
    applied, primary keys set by the caller: nothing is read back)."""
    if not objects:
        return
    model = type(objects[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects)
        return
    sql, params = insert_statement(objects)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_statement(objects: Sequence[models.Model]) -> tuple[str, list[str]]:
    """PostgreSQL only: the INSERT of insert_many as (SQL, parameters), for a caller that composes it into a larger
    statement (a WHERE clause may follow it)."""
    fields, sql = _insert_sql(type(objects[0]))
    rows = [{field.column: field.pre_save(obj, add=True) for field in fields} for obj in objects]
    return sql, [_encoder.encode(rows)]


@cache
def _insert_sql(model: type[models.Model]) -> tuple[list[models.Field], str]:
    """The model's inserted fields and its INSERT ... SELECT FROM jsonb_to_recordset: the same for every call."""
    fields = [field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    types = ", ".join(f"{quote(field.column)} {field.db_type(connection)}" for field in fields)
    return fields, (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "
        f"SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS r({types})"
    )
