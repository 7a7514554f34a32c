"""The production URL conf plus a bare DRF endpoint (no auth, answers {}) and the floor of a submission (no auth,
one durable INSERT of the body into `bench_floor`, committed) that benchmarks compare the real API against. The
settings choose this URL conf only when ALLIANCE_BENCH_ENDPOINTS is on; the benchmark creates the table."""

from django.db import connection
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


class InsertApi(APIView):
    """One single-row INSERT in autocommit mode: one round trip, durable once answered (synchronous_commit)."""

    authentication_classes: list = []
    permission_classes: list = []

    def post(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_floor (body) VALUES (%s)", [request.body.decode()])
        return Response({})


urlpatterns = [
    path("api/bench/bare", BareApi.as_view()),
    path("api/bench/insert", InsertApi.as_view()),
    *production_urlpatterns,
]
__all__ = ["handler404", "handler500", "urlpatterns"]
