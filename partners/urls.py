from django.urls import path

from partners import apis

urlpatterns = [
    path("usage", apis.UsageApi.as_view(), name="usage"),
    path("me", apis.MeApi.as_view(), name="me"),
]
