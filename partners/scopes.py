"""The scopes an API key may carry: the one vocabulary, written once.

A key with no scopes may do everything. A key with scopes may do exactly what they grant, nothing more:

- a capability scope (a capability's name, e.g. `keyword_extraction`) lets it submit jobs of that capability;
- a resource scope lets it read or change one kind of resource. Jobs are seen through the key's capabilities:
  `jobs:read` shows only jobs of capabilities the key may submit, so combine the two.

`admin` grants the account's secrets (the webhook signing secret) and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

from capabilities import CAPABILITY_NAMES

CAPABILITY_SCOPES: tuple[str, ...] = CAPABILITY_NAMES

JOBS_READ = "jobs:read"
JOBS_WRITE = "jobs:write"
FILES_READ = "files:read"
FILES_WRITE = "files:write"
DATASETS_READ = "datasets:read"
DATASETS_WRITE = "datasets:write"
TUNING = "tuning"
USAGE_READ = "usage:read"
ADMIN = "admin"

RESOURCE_SCOPES: dict[str, str] = {
    JOBS_READ: "List and read jobs and batches of the key's capabilities, with their outputs (generated images "
    "included).",
    JOBS_WRITE: "Cancel jobs and batches of the key's capabilities.",
    FILES_READ: "List, read and download files (uploaded and generated images, batch input and output files).",
    FILES_WRITE: "Upload and delete files (images, batch input files).",
    DATASETS_READ: "List and read tuning datasets.",
    DATASETS_WRITE: "Upload and delete tuning datasets.",
    TUNING: "Estimate, start, read and cancel tuning (fine-tuning) jobs; this spends the tuning quota.",
    USAGE_READ: "Read usage and quotas.",
    ADMIN: "Read the webhook signing secret.",
}

ALL_SCOPES: tuple[str, ...] = (*CAPABILITY_SCOPES, *RESOURCE_SCOPES)


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    return [scope for scope in scopes if scope not in ALL_SCOPES]


def capability_scopes(scopes: Iterable[str]) -> list[str]:
    return [scope for scope in scopes if scope in CAPABILITY_SCOPES]
