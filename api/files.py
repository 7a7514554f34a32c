"""Files: upload an image once and refer to it by id; download generated images. Owner only."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from alliance.api.pagination import NewestFirstCursorPagination
from api.base import PartnerApiView
from inference.images import (
    MAX_IMAGE_BYTES,
    ImageRejected,
    check_image_bytes,
    delete_stored_file,
    file_path,
    store_image,
)
from inference.models import StoredFile
from inference.selectors import file_of
from partners import scopes


def file_representation(stored: StoredFile) -> dict:
    return {
        "id": stored.public_id,
        "object": "file",
        "purpose": stored.purpose,
        "filename": stored.filename,
        "bytes": stored.bytes,
        "content_type": stored.content_type,
        "width": stored.width,
        "height": stored.height,
        "created_at": stored.created_at.isoformat().replace("+00:00", "Z"),
    }


class FileCollectionApi(PartnerApiView):
    required_scopes = {"GET": scopes.FILES_READ, "POST": scopes.FILES_WRITE}
    parser_classes = [MultiPartParser]
    max_body_bytes = MAX_IMAGE_BYTES + 64 * 1024

    def get(self, request: Request) -> Response:
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(StoredFile.objects.filter(partner=self.partner), request, view=self)
        return paginator.get_paginated_response([file_representation(stored) for stored in page])

    def post(self, request: Request) -> Response:
        self.check_request_rate(request, "write", settings.ALLIANCE_API_KEY_WRITE_RPM)  # uploads: the write bucket
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("Send the image as multipart field `file`.", code="required", param="file")
        purpose = request.data.get("purpose", "image")
        if purpose != "image":
            raise ApiError("Only `image` files can be uploaded here.", code="invalid_purpose", param="purpose")
        if upload.size > MAX_IMAGE_BYTES:
            raise ApiError(
                f"The image is {upload.size} bytes; the limit is {MAX_IMAGE_BYTES}.",
                code="image_too_large",
                status_code=413,
                param="file",
            )
        try:
            checked = check_image_bytes(upload.read())
        except ImageRejected as exc:
            status_code = 413 if exc.code == "image_too_large" else 400
            raise ApiError(str(exc), code=exc.code, status_code=status_code, param="file") from None
        stored = store_image(partner=self.partner, image=checked, filename=upload.name or "")
        return Response(file_representation(stored), status=status.HTTP_201_CREATED)


class FileDetailApi(PartnerApiView):
    required_scopes = {"GET": scopes.FILES_READ, "DELETE": scopes.FILES_WRITE}

    def get(self, request: Request, file_id: str) -> Response:
        return Response(file_representation(file_of(partner=self.partner, file_id=file_id)))

    def delete(self, request: Request, file_id: str) -> Response:
        stored = file_of(partner=self.partner, file_id=file_id)
        delete_stored_file(stored)
        return Response({"id": file_id, "object": "file", "deleted": True})


class FileContentApi(PartnerApiView):
    # jobs:read reaches the images its jobs generated: the URL in a job's output
    required_scopes = {"GET": (scopes.FILES_READ, scopes.JOBS_READ)}

    def get(self, request: Request, file_id: str) -> FileResponse:
        generated_by = None if self.has_scope(scopes.FILES_READ) else self.allowed_capabilities or ()
        stored = file_of(partner=self.partner, file_id=file_id, generated_by=generated_by)
        path = file_path(stored)
        if not path.exists():
            raise ApiError("The file's content is gone.", code="file_missing", status_code=404)
        response = FileResponse(path.open("rb"), content_type=stored.content_type, filename=stored.filename)
        response["X-Content-Type-Options"] = "nosniff"
        return response
