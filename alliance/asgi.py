"""The web process: gunicorn with uvicorn workers serves this (the Procfile's `web` line, docker-compose, `up`).

Views run in threads as under WSGI, except those that wait on a job (api.waiting), which await it on the event loop
and hold no thread. Each process keeps a small pool of database connections (ALLIANCE_DB_POOL_SIZE)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alliance.settings")
os.environ.setdefault("ALLIANCE_DB_POOL_SIZE", "10")
application = get_asgi_application()
