from django.urls import path

from monitoring.views import healthz, metrics_view, readyz

# /healthz and /readyz are answered by monitoring.middleware first; the routes name them for reverse() and for a
# stack that runs without the middleware.
urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
