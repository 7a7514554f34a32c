from __future__ import annotations

from urllib.parse import urlencode

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from portal.gallery.forms import GalleryFilterForm
from usecases.images import served_content_type
from usecases.selectors import image_for_viewer, published_usecases, try_it, usecase_for_viewer


def gallery(request: HttpRequest) -> HttpResponse:
    form = GalleryFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    filters = {key: value for key, value in filters.items() if value}
    usecases = published_usecases(
        sector=filters.get("sector"),
        capability=filters.get("capability"),
        partner=filters.get("partner"),
        query=filters.get("q"),
    ).prefetch_related("images")
    featured = [] if filters else [usecase for usecase in usecases if usecase.featured]
    return render(
        request,
        "gallery/gallery.html",
        {"form": form, "filtered": bool(filters), "usecases": usecases, "featured": featured},
    )


def playground_url(usecase) -> str | None:
    target = try_it(usecase)
    if target is None:
        return None
    return reverse("playground:index") + "?" + urlencode({"capability": target[0], "usecase": usecase.slug})


def usecase_detail(request: HttpRequest, slug: str) -> HttpResponse:
    usecase = usecase_for_viewer(slug=slug, user=request.user)
    if usecase is None:
        raise Http404("No such showcase.")
    return render(
        request,
        "gallery/detail.html",
        {"usecase": usecase, "images": usecase.images.all(), "try_url": playground_url(usecase)},
    )


def usecase_image(request: HttpRequest, slug: str, image_id: int) -> FileResponse:
    image = image_for_viewer(image_id=image_id, user=request.user)
    if image is None or image.usecase.slug != slug:
        raise Http404("No such image.")
    try:
        handle = image.image.open("rb")
    except FileNotFoundError:
        raise Http404("The image is gone.") from None
    content_type = served_content_type(handle.read(16))
    if content_type is None:  # not PNG, JPEG or WebP, whatever its name says: never served
        handle.close()
        raise Http404("No such image.")
    handle.seek(0)
    response = FileResponse(handle, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "public, max-age=300" if image.usecase.is_public else "private, no-store"
    return response
