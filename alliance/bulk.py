"""Many rows in one INSERT with one parameter: on PostgreSQL a JSON array that `jsonb_to_recordset` expands into
rows, so the statement's cost is one json.dumps and one server-side parse instead of Django's per-value adaptation
(bulk_create spends ~2 ms a row of a wide table on that); elsewhere (SQLite, the embedded default) bulk_create.

Rows come as plain dicts by attribute name (insert_rows, rows_statement): building a model instance costs ~50 us a
row of a wide table, a third of accepting a batch; a caller that has the instance anyway (a single submission's job,
which its answer shows) passes it to insert_statement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.utils import timezone


class _RowEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder keeping a datetime's microseconds (it cuts them to milliseconds): the row holds exactly the
    instance's values, as an ordinary INSERT would."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            return o.isoformat()
        return super().default(o)


_encoder = _RowEncoder(separators=(",", ":"))


def insert_statement(objects: Sequence[models.Model]) -> tuple[str, list[str]]:
    """PostgreSQL only: the INSERT of unsaved model instances of one model, as they are (their Python defaults and
    auto_now_add values applied, primary keys set by the caller), as (SQL, parameters) for a caller that composes it
    into a larger statement (a WHERE clause may follow it)."""
    fields, sql = _insert_sql(type(objects[0]))
    rows = [{field.column: field.pre_save(obj, add=True) for field in fields} for obj in objects]
    return sql, [_encoder.encode(rows)]


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, Any]]) -> None:
    """Inserts rows of `model` given as {attname: value} dicts, all with the same keys (foreign keys by their `_id`
    attribute). A field the rows leave out takes its default, computed once for all rows (auto_now_add: one `now` on
    PostgreSQL); a unique field (the primary key included) must be given."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        _missing(model, rows[0].keys())
        model._default_manager.bulk_create([model(**row) for row in rows])
        return
    sql, params = rows_statement(model, rows)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def rows_statement(model: type[models.Model], rows: Sequence[dict[str, Any]]) -> tuple[str, list[str]]:
    """PostgreSQL only: the INSERT of insert_rows as (SQL, parameters), for a caller that composes it."""
    fields, sql = _insert_sql(model)
    keys = rows[0].keys()
    missing = _missing(model, keys)
    blank = model()  # the defaults, once
    defaults = {field.column: _default(field, blank) for field in missing}
    given = [(field.attname, field.column) for field in fields if field.attname in keys]
    return sql, [_encoder.encode([{**defaults, **{column: row[name] for name, column in given}} for row in rows])]


def _missing(model: type[models.Model], keys: Collection[str]) -> list[models.Field]:
    """The inserted fields the rows leave out; refuses keys that are no inserted field, and a unique field left out."""
    fields, _ = _insert_sql(model)
    unknown = set(keys) - {field.attname for field in fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no inserted field {', '.join(sorted(unknown))}.")
    missing = [field for field in fields if field.attname not in keys]
    unique = [field.name for field in missing if field.unique]
    if unique:
        raise ValueError(f"Rows of {model.__name__} must give their unique {', '.join(unique)}.")
    return missing


def _default(field: models.Field, blank: models.Model) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return timezone.now() if isinstance(field, models.DateTimeField) else dt.date.today()  # as pre_save
    return getattr(blank, field.attname)


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
