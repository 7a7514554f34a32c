from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Operations"

    def ready(self) -> None:
        from monitoring import signals  # noqa: F401 - connects the Django and Celery signal receivers
