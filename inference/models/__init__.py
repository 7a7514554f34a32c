from inference.models.jobs import (
    FINISHED_STATUSES,
    FilePurpose,
    Job,
    JobStatus,
    JobStreamEvent,
    StoredFile,
    WebhookDelivery,
)
from inference.models.tuning import (
    Dataset,
    DatasetTask,
    DatasetTokenCount,
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
    "DatasetTokenCount",
    "FilePurpose",
    "Job",
    "JobStatus",
    "JobStreamEvent",
    "StoredFile",
    "TunedModel",
    "TuningEvent",
    "TuningEventKind",
    "TuningJob",
    "TuningStatus",
    "WebhookDelivery",
]
