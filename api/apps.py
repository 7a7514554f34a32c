from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The HTTP API: the native /api/v1 and the OpenAI-compatible /v1. Stands above the domain apps."""

    name = "api"

    def ready(self) -> None:
        from api import schema  # noqa: F401 - registers the API key scheme with drf-spectacular
