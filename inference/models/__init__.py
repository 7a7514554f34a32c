from inference.models.jobs import (
    FINISHED_STATUSES,
    FilePurpose,
    Job,
    JobStatus,
    StoredFile,
    WebhookDelivery,
)
from inference.models.tuning import (
    Dataset,
    DatasetTask,
    TunedModel,
    TuningEvent,
    TuningEventKind,
    TuningJob,
    TuningStatus,
)

__all__ = [
    "FINISHED_STATUSES",
    "Dataset",
    "DatasetTask",
    "FilePurpose",
    "Job",
    "JobStatus",
    "StoredFile",
    "TunedModel",
    "TuningEvent",
    "TuningEventKind",
    "TuningJob",
    "TuningStatus",
    "WebhookDelivery",
]
