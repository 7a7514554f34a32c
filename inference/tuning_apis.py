"""Datasets and tuning jobs over the native API; and the models a partner may use."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from alliance.api.pagination import NewestFirstCursorPagination
from alliance.api.views import PartnerApiView
from inference import selectors, tuning_config
from inference.models import Dataset, TunedModel, TuningJob
from inference.registry import model_specs
from inference.representations import timestamp
from inference.services import tuning

MULTIPART_OVERHEAD_BYTES = 64 * 1024


def dataset_representation(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.public_id,
        "object": "dataset",
        "task": dataset.task,
        "purpose": dataset.purpose,
        "filename": dataset.filename,
        "format": dataset.format,
        "bytes": dataset.bytes,
        "stats": dataset.stats,
        "estimate": tuning.tuning_estimate(dataset=dataset, hyperparameters={}),
        "created_at": timestamp(dataset.created_at),
    }


def tuning_job_representation(job: TuningJob) -> dict[str, Any]:
    tuned = TunedModel.objects.filter(tuning_job=job).values_list("name", flat=True).first()
    result = job.result or {}
    return {
        "id": str(job.pk),
        "object": "tuning_job",
        "dataset": job.dataset.public_id if job.dataset else None,
        "task": job.task,
        "base_model": job.base_model,
        "method": job.method,
        "hyperparameters": job.hyperparameters,
        "status": job.status,
        "progress": job.progress,
        "trainable_parameters": result.get("trainable_parameters"),
        "total_parameters": result.get("total_parameters"),
        "metrics": result.get("metrics"),
        "details": result.get("details"),
        "model": tuned,
        "error": job.error,
        "usage": {"units": job.units},
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
    }


class DatasetCollectionApi(PartnerApiView):
    parser_classes = [MultiPartParser]
    max_body_bytes = settings.ALLIANCE_DATASET_MAX_BYTES + MULTIPART_OVERHEAD_BYTES

    def get(self, request: Request) -> Response:
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(selectors.datasets_of(partner=self.partner), request, view=self)
        return paginator.get_paginated_response([dataset_representation(dataset) for dataset in page])

    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("Send the data as multipart field `file` (JSONL or CSV).", code="required", param="file")
        task = request.data.get("task")
        if task not in tuning_config.BASE_MODELS:
            raise ApiError(
                f"`task` must be one of {', '.join(tuning_config.BASE_MODELS)}.", code="invalid_task", param="task"
            )
        purpose = request.data.get("purpose", "fine-tune")
        if purpose != "fine-tune":
            raise ApiError("`purpose` must be fine-tune.", code="invalid_purpose", param="purpose")
        data = upload.read(upload.size) if upload.size is not None else upload.read()
        dataset = tuning.dataset_create(partner=self.partner, data=data, filename=upload.name or "", task=task)
        return Response(dataset_representation(dataset), status=status.HTTP_201_CREATED)


class DatasetDetailApi(PartnerApiView):
    def get(self, request: Request, dataset_id: str) -> Response:
        return Response(dataset_representation(selectors.dataset_of(partner=self.partner, dataset_id=dataset_id)))

    def delete(self, request: Request, dataset_id: str) -> Response:
        tuning.dataset_delete(dataset=selectors.dataset_of(partner=self.partner, dataset_id=dataset_id))
        return Response({"id": dataset_id, "object": "dataset", "deleted": True})


class TuningJobCollectionApi(PartnerApiView):
    def get(self, request: Request) -> Response:
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(selectors.tuning_jobs_of(partner=self.partner), request, view=self)
        return paginator.get_paginated_response([tuning_job_representation(job) for job in page])

    def post(self, request: Request) -> Response:
        job = tuning.tuning_job_create(api_key=self.api_key, body=request.data)
        return Response(tuning_job_representation(job), status=status.HTTP_201_CREATED)


class TuningEstimateApi(PartnerApiView):
    def post(self, request: Request) -> Response:
        clean, dataset = tuning.tuning_request_validated(partner=self.partner, body=request.data)
        figures = tuning.tuning_estimate(dataset=dataset, hyperparameters=clean["hyperparameters"])
        return Response({"object": "tuning_estimate", "dataset": dataset.public_id, **figures})


class TuningJobDetailApi(PartnerApiView):
    def get(self, request: Request, job_id: str) -> Response:
        return Response(tuning_job_representation(selectors.tuning_job_of(partner=self.partner, job_id=job_id)))


class TuningJobEventsApi(PartnerApiView):
    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.tuning_job_of(partner=self.partner, job_id=job_id)
        events = [
            {
                "object": "tuning_event",
                "level": event.level,
                "message": event.message,
                "data": event.data,
                "created_at": timestamp(event.created_at),
            }
            for event in job.events.all()
        ]
        return Response({"object": "list", "data": events})


class TuningJobCancelApi(PartnerApiView):
    def post(self, request: Request, job_id: str) -> Response:
        job = tuning.tuning_job_cancel(job=selectors.tuning_job_of(partner=self.partner, job_id=job_id))
        return Response(tuning_job_representation(job))


class ModelListApi(PartnerApiView):
    def get(self, request: Request) -> Response:
        data = [
            {
                "id": spec.name,
                "object": "model",
                "owned_by": "alliance",
                "capabilities": list(spec.capabilities),
                "family": spec.family,
            }
            for spec in model_specs().values()
        ]
        data += [
            {
                "id": tuned.name,
                "object": "model",
                "owned_by": self.partner.slug,
                "capabilities": [tuning_config.TASK_CAPABILITY[tuned.task]],
                "base_model": tuned.base_model,
                "labels": tuned.labels,
                "created_at": timestamp(tuned.created_at),
            }
            for tuned in TunedModel.objects.filter(partner=self.partner)
        ]
        return Response({"object": "list", "data": data})
