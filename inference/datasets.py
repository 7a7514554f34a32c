"""Training data files: parse JSONL or CSV, validate rows for a task, count what is in them.

Every problem is reported with its line number (at most MAX_PROBLEMS of them), so a partner can fix a file
in one go. Web-safe: no torch.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

MAX_FIELD_CHARS = 4_000
MAX_LABEL_CHARS = 100
MAX_LABELS = 100
MIN_ROWS = 10
MAX_PROBLEMS = 50
COLUMNS = {"classification": ("text", "label"), "generation": ("prompt", "completion"), "chat": ("messages",)}
ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


class DatasetRejected(ValueError):
    def __init__(self, code: str, problems: list[Problem], *, too_large: bool = False) -> None:
        super().__init__(problems[0].message if problems else code)
        self.code = code
        self.problems = problems
        self.too_large = too_large


@dataclass
class ParsedDataset:
    format: str
    rows: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


def estimate_tokens(*texts: str) -> int:
    return math.ceil(sum(len(text) for text in texts) / 4)


def row_tokens(task: str, row: dict[str, Any]) -> int:
    if task == "chat":
        return estimate_tokens(*(message["content"] for message in row["messages"]))
    return estimate_tokens(*(str(row[column]) for column in COLUMNS[task]))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetRejected(
            "invalid_encoding", [Problem(line, f"line {line}: the file is not valid UTF-8 (byte {exc.start}).")]
        ) from None


def _detect_format(filename: str, text: str) -> str:
    lowered = filename.lower()
    if lowered.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if lowered.endswith((".csv", ".tsv")):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _jsonl_records(text: str, problems: list[Problem]) -> list[tuple[int, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, f"line {number}: not valid JSON ({exc.msg})."))
        except RecursionError:
            problems.append(Problem(number, f"line {number}: arrays and objects nest too deeply."))
    return records


def _csv_records(text: str, task: str, problems: list[Problem]) -> list[tuple[int, Any]]:
    if task == "chat":
        raise DatasetRejected("unsupported_format", [Problem(None, "Chat data must be JSONL with a `messages` list.")])
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        missing = [column for column in COLUMNS[task] if column not in (reader.fieldnames or [])]
        if missing:
            found = ", ".join(reader.fieldnames or []) or "none"
            raise DatasetRejected(
                "missing_columns", [Problem(1, f"line 1: the header lacks {', '.join(missing)} (found: {found}).")]
            )
        return [(reader.line_num, row) for row in reader]
    except csv.Error as exc:  # a field over csv's size limit, an unterminated quote at the end
        line = reader.line_num + 1  # the record after the last one read whole
        raise DatasetRejected("invalid_csv", [Problem(line, f"line {line}: not valid CSV ({exc}).")]) from None


def _text(record: dict, column: str, number: int, problems: list[Problem], limit: int = MAX_FIELD_CHARS) -> str | None:
    value = record.get(column)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and column == "label":
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(number, f"line {number}: `{column}` must be a non-empty string."))
        return None
    if len(value) > limit:
        problems.append(Problem(number, f"line {number}: `{column}` is {len(value)} characters; the limit is {limit}."))
        return None
    return value.strip() if column == "label" else value


def _row(task: str, record: Any, number: int, problems: list[Problem]) -> dict[str, Any] | None:
    if not isinstance(record, dict):
        problems.append(Problem(number, f"line {number}: each line must be a JSON object."))
        return None
    if task == "chat":
        return _chat_row(record, number, problems)
    missing = [column for column in COLUMNS[task] if column not in record]
    if missing:
        problems.append(Problem(number, f"line {number}: missing {', '.join(f'`{c}`' for c in missing)}."))
        return None
    values = {
        column: _text(record, column, number, problems, MAX_LABEL_CHARS if column == "label" else MAX_FIELD_CHARS)
        for column in COLUMNS[task]
    }
    return None if None in values.values() else values


def _chat_row(record: dict, number: int, problems: list[Problem]) -> dict[str, Any] | None:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append(Problem(number, f"line {number}: `messages` must be a non-empty list."))
        return None
    clean = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(
                Problem(number, f"line {number}: messages[{index}] needs a role of system, user or assistant.")
            )
            return None
        content = _text(message, "content", number, problems)
        if content is None:
            return None
        clean.append({"role": message["role"], "content": content})
    if not any(message["role"] == "assistant" for message in clean):
        problems.append(Problem(number, f"line {number}: a chat example needs at least one assistant message."))
        return None
    return {"messages": clean}


def _stats(task: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = [row_tokens(task, row) for row in rows]
    stats: dict[str, Any] = {
        "rows": len(rows),
        "tokens": sum(tokens),
        "mean_tokens_per_row": round(sum(tokens) / len(rows), 1),
        "max_tokens_per_row": max(tokens),
    }
    if task == "classification":
        stats["labels"] = dict(sorted(Counter(row["label"] for row in rows).items()))
    return stats


def parse_dataset(data: bytes, filename: str, task: str) -> ParsedDataset:
    if task not in COLUMNS:
        raise DatasetRejected("invalid_task", [Problem(None, f"`task` must be one of {', '.join(COLUMNS)}.")])
    if len(data) > settings.ALLIANCE_DATASET_MAX_BYTES:
        message = f"The file is {len(data)} bytes; the limit is {settings.ALLIANCE_DATASET_MAX_BYTES}."
        raise DatasetRejected("dataset_too_large", [Problem(None, message)], too_large=True)
    text = _decode(data)
    problems: list[Problem] = []
    file_format = _detect_format(filename, text)
    records = _jsonl_records(text, problems) if file_format == "jsonl" else _csv_records(text, task, problems)
    if len(records) > settings.ALLIANCE_DATASET_MAX_ROWS:
        message = f"The file has {len(records)} rows; the limit is {settings.ALLIANCE_DATASET_MAX_ROWS}."
        raise DatasetRejected("too_many_rows", [Problem(None, message)], too_large=True)
    rows = [row for number, record in records if (row := _row(task, record, number, problems)) is not None]
    if problems:
        raise DatasetRejected("invalid_rows", problems[:MAX_PROBLEMS])
    if len(rows) < MIN_ROWS:
        raise DatasetRejected("too_few_rows", [Problem(None, f"The file has {len(rows)} rows; at least {MIN_ROWS}.")])
    if task == "classification":
        labels = {row["label"] for row in rows}
        if len(labels) < 2:
            raise DatasetRejected("too_few_labels", [Problem(None, "Classification needs at least 2 distinct labels.")])
        if len(labels) > MAX_LABELS:
            message = f"The file has {len(labels)} labels; the limit is {MAX_LABELS}."
            raise DatasetRejected("too_many_labels", [Problem(None, message)])
    return ParsedDataset(format=file_format, rows=rows, stats=_stats(task, rows))
