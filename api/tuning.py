"""Datasets and tuning jobs over the native API; and the models a partner may use."""

from __future__ import annotations

from django.conf import settings
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from alliance.api.pagination import NewestFirstCursorPagination
from api.base import ANY_KEY, PartnerApiView
from inference import selectors, tuning_config
from inference.registry import model_specs
from inference.representations import dataset_representation, timestamp, tuning_job_representation
from inference.services import tuning_datasets, tuning_jobs
from partners import scopes

MULTIPART_OVERHEAD_BYTES = 64 * 1024


class DatasetCollectionApi(PartnerApiView):
    required_scopes = {"GET": scopes.DATASETS_READ, "POST": scopes.DATASETS_WRITE}
    parser_classes = [MultiPartParser]
    max_body_bytes = settings.ALLIANCE_DATASET_MAX_BYTES + MULTIPART_OVERHEAD_BYTES

    def get(self, request: Request) -> Response:
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(selectors.datasets_of(partner=self.partner), request, view=self)
        return paginator.get_paginated_response([dataset_representation(dataset) for dataset in page])

    def post(self, request: Request) -> Response:
        self.check_request_rate(request, "write", settings.ALLIANCE_API_KEY_WRITE_RPM)  # uploads: the write bucket
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
        dataset = tuning_datasets.dataset_create(partner=self.partner, data=data, filename=upload.name or "", task=task)
        return Response(dataset_representation(dataset), status=status.HTTP_201_CREATED)


class DatasetDetailApi(PartnerApiView):
    required_scopes = {"GET": scopes.DATASETS_READ, "DELETE": scopes.DATASETS_WRITE}

    def get(self, request: Request, dataset_id: str) -> Response:
        return Response(dataset_representation(selectors.dataset_of(partner=self.partner, dataset_id=dataset_id)))

    def delete(self, request: Request, dataset_id: str) -> Response:
        tuning_datasets.dataset_delete(dataset=selectors.dataset_of(partner=self.partner, dataset_id=dataset_id))
        return Response({"id": dataset_id, "object": "dataset", "deleted": True})


class TuningJobCollectionApi(PartnerApiView):
    required_scopes = {"GET": scopes.TUNING, "POST": scopes.TUNING}

    def get(self, request: Request) -> Response:
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(selectors.tuning_jobs_of(partner=self.partner), request, view=self)
        return paginator.get_paginated_response([tuning_job_representation(job) for job in page])

    def post(self, request: Request) -> Response:
        job = tuning_jobs.tuning_job_create(api_key=self.api_key, body=request.data)
        return Response(tuning_job_representation(job), status=status.HTTP_201_CREATED)


class TuningEstimateApi(PartnerApiView):
    required_scopes = {"POST": scopes.TUNING}

    def post(self, request: Request) -> Response:
        dataset, figures = tuning_jobs.tuning_request_estimate(partner=self.partner, body=request.data)
        return Response({"object": "tuning_estimate", "dataset": dataset.public_id, **figures})


class TuningJobDetailApi(PartnerApiView):
    required_scopes = {"GET": scopes.TUNING}

    def get(self, request: Request, job_id: str) -> Response:
        return Response(tuning_job_representation(selectors.tuning_job_of(partner=self.partner, job_id=job_id)))


class TuningJobEventsApi(PartnerApiView):
    required_scopes = {"GET": scopes.TUNING}

    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.tuning_job_of(partner=self.partner, job_id=job_id)
        events = [
            {
                "object": "tuning_event",
                "kind": event.kind,
                "level": event.level,
                "message": event.message,
                "data": event.data,
                "step": event.step,
                "epoch": event.epoch,
                "loss": event.loss,
                "learning_rate": event.learning_rate,
                "created_at": timestamp(event.created_at),
            }
            for event in selectors.tuning_events_of(job=job)
        ]
        return Response({"object": "list", "data": events})


class TuningJobCancelApi(PartnerApiView):
    required_scopes = {"POST": scopes.TUNING}

    def post(self, request: Request, job_id: str) -> Response:
        job = tuning_jobs.tuning_job_cancel(job=selectors.tuning_job_of(partner=self.partner, job_id=job_id))
        return Response(tuning_job_representation(job))


class ModelListApi(PartnerApiView):
    """The platform's models, and the partner's tuned models of capabilities this key may use."""

    required_scopes = {"GET": ANY_KEY}

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
            for tuned in selectors.tuned_models_of(partner=self.partner, capabilities=self.allowed_capabilities)
        ]
        return Response({"object": "list", "data": data})
