from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from alliance.api import schema  # noqa: F401 - registers the API key scheme with drf-spectacular
