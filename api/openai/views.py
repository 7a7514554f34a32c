"""OpenAI-compatible endpoints: thin translations onto the platform's jobs, datasets and tuning jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpResponseBase
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from alliance.api.parsers import JsonRefused, json_loads_bounded
from api.base import ANY_KEY, PartnerApiView
from api.openai import parameters, translate
from api.streaming import EventStreamNegotiation, OpenAIChunks, sse_response
from api.waiting import AwaitJob, AwaitsJobs, job_awaited
from inference import selectors, tuning_config
from inference.images import FILE_ID_PREFIX, delete_stored_file, file_path, store_file
from inference.models import Dataset, FilePurpose, Job, JobStatus, StoredFile, TunedModel, TuningJob, TuningStatus
from inference.registry import model_specs
from inference.representations import tuning_checkpoint
from inference.services import tuning_datasets, tuning_jobs
from inference.services.waiting import wait_slot_take
from partners import scopes

OPENAI_STATUS = {TuningStatus.CANCELED: "cancelled"}
BATCH_PURPOSES = (FilePurpose.BATCH, FilePurpose.BATCH_OUTPUT)  # the stored files /v1/files shows
EMBEDDING_DIMENSIONS = 384  # all-MiniLM-L6-v2, the only embedder


class OpenAIView(PartnerApiView):
    """Adds OpenAI's `x-ratelimit-*-tokens` headers (the platform's units are its tokens)."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        for part in ("limit", "remaining", "reset"):
            if response.has_header(f"x-ratelimit-{part}-units"):
                response[f"x-ratelimit-{part}-tokens"] = response[f"x-ratelimit-{part}-units"]
        return response

    def body(self) -> dict[str, Any]:
        if not isinstance(self.request.data, dict):
            raise ApiError("The request body must be a JSON object.", code="invalid_body")
        return self.request.data


class JobEndpoint(AwaitsJobs, OpenAIView):
    """Each route submits one capability, so its scope is declared as that capability's (and checked again where
    the job is submitted)."""

    # The view is async (AwaitsJobs): it answers once the job finishes, holding no thread meanwhile.

    read_bucket = False
    content_negotiation_class = EventStreamNegotiation  # a streaming client may accept text/event-stream only

    def run_job(
        self,
        capability_name: str,
        data: dict[str, Any],
        params: dict[str, Any],
        model: Any,
        answer: Callable[[Job], HttpResponseBase],
    ) -> AwaitJob:
        """Submits the job and answers `answer(job)` once it succeeds; a failed job answers its error, one that does
        not finish within ALLIANCE_JOB_MAX_WAIT_SECONDS 504."""
        if not model:
            raise ApiError("`model` is required.", code="missing_required_parameter", param="model")
        return job_awaited(
            self,
            timeout=settings.ALLIANCE_JOB_MAX_WAIT_SECONDS,
            answer=lambda job: answer(_succeeded(job)),
            submit=lambda: (
                self.submit_job(
                    capability=capability_name,
                    data=data,
                    params=params,
                    model=model,
                    idempotency_key=self.request.headers.get("Idempotency-Key"),
                ).job
            ),
        )

    def stream_job(
        self, capability_name: str, data: dict[str, Any], params: dict[str, Any], body: dict[str, Any], *, chat: bool
    ) -> Any:
        """Submits the job and answers at once with its tokens as server-sent events (api.streaming.OpenAIChunks)
        while the worker generates them. The stream holds one of the key's waiting slots until it ends; a client
        that disconnects leaves the job running, stored and billed as usual."""
        include_usage = translate.include_usage(body)
        if not body.get("model"):
            raise ApiError("`model` is required.", code="missing_required_parameter", param="model")
        slot = wait_slot_take(api_key=self.api_key, hold_seconds=settings.ALLIANCE_STREAM_MAX_SECONDS + 30)
        try:
            submission = self.submit_job(
                capability=capability_name,
                data=data,
                params=params,
                model=body.get("model"),
                idempotency_key=self.request.headers.get("Idempotency-Key"),
            )
        except BaseException:
            slot.release()
            raise
        usage = translate.chat_usage if chat else translate.text_usage
        render = OpenAIChunks(submission.job, chat=chat, include_usage=include_usage, usage=usage)
        return sse_response(self.request, submission.job, render, on_close=slot.release)


def _succeeded(job: Job) -> Job:
    if job.status == JobStatus.SUCCEEDED:
        return job
    if job.status == JobStatus.FAILED:
        error = job.error or {}
        bad_input = error.get("code") == "invalid_input"
        raise ApiError(
            error.get("message", "The model failed."),
            code=error.get("code", "model_error"),
            status_code=400 if bad_input else 500,
        )
    raise ApiError(
        f"The job {job.pk} did not finish within {settings.ALLIANCE_JOB_MAX_WAIT_SECONDS:.0f} s; "
        f"poll GET /api/v1/jobs/{job.pk}.",
        code="timeout",
        status_code=504,
    )


class ChatCompletionsApi(JobEndpoint):
    required_scopes = {"POST": "dialogue"}

    def post(self, request: Request) -> Any:
        body = self.body()
        parameters.check("chat.completions", body)
        params = {**translate.sampling_params(body, allow_n=True), **translate.structured_params(body)}
        data = {"messages": translate.chat_messages(body.get("messages"))}
        if body.get("stream"):
            return self.stream_job("dialogue", data, params, body, chat=True)
        translate.include_usage(body)
        return self.run_job(
            "dialogue", data, params, body.get("model"), lambda job: Response(translate.chat_completion(job))
        )


class CompletionsApi(JobEndpoint):
    required_scopes = {"POST": "text_generation"}

    def post(self, request: Request) -> Any:
        body = self.body()
        parameters.check("completions", body)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError("`prompt` must be a string.", code="invalid_type", param="prompt")
        params = translate.sampling_params(body, allow_n=False)
        if body.get("stream"):
            return self.stream_job("text_generation", {"prompt": prompt}, params, body, chat=False)
        translate.include_usage(body)
        return self.run_job(
            "text_generation",
            {"prompt": prompt},
            params,
            body.get("model"),
            lambda job: Response(translate.text_completion(job)),
        )


class EmbeddingsApi(JobEndpoint):
    required_scopes = {"POST": "embeddings"}

    def post(self, request: Request) -> Response:
        body = self.body()
        parameters.check("embeddings", body)
        if body.get("dimensions") not in (None, EMBEDDING_DIMENSIONS):
            raise ApiError(
                f"`dimensions` must be {EMBEDDING_DIMENSIONS} (the model's size); shortening is not supported.",
                code="unsupported_parameter",
                param="dimensions",
            )
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise ApiError("`encoding_format` must be float or base64.", code="invalid_value", param="encoding_format")
        return self.run_job(
            "embeddings",
            {"texts": texts},
            {},
            body.get("model"),
            lambda job: Response(translate.embeddings_list(job, encoding_format)),
        )


class ImageGenerationsApi(JobEndpoint):
    required_scopes = {"POST": "image_generation"}

    def post(self, request: Request) -> Response:
        body = self.body()
        parameters.check("images.generations", body)
        params: dict[str, Any] = {"n": body.get("n") or 1}
        if body.get("steps") is not None:  # an extension (extra_body): the work, and the charge, per image
            params["steps"] = body["steps"]
        size = body.get("size") or "256x256"
        try:
            params["width"], params["height"] = (int(side) for side in str(size).lower().split("x"))
        except ValueError:
            raise ApiError("`size` must look like 256x256.", code="invalid_size", param="size") from None
        response_format = body.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            raise ApiError("`response_format` must be url or b64_json.", code="invalid_value", param="response_format")
        model = body.get("model") or "alliance-pattern-artist"
        return self.run_job(
            "image_generation",
            {"prompt": body.get("prompt")},
            params,
            model,
            lambda job: Response(translate.images_response(job, response_format, request.build_absolute_uri)),
        )


class ModelsApi(OpenAIView):
    required_scopes = {"GET": ANY_KEY}

    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": _models(self.partner, self.allowed_capabilities)})


class ModelDetailApi(OpenAIView):
    required_scopes = {"GET": ANY_KEY}

    def get(self, request: Request, model: str) -> Response:
        for entry in _models(self.partner, self.allowed_capabilities):
            if entry["id"] == model:
                return Response(entry)
        raise ApiError(f"No model {model!r} is available to you.", code="model_not_found", status_code=404)


def _models(partner: Any, capabilities: list[str] | None) -> list[dict[str, Any]]:
    """The platform's models, and the partner's tuned models of capabilities the key may use (None: all)."""
    models = [
        {"id": spec.name, "object": "model", "created": 0, "owned_by": "alliance"} for spec in model_specs().values()
    ]
    models += [
        {"id": tuned.name, "object": "model", "created": int(tuned.created_at.timestamp()), "owned_by": partner.slug}
        for tuned in selectors.tuned_models_of(partner=partner, capabilities=capabilities)
    ]
    return models


# ---------------------------------------------------------------- files and fine-tuning


def _file(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.public_id,
        "object": "file",
        "bytes": dataset.bytes,
        "created_at": int(dataset.created_at.timestamp()),
        "filename": dataset.filename,
        "purpose": "fine-tune",
        "status": "processed",
        "status_details": None,
    }


def _task_of(data: bytes) -> str:
    first = next((line for line in data.decode("utf-8-sig", errors="replace").splitlines() if line.strip()), "")
    try:
        record = json_loads_bounded(first)
    except JsonRefused:
        record = {column.strip(): "" for column in first.split(",")}
    if isinstance(record, dict) and "messages" in record:
        return "chat"
    if isinstance(record, dict) and "prompt" in record:
        return "generation"
    return "classification"


def _stored_file(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.public_id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": int(stored.created_at.timestamp()),
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "status_details": None,
    }


def _is_stored_file(file_id: str) -> bool:
    """Files of the platform (`file_...`: batch input and output, images) as against tuning datasets (`ds_...`)."""
    return file_id.startswith(FILE_ID_PREFIX)


class FilesApi(OpenAIView):
    """OpenAI's files: purpose `fine-tune` is a tuning dataset (datasets:read / datasets:write), purpose `batch` a
    batch's JSONL input (files:read / files:write); batches' output and error files are listed with purpose
    `batch_output`."""

    required_scopes = {
        "GET": (scopes.DATASETS_READ, scopes.FILES_READ),
        "POST": (scopes.DATASETS_WRITE, scopes.FILES_WRITE),
    }
    parser_classes = [MultiPartParser]
    max_body_bytes = settings.ALLIANCE_DATASET_MAX_BYTES + 64 * 1024

    def get(self, request: Request) -> Response:
        purpose = request.query_params.get("purpose")
        files: list[dict[str, Any]] = []
        if self.has_scope(scopes.DATASETS_READ) and purpose in (None, "fine-tune"):
            files += [_file(d) for d in selectors.datasets_of(partner=self.partner)[:100]]
        if self.has_scope(scopes.FILES_READ) and purpose != "fine-tune":
            stored = StoredFile.objects.filter(partner=self.partner, purpose__in=BATCH_PURPOSES)
            if purpose is not None:
                stored = stored.filter(purpose=purpose)
            files += [_stored_file(f) for f in stored[:100]]
        files.sort(key=lambda f: f["created_at"], reverse=True)
        return Response({"object": "list", "data": files[:100], "has_more": len(files) > 100})

    def post(self, request: Request) -> Response:
        self.check_request_rate(request, "write", settings.ALLIANCE_API_KEY_WRITE_RPM)  # uploads: the write bucket
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("Send the file as multipart field `file`.", code="missing_required_parameter", param="file")
        purpose = request.data.get("purpose")
        if purpose not in ("fine-tune", "batch"):
            raise ApiError("Only purposes fine-tune and batch are offered.", code="invalid_purpose", param="purpose")
        _require(self, scopes.FILES_WRITE if purpose == "batch" else scopes.DATASETS_WRITE)
        data = upload.read()
        if purpose == "batch":
            stored = store_file(
                partner=self.partner,
                data=data,
                filename=upload.name or "batch.jsonl",
                content_type="application/jsonl",
                purpose=FilePurpose.BATCH,
            )
            return Response(_stored_file(stored))
        dataset = tuning_datasets.dataset_create(
            partner=self.partner, data=data, filename=upload.name or "", task=_task_of(data)
        )
        return Response(_file(dataset))


def _require(view: OpenAIView, scope: str) -> None:
    if not view.has_scope(scope):
        raise ApiError(
            f"This API key lacks the scope this operation needs: `{scope}`.",
            code="insufficient_scope",
            status_code=403,
            details=[{"required_scopes": [scope]}],
        )


def _stored_of(view: OpenAIView, file_id: str) -> StoredFile:
    stored = selectors.file_of(partner=view.partner, file_id=file_id)
    if stored.purpose not in BATCH_PURPOSES:
        raise ApiError("No file with that id.", code="not_found", status_code=404)
    return stored


class FileDetailApi(OpenAIView):
    required_scopes = {
        "GET": (scopes.DATASETS_READ, scopes.FILES_READ),
        "DELETE": (scopes.DATASETS_WRITE, scopes.FILES_WRITE),
    }

    def get(self, request: Request, file_id: str) -> Response:
        if _is_stored_file(file_id):
            _require(self, scopes.FILES_READ)
            return Response(_stored_file(_stored_of(self, file_id)))
        _require(self, scopes.DATASETS_READ)
        return Response(_file(selectors.dataset_of(partner=self.partner, dataset_id=file_id)))

    def delete(self, request: Request, file_id: str) -> Response:
        if _is_stored_file(file_id):
            _require(self, scopes.FILES_WRITE)
            delete_stored_file(_stored_of(self, file_id))
        else:
            _require(self, scopes.DATASETS_WRITE)
            tuning_datasets.dataset_delete(dataset=selectors.dataset_of(partner=self.partner, dataset_id=file_id))
        return Response({"id": file_id, "object": "file", "deleted": True})


class FileContentApi(OpenAIView):
    """The content of a batch's input, output or error file (client.files.content); a tuning dataset's is not
    served back (as OpenAI does not serve fine-tune files)."""

    required_scopes = {"GET": scopes.FILES_READ}
    content_negotiation_class = EventStreamNegotiation  # any Accept (the SDK sends application/binary); errors JSON

    def get(self, request: Request, file_id: str) -> FileResponse:
        if not _is_stored_file(file_id):
            selectors.dataset_of(partner=self.partner, dataset_id=file_id)  # another partner's: 404
            raise ApiError("Files of purpose fine-tune cannot be downloaded.", code="invalid_purpose", param="file_id")
        stored = _stored_of(self, file_id)
        path = file_path(stored)
        if not path.exists():
            raise ApiError("The file's content is gone.", code="file_missing", status_code=404)
        response = FileResponse(path.open("rb"), content_type=stored.content_type, filename=stored.filename)
        response["X-Content-Type-Options"] = "nosniff"
        return response


def _fine_tuning_job(job: TuningJob) -> dict[str, Any]:
    tuned = TunedModel.objects.filter(tuning_job=job).values_list("name", flat=True).first()
    hyper = job.hyperparameters
    error = job.error or None
    return {
        "id": str(job.pk),
        "object": "fine_tuning.job",
        "created_at": translate.created(job),
        "finished_at": int(job.finished_at.timestamp()) if job.finished_at else None,
        "model": job.base_model,
        "fine_tuned_model": tuned,
        "organization_id": job.partner.slug,
        "status": OPENAI_STATUS.get(job.status, job.status),
        "training_file": job.dataset.public_id if job.dataset else None,
        "validation_file": None,
        "hyperparameters": {
            "n_epochs": hyper.get("epochs", "auto"),
            "batch_size": hyper.get("batch_size", "auto"),
            "learning_rate_multiplier": "auto",
        },
        "method": {"type": "supervised" if job.method == "default" else job.method},
        "trained_tokens": job.units if job.status == TuningStatus.SUCCEEDED else None,
        "result_files": [],
        "seed": hyper.get("seed", 0),
        "error": {"code": error["code"], "message": error["message"], "param": None} if error else None,
        "estimated_finish": None,
        "integrations": None,
        "metadata": {"trainable_parameters": str((job.result or {}).get("trainable_parameters"))},
    }


def _platform_tuning_body(body: dict[str, Any], partner: Any) -> dict[str, Any]:
    dataset = selectors.datasets_of(partner=partner).filter(public_id=str(body.get("training_file"))).first()
    if dataset is None:
        raise ApiError("No training file with that id.", code="file_not_found", status_code=404, param="training_file")
    method = (body.get("method") or {}).get("type", "supervised")
    hyper = dict(
        body.get("hyperparameters") or (body.get("method") or {}).get("supervised", {}).get("hyperparameters", {})
    )
    platform_hyper = {"epochs": hyper.get("n_epochs"), "batch_size": hyper.get("batch_size"), "seed": body.get("seed")}
    return {
        "dataset": dataset.public_id,
        "task": dataset.task,
        "base_model": body.get("model") or tuning_config.BASE_MODELS[dataset.task][0],
        "method": "default" if method == "supervised" else method,
        "hyperparameters": {key: value for key, value in platform_hyper.items() if isinstance(value, int)},
    }


class FineTuningJobsApi(OpenAIView):
    required_scopes = {"GET": scopes.TUNING, "POST": scopes.TUNING}

    def get(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "20")
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise ApiError("`limit` must be an integer from 1 to 100.", code="invalid_value", param="limit")
        jobs = selectors.tuning_jobs_of(partner=self.partner)[: int(raw)]
        return Response({"object": "list", "data": [_fine_tuning_job(job) for job in jobs], "has_more": False})

    def post(self, request: Request) -> Response:
        job = tuning_jobs.tuning_job_create(api_key=self.api_key, body=_platform_tuning_body(self.body(), self.partner))
        return Response(_fine_tuning_job(job), status=status.HTTP_200_OK)


class FineTuningJobDetailApi(OpenAIView):
    required_scopes = {"GET": scopes.TUNING}

    def get(self, request: Request, job_id: str) -> Response:
        return Response(_fine_tuning_job(selectors.tuning_job_of(partner=self.partner, job_id=job_id)))


class FineTuningJobEventsApi(OpenAIView):
    required_scopes = {"GET": scopes.TUNING}

    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.tuning_job_of(partner=self.partner, job_id=job_id)
        events = [
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{event.pk}",
                "created_at": int(event.created_at.timestamp()),
                "level": event.level,
                "message": event.message,
                "type": event.kind,
                "data": (
                    {"step": event.step, "train_loss": event.loss, "epoch": event.epoch}
                    if event.kind == "metrics"
                    else event.data
                ),
            }
            for event in selectors.tuning_events_of(job=job).order_by("-created_at", "-id")
        ]
        return Response({"object": "list", "data": events, "has_more": False})


class FineTuningJobCheckpointsApi(OpenAIView):
    """The checkpoint a finished job kept (one: the chosen epoch's adapter), in the OpenAI checkpoint shape."""

    required_scopes = {"GET": scopes.TUNING}

    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.tuning_job_of(partner=self.partner, job_id=job_id)
        checkpoint = tuning_checkpoint(job)
        tuned = TunedModel.objects.filter(tuning_job=job).values_list("name", flat=True).first()
        data = []
        if checkpoint is not None and tuned is not None:
            data.append(
                {
                    "object": "fine_tuning.job.checkpoint",
                    "id": f"ftckpt-{job.pk.hex[:12]}-{checkpoint['epoch']}",
                    "created_at": int(job.finished_at.timestamp()) if job.finished_at else translate.created(job),
                    "fine_tuned_model_checkpoint": tuned,
                    "fine_tuning_job_id": str(job.pk),
                    "step_number": checkpoint["step"] or 0,
                    "metrics": {
                        "step": checkpoint["step"],
                        "train_loss": checkpoint["train_loss"],
                        "valid_loss": checkpoint["validation_loss"],
                        "full_valid_loss": checkpoint["validation_loss"],
                    },
                }
            )
        return Response({"object": "list", "data": data, "has_more": False})


class FineTuningJobCancelApi(OpenAIView):
    required_scopes = {"POST": scopes.TUNING}

    def post(self, request: Request, job_id: str) -> Response:
        job = tuning_jobs.tuning_job_cancel(job=selectors.tuning_job_of(partner=self.partner, job_id=job_id))
        return Response(_fine_tuning_job(job))
