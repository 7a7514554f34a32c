"""The texts the pages' scripts write (a run's progress, a job's state, a result's labels), marked for translation
here and handed to each page as JSON (`{{ texts|json_script:"..." }}`): the scripts read them instead of carrying
English, so the catalogue (locale/<lang>/django.po) covers them like any other text. Placeholders are Python's
`%(name)s`, filled in by the script."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# A recipe step's state, as the showcase page shows it (a job's status, or the run's for steps without a job).
STEP_STATUSES = {
    "waiting": pgettext_lazy("step status", "waiting"),
    "queued": pgettext_lazy("step status", "queued"),
    "running": pgettext_lazy("step status", "running"),
    "succeeded": pgettext_lazy("step status", "succeeded"),
    "failed": pgettext_lazy("step status", "failed"),
    "canceled": pgettext_lazy("step status", "canceled"),
    "skipped": pgettext_lazy("step status", "skipped"),
}

RECIPE_TEXTS = {
    "statuses": STEP_STATUSES,
    "starting": _("Starting…"),
    "running": _("Running: %(done)s of %(total)s steps done"),
    "done_one": _("Done: %(done)s step"),
    "done": _("Done: %(done)s steps"),
    "failed": _("Failed: %(message)s"),
    "not_started": _("The run could not start."),
    "recorded": _("Recorded as a result."),
    "generated": _("Generated: %(prompt)s"),
}

PLAYGROUND_TEXTS = {
    "role_of_turn": _("Role of turn %(n)s"),
    "turn": _("Turn %(n)s"),
    "remove_turn": _("Remove turn %(n)s"),
    "score": _("Score %(score)s"),
    "label": _("Label: "),
    "method": _("Method: %(method)s"),
    "keyword_score": _("score %(score)s"),
    "generated": _("Generated: %(prompt)s"),
    "succeeded_unit": _("Succeeded · %(units)s unit"),
    "succeeded_units": _("Succeeded · %(units)s units"),
    "job_details": _("job details"),
    "job_ended": _("The job %(status)s (its units are refunded)."),
    "no_output": _("No output."),
    "job_state": _("Job %(status)s…"),
    "request_failed": _("The request failed (HTTP %(status)s)."),
    "not_run": _("Not run."),
    "generating": _("Generating…"),
    "choose_image": _("Choose an image first."),
    "submitting": _("Submitting…"),
    "statuses": STEP_STATUSES,
}
