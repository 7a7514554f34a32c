"""Signals the job lifecycle sends, for the apps above inference (which it must not import).

`jobs_finished` is sent once a finishing transaction commits (a worker's success or failure, a cancel, the reaper
giving up), with `job_ids`: the ids of the jobs that reached a final state. Receivers run in the process that
finished the jobs (a worker, or the web process for a cancel); an exception in one is logged, never raised into the
job's path.
"""

from __future__ import annotations

from django.dispatch import Signal

jobs_finished = Signal()

# Sent once a tuning job's success has committed (on the tuning worker), with `job_id` and `model` (the tuned model's
# name): a showcase that shows the partner's tuned model records its results then. Receivers as above.
tuning_job_succeeded = Signal()
