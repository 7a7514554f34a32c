"""Signals the job lifecycle sends, for the apps above inference (which it must not import).

`jobs_finished` is sent once a finishing transaction commits (a worker's success or failure, a cancel, the reaper
giving up), with `job_ids`: the ids of the jobs that reached a final state. Receivers run in the process that
finished the jobs (a worker, or the web process for a cancel); an exception in one is logged, never raised into the
job's path.
"""

from __future__ import annotations

from django.dispatch import Signal

jobs_finished = Signal()
