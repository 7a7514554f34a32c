from django.apps import AppConfig


class UsecasesConfig(AppConfig):
    name = "usecases"
    default_auto_field = "django.db.models.BigAutoField"
