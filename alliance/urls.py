from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from alliance.api import errors
from inference.playground.views import api_docs

API_PREFIXES = ("/api/", "/v1/")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include("inference.urls")),
    path("api/v1/", include("partners.urls")),
    path("v1/", include("inference.openai.urls")),
    path("api/guide/", api_docs, name="api-guide"),
    path("portal/", include("partners.portal.urls")),
    path("playground/", include("inference.playground.urls")),
    path("", include("usecases.urls")),
]

if settings.ALLIANCE_BENCH_ENDPOINTS:
    from alliance.api.bench import BareApi

    urlpatterns.append(path("api/bench/bare", BareApi.as_view()))


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(API_PREFIXES):
        return errors.json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIXES):
        return errors.json_server_error(request)
    return defaults.server_error(request)
