from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The web UI for people: the gallery, the partner portal and the playground. Stands above the domain apps."""

    name = "portal"
