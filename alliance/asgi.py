"""The web process: gunicorn with uvicorn workers serves this (the Procfile's `web` line, docker-compose, `up`).

Views run in threads as under WSGI, except those that wait on a job (api.waiting), which await it on the event loop
and hold no thread. Each process keeps a small pool of database connections (ALLIANCE_DB_POOL_SIZE). Django's handler
with the plain middleware fused (alliance.middleware_fusion): a request's hooks of each kind in one thread hop."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alliance.settings")
os.environ.setdefault("ALLIANCE_DB_POOL_SIZE", "10")
django.setup(set_prefix=False)

from alliance.middleware_fusion import FusedASGIHandler  # noqa: E402 - needs the settings configured

application = FusedASGIHandler()
