"""The production URL conf plus a bare DRF endpoint (no auth, answers {}) that benchmarks compare the real API
against. The settings choose this URL conf only when ALLIANCE_BENCH_ENDPOINTS is on."""

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alliance.urls import handler404, handler500
from alliance.urls import urlpatterns as production_urlpatterns


class BareApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request: Request) -> Response:
        return Response({})

    def post(self, request: Request) -> Response:
        return Response({})


urlpatterns = [path("api/bench/bare", BareApi.as_view()), *production_urlpatterns]
__all__ = ["handler404", "handler500", "urlpatterns"]
