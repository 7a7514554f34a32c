"""Settings, driven by the environment.

With nothing set, the platform runs embedded: SQLite, a filesystem broker and an
in-process cache. Set DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL / REDIS_URL
(Redis) for the distributed mode.

Naming: the prefix of an environment variable says whose setting it is, and a setting has the name of the variable
it reads. Only this file reads the environment; code reads `settings.<NAME>`.
- DJANGO_<NAME>: Django's own setting <NAME> (DJANGO_DEBUG -> DEBUG, DJANGO_CONN_MAX_AGE -> the database's
  CONN_MAX_AGE); Django fixes those names, so they are the one place where the prefix is dropped.
- CELERY_<NAME>: Celery's own setting CELERY_<NAME> (alliance/celery.py reads the CELERY_ namespace).
- DATABASE_URL, REDIS_URL: the services' addresses, under the names hosting platforms give them.
- ALLIANCE_<NAME>: the platform's own setting ALLIANCE_<NAME>, whether the environment sets it or not. A Django or
  Celery setting that follows from one is assigned from it here (MEDIA_ROOT = ALLIANCE_MEDIA_ROOT).
Nothing here writes to the file system: the directories under ALLIANCE_VAR_DIR are made by their users (`up`,
collectstatic, the Celery app for the filesystem broker, file storage); the embedded default's secrets file is read
here and written by `up`.
"""

import datetime as dt
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from alliance import local_secrets

BASE_DIR = Path(__file__).resolve().parent.parent
ALLIANCE_VAR_DIR = Path(os.environ.get("ALLIANCE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


DEBUG = env_bool("DJANGO_DEBUG", False)
# Secrets (alliance/local_secrets.py): DJANGO_SECRET_KEY, ALLIANCE_DATA_KEY and ALLIANCE_WEBHOOK_SIGNING_KEY, three
# independent random values. The distributed mode (a DATABASE_URL that is not SQLite) with DEBUG off refuses to start
# without each of them. The embedded default (SQLite) and DEBUG read the ones the environment leaves unset from
# ALLIANCE_SECRETS_FILE, which `manage.py up` writes with random values on its first start (the settings only read
# it); until then they are empty, and whatever needs one refuses to work.
ALLIANCE_EMBEDDED = (os.environ.get("DATABASE_URL") or "sqlite").startswith("sqlite")
ALLIANCE_SECRETS_FILE = ALLIANCE_VAR_DIR / local_secrets.FILENAME if ALLIANCE_EMBEDDED or DEBUG else None
_kept_secrets = local_secrets.read(ALLIANCE_SECRETS_FILE) if ALLIANCE_SECRETS_FILE else {}


def _secret(name: str) -> str:
    value = os.environ.get(name, "").strip() or _kept_secrets.get(name, "")
    if not value and ALLIANCE_SECRETS_FILE is None:
        raise ImproperlyConfigured(
            f"{name} is required with DEBUG off and DATABASE_URL set (the distributed mode): the same random value "
            f"for the web and every worker, e.g. {local_secrets.HOW_TO_MAKE[name]}"
        )
    if value and (problem := local_secrets.problem(name, value)):
        raise ImproperlyConfigured(problem)
    return value


SECRET_KEY = _secret("DJANGO_SECRET_KEY")
# Previous secret keys, comma-separated: sessions and tokens signed with them stay valid while they are listed.
SECRET_KEY_FALLBACKS = [k.strip() for k in os.environ.get("DJANGO_SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
# Encryption at rest (inference/encryption.py): new data is encrypted under ALLIANCE_DATA_KEY; blobs name the key
# they were encrypted under, and ALLIANCE_DATA_KEYS_OLD (comma-separated) keeps older ones readable until
# `manage.py rotate_data_key` has re-encrypted everything under the current key.
ALLIANCE_DATA_KEY = _secret("ALLIANCE_DATA_KEY")
ALLIANCE_DATA_KEYS_OLD = [key.strip() for key in os.environ.get("ALLIANCE_DATA_KEYS_OLD", "").split(",") if key.strip()]
for _old_key in ALLIANCE_DATA_KEYS_OLD:
    if local_secrets.problem("ALLIANCE_DATA_KEYS_OLD", _old_key):
        raise ImproperlyConfigured("Each key in ALLIANCE_DATA_KEYS_OLD must be urlsafe base64 of exactly 32 bytes.")
ALLIANCE_WEBHOOK_SIGNING_KEY = _secret("ALLIANCE_WEBHOOK_SIGNING_KEY")
_named_by: dict[str, str] = {}
for _name, _value in [
    ("DJANGO_SECRET_KEY", SECRET_KEY),
    ("ALLIANCE_DATA_KEY", ALLIANCE_DATA_KEY),
    ("ALLIANCE_WEBHOOK_SIGNING_KEY", ALLIANCE_WEBHOOK_SIGNING_KEY),
]:
    if _value in _named_by:
        raise ImproperlyConfigured(f"{_name} must differ from {_named_by[_value]}: each secret is its own value.")
    if _value:
        _named_by[_value] = _name
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "partners",
    "inference",
    "usecases",
    "api",
    "portal",
    "monitoring",
]

MIDDLEWARE = [
    # First: answers /healthz and /readyz before host checks, gives each request its id, logs and counts it.
    "monitoring.middleware.OperationsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "alliance.static_files.StaticFilesMiddleware",  # WhiteNoise, async-capable (ASGI)
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the switch's cookie, else Accept-Language, else English; the API in English (alliance/locale.py).
    "alliance.locale.SiteLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# django-axes checks every sign-in (the portal's and the admin's) before the password is: see "Sign-in throttling".
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

ROOT_URLCONF = "alliance.urls"
WSGI_APPLICATION = "alliance.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{ALLIANCE_VAR_DIR / 'alliance.sqlite3'}"),
        conn_max_age=env_int("DJANGO_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# The web under ASGI (alliance/asgi.py sets 10) runs each request in its own context, where a persistent connection
# is never reused: ALLIANCE_DB_POOL_SIZE > 0 gives the process a pool of at most that many PostgreSQL connections
# instead (psycopg_pool), which also bounds the connections that many concurrent requests open. A request waits at
# most 5 s for one (an unreachable database then answers 503).
ALLIANCE_DB_POOL_SIZE = env_int("ALLIANCE_DB_POOL_SIZE", 0)
if ALLIANCE_DB_POOL_SIZE > 0 and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": ALLIANCE_DB_POOL_SIZE,
        "timeout": 5.0,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
if not REDIS_URL and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    REDIS_URL = CELERY_BROKER_URL

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "alliance"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "alliance"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
# The web UI speaks English and Korean; the API's error messages stay English (as OpenAI's do).
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]  # .po kept in git, .mo compiled by bin/setup
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = ALLIANCE_VAR_DIR / "static"
MEDIA_URL = "media/"
ALLIANCE_MEDIA_ROOT = Path(os.environ.get("ALLIANCE_MEDIA_ROOT", ALLIANCE_VAR_DIR / "media"))
MEDIA_ROOT = ALLIANCE_MEDIA_ROOT

ALLIANCE_MAX_BODY_BYTES = env_int("ALLIANCE_MAX_BODY_BYTES", 2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = ALLIANCE_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasActiveApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["alliance.api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "alliance.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "api.schema.AllianceAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AI Alliance partner platform API",
    "DESCRIPTION": "Jobs for eight capabilities, files, datasets and tuning, usage; and an OpenAI-compatible "
    "surface under /v1/. Every call: `Authorization: Bearer <key>`. Errors: "
    '`{"error": {"type", "code", "message", "param"}}`.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["api.schema.document_errors_and_bodies"],
    "PREPROCESSING_HOOKS": ["api.schema.only_the_api"],
}

ALLIANCE_LOG_LEVEL = os.environ.get("ALLIANCE_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "monitoring.logs.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "events": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": ALLIANCE_LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One JSON line per request and per job state change (README, "Operating"); ALLIANCE_EVENT_LOG_LEVEL=WARNING
        # turns them off.
        "alliance.events": {
            "handlers": ["events"],
            "level": os.environ.get("ALLIANCE_EVENT_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}
# Operating (README, "Operating"): /metrics answers a staff session or `Authorization: Bearer <this token>`; unset,
# staff only. There is no default token.
ALLIANCE_METRICS_TOKEN = os.environ.get("ALLIANCE_METRICS_TOKEN", "")
ALLIANCE_WORKER_HEARTBEAT_SECONDS = env_float("ALLIANCE_WORKER_HEARTBEAT_SECONDS", 5.0)
# A worker's own metrics port (workers on machines apart from the web); 0: none.
ALLIANCE_WORKER_METRICS_PORT = env_int("ALLIANCE_WORKER_METRICS_PORT", 0)
ALLIANCE_WORKER_METRICS_ADDR = os.environ.get("ALLIANCE_WORKER_METRICS_ADDR", "0.0.0.0")
# Worker families that /readyz requires a live worker for (comma-separated); the others are reported only.
ALLIANCE_READY_FAMILIES = [f for f in os.environ.get("ALLIANCE_READY_FAMILIES", "").replace(" ", "").split(",") if f]

# Celery: PostgreSQL is the source of truth for a job; the broker only carries its id.
CELERY_BROKER_URL = CELERY_BROKER_URL or "filesystem://"
# Seconds before Redis hands an unacknowledged message (a job whose worker died) to another worker.
ALLIANCE_BROKER_VISIBILITY_TIMEOUT = env_int("ALLIANCE_BROKER_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(ALLIANCE_VAR_DIR / "broker"),
        "data_folder_out": str(ALLIANCE_VAR_DIR / "broker"),
        "control_folder": str(ALLIANCE_VAR_DIR / "broker-control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    if CELERY_BROKER_URL == "filesystem://"
    else {"visibility_timeout": ALLIANCE_BROKER_VISIBILITY_TIMEOUT}
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 1)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers serve queues by model family: a machine that hosts only vision models takes only vision jobs.
# Webhook deliveries have a queue of their own, so that a slow endpoint never holds the reaper on `default`.
ALLIANCE_QUEUES = ["default", "embeddings", "llm", "vision", "tuning", "webhooks"]
CELERY_TASK_QUEUES = [Queue(name) for name in ALLIANCE_QUEUES]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "inference.tasks.deliver_webhook": {"queue": "webhooks"},
    "inference.tasks.reap_stale_jobs": {"queue": "default"},
    "inference.tasks.enqueue_batch": {"queue": "default"},
    "inference.tasks.run_tuning_job": {"queue": "tuning"},
}

# Jobs
ALLIANCE_JOB_HEARTBEAT_SECONDS = env_float("ALLIANCE_JOB_HEARTBEAT_SECONDS", 5.0)
ALLIANCE_JOB_STALE_SECONDS = env_float("ALLIANCE_JOB_STALE_SECONDS", 30.0)
ALLIANCE_JOB_REENQUEUE_SECONDS = env_float("ALLIANCE_JOB_REENQUEUE_SECONDS", 120.0)
ALLIANCE_JOB_REAPER_INTERVAL_SECONDS = env_float("ALLIANCE_JOB_REAPER_INTERVAL_SECONDS", 15.0)
ALLIANCE_JOB_MAX_ATTEMPTS = env_int("ALLIANCE_JOB_MAX_ATTEMPTS", 3)
ALLIANCE_JOB_MAX_WAIT_SECONDS = env_float("ALLIANCE_JOB_MAX_WAIT_SECONDS", 120.0)
# Time limits of one task per worker family, in seconds (soft, hard). At the soft limit the task's jobs fail with
# code "time_limit" and are refunded; at the hard limit the pool kills the worker process (the reaper then treats
# the jobs as a lost worker's). ALLIANCE_TASK_TIME_LIMITS overrides some, e.g. "llm=300:360,vision=120:150".
_TUNING_MAX = env_float("ALLIANCE_TUNING_MAX_SECONDS", 3600.0)  # a run stops itself at this limit; see Tuning
ALLIANCE_TASK_TIME_LIMITS: dict[str, tuple[float, float]] = {
    "default": (60.0, 90.0),
    "embeddings": (120.0, 150.0),
    "llm": (300.0, 360.0),
    "vision": (300.0, 360.0),
    "tuning": (_TUNING_MAX + 600.0, _TUNING_MAX + 900.0),
}
for _entry in filter(None, os.environ.get("ALLIANCE_TASK_TIME_LIMITS", "").replace(" ", "").split(",")):
    try:
        _family, _limits = _entry.split("=")
        _soft, _hard = (float(value) for value in _limits.split(":"))
    except ValueError:
        _family, _soft, _hard = "", 0.0, 0.0
    if _family not in ALLIANCE_TASK_TIME_LIMITS or not 0 < _soft < _hard:
        raise ImproperlyConfigured(f"ALLIANCE_TASK_TIME_LIMITS: {_entry!r} is not <family>=<soft>:<hard>, soft < hard.")
    ALLIANCE_TASK_TIME_LIMITS[_family] = (_soft, _hard)
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {"task": "inference.tasks.reap_stale_jobs", "schedule": ALLIANCE_JOB_REAPER_INTERVAL_SECONDS},
}

# Token streaming (inference/streams.py): each LLM job's tokens on a per-job channel, Redis Streams when Redis is
# configured, else a table of the database (the embedded default). The worker flushes a job's pending tokens at most
# every ALLIANCE_STREAM_FLUSH_MS; a channel is kept ALLIANCE_STREAM_TTL_SECONDS, at most ALLIANCE_STREAM_MAX_EVENTS.
ALLIANCE_STREAMS = os.environ.get("ALLIANCE_STREAMS", "redis" if REDIS_URL else "database")
if ALLIANCE_STREAMS not in ("redis", "database"):
    raise ImproperlyConfigured("ALLIANCE_STREAMS must be redis or database.")
ALLIANCE_STREAM_FLUSH_MS = env_float("ALLIANCE_STREAM_FLUSH_MS", 20.0)
ALLIANCE_STREAM_TTL_SECONDS = env_int("ALLIANCE_STREAM_TTL_SECONDS", 3600)
ALLIANCE_STREAM_MAX_EVENTS = env_int("ALLIANCE_STREAM_MAX_EVENTS", 10_000)
ALLIANCE_STREAM_POLL_MS = env_float("ALLIANCE_STREAM_POLL_MS", 15.0)  # the database channel's follow interval
ALLIANCE_STREAM_MAX_SECONDS = env_float("ALLIANCE_STREAM_MAX_SECONDS", 600.0)  # the longest one SSE response lasts

# Webhooks
ALLIANCE_WEBHOOK_ALLOW_PRIVATE = env_bool("ALLIANCE_WEBHOOK_ALLOW_PRIVATE", False)
# The whole of one delivery (resolve, connect, TLS, send, the answer's headers), not each read.
ALLIANCE_WEBHOOK_TIMEOUT_SECONDS = env_float("ALLIANCE_WEBHOOK_TIMEOUT_SECONDS", 5.0)
ALLIANCE_WEBHOOK_MAX_RETRIES = env_int("ALLIANCE_WEBHOOK_MAX_RETRIES", 5)

# Tuning (partners' data is encrypted at rest under ALLIANCE_DATA_KEY, above).
ALLIANCE_TUNING_MAX_SECONDS = env_float("ALLIANCE_TUNING_MAX_SECONDS", 3600.0)
ALLIANCE_TUNING_STALE_SECONDS = env_float("ALLIANCE_TUNING_STALE_SECONDS", 600.0)
ALLIANCE_DATASET_MAX_BYTES = env_int("ALLIANCE_DATASET_MAX_BYTES", 20 * 1024 * 1024)
# Requests in one batch (/v1/batches, /api/v1/batches); its input file may be as large as a dataset.
ALLIANCE_BATCH_MAX_REQUESTS = env_int("ALLIANCE_BATCH_MAX_REQUESTS", 10_000)
ALLIANCE_DATASET_MAX_ROWS = env_int("ALLIANCE_DATASET_MAX_ROWS", 50_000)

# Quotas and rate limits
ALLIANCE_DEFAULT_MONTHLY_UNITS = env_int("ALLIANCE_DEFAULT_MONTHLY_UNITS", 1_000_000)
ALLIANCE_DEFAULT_RPM = env_int("ALLIANCE_DEFAULT_RPM", 600)
ALLIANCE_API_KEY_READ_RPM = env_int("ALLIANCE_API_KEY_READ_RPM", 6000)
ALLIANCE_AUTH_FAILURES_PER_MINUTE = env_int("ALLIANCE_AUTH_FAILURES_PER_MINUTE", 30)
ALLIANCE_API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# Work a partner can hold: stored bytes and files (uploads, generated images, datasets), tuning jobs queued or running
# at once, uploads a minute per key, and requests per key waiting on a job (`?wait`, synchronous /v1 calls).
ALLIANCE_STORAGE_MAX_BYTES = env_int("ALLIANCE_STORAGE_MAX_BYTES", 1024 * 1024 * 1024)
ALLIANCE_STORAGE_MAX_FILES = env_int("ALLIANCE_STORAGE_MAX_FILES", 1000)
ALLIANCE_MAX_ACTIVE_TUNING_JOBS = env_int("ALLIANCE_MAX_ACTIVE_TUNING_JOBS", 2)
ALLIANCE_API_KEY_WRITE_RPM = env_int("ALLIANCE_API_KEY_WRITE_RPM", 60)
ALLIANCE_API_KEY_MAX_WAITING = env_int("ALLIANCE_API_KEY_MAX_WAITING", 4)

# Models: the worker side reads this registry; the web side only reads names and families.
ALLIANCE_MODELS_FILE = os.environ.get("ALLIANCE_MODELS_FILE", "")
ALLIANCE_DEVICE = os.environ.get("ALLIANCE_DEVICE", "auto")  # "cpu", "cuda", "cuda:1"; "auto": CUDA when present
ALLIANCE_TORCH_THREADS = env_int("ALLIANCE_TORCH_THREADS", 0)  # torch threads per worker process; 0: torch's default
ALLIANCE_MODELS_DIR = Path(os.environ.get("ALLIANCE_MODELS_DIR", ALLIANCE_VAR_DIR / "models"))
# The registry models a worker hosts, comma-separated (e.g. one LLM per machine); empty: every model of its queues.
# Jobs for the others stay queued for a worker that hosts them (inference.worker).
ALLIANCE_WORKER_MODELS = [
    name.strip() for name in os.environ.get("ALLIANCE_WORKER_MODELS", "").split(",") if name.strip()
]
# Dynamic batching: a worker gathers up to the model's batch size of queued jobs, waiting at most this long.
ALLIANCE_BATCH_WAIT_MS = env_float("ALLIANCE_BATCH_WAIT_MS", 5.0)
ALLIANCE_MAX_BATCH = env_int("ALLIANCE_MAX_BATCH", 0)  # 0: each model's own batch size; 1: batching off
ALLIANCE_ADAPTER_CACHE = env_int("ALLIANCE_ADAPTER_CACHE", 16)  # tuned adapters a worker keeps loaded

# Benchmarks mount a bare endpoint to compare against.
# The benchmarks' bare endpoint lives in its own URL conf, never in the production one.
ALLIANCE_BENCH_ENDPOINTS = env_bool("ALLIANCE_BENCH_ENDPOINTS", False)
if ALLIANCE_BENCH_ENDPOINTS:
    ROOT_URLCONF = "bench.urls"

# HTTPS. With DEBUG off the site is taken to be served over HTTPS (directly, or behind a proxy that terminates TLS and
# sets X-Forwarded-Proto): cookies are Secure and HTTPS answers carry HSTS. ALLIANCE_SECURE=0 is the explicit opt-out
# for a plain-HTTP run on a private machine (`up` sets it for the processes it starts). ALLIANCE_SSL_REDIRECT=1 also
# redirects http:// to https:// here, for a site whose proxy does not do it.
ALLIANCE_SECURE = env_bool("ALLIANCE_SECURE", not DEBUG)
ALLIANCE_SSL_REDIRECT = env_bool("ALLIANCE_SSL_REDIRECT", False)
if ALLIANCE_SECURE:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("ALLIANCE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = ALLIANCE_SSL_REDIRECT

# Content-Security-Policy on every answer (django-csp): scripts only from this site's static files (no inline script,
# no eval), nothing framed or embedded, forms post only here. Inline style attributes stay allowed (the templates, the
# Django admin and the API docs use them); they cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Sign-in throttling (django-axes) on /portal/login/ and /admin/: after ALLIANCE_LOGIN_FAILURE_LIMIT failed attempts
# for one username from one address, that pair is locked out for ALLIANCE_LOGIN_COOLOFF_MINUTES (429 and a page
# that says when to try again); each further attempt during the lockout restarts the cool-off, a success resets the
# count. Attempts are rows in the database, shared by every web process.
ALLIANCE_LOGIN_FAILURE_LIMIT = env_int("ALLIANCE_LOGIN_FAILURE_LIMIT", 5)
ALLIANCE_LOGIN_COOLOFF_MINUTES = env_float("ALLIANCE_LOGIN_COOLOFF_MINUTES", 15.0)
AXES_FAILURE_LIMIT = ALLIANCE_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = dt.timedelta(minutes=ALLIANCE_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.views.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

# Email (invitations to join a partner). DJANGO_EMAIL_BACKEND is Django's EMAIL_BACKEND: by default the embedded mode
# writes each message as a file under ALLIANCE_VAR_DIR/mail (ALLIANCE_EMAIL_FILE_PATH), the distributed mode sends by
# SMTP through DJANGO_EMAIL_HOST and its siblings. Tests read Django's in-memory outbox. An invitation's link is valid
# for ALLIANCE_INVITATION_DAYS.
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if ALLIANCE_EMBEDDED
    else "django.core.mail.backends.smtp.EmailBackend",
)
ALLIANCE_EMAIL_FILE_PATH = Path(os.environ.get("ALLIANCE_EMAIL_FILE_PATH", ALLIANCE_VAR_DIR / "mail"))
EMAIL_FILE_PATH = ALLIANCE_EMAIL_FILE_PATH
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("DJANGO_EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "alliance@localhost")
ALLIANCE_INVITATION_DAYS = env_int("ALLIANCE_INVITATION_DAYS", 7)

# Applications to join the alliance (the public /join/ page): per submitting address, at most
# ALLIANCE_APPLICATIONS_PER_MINUTE a minute and ALLIANCE_APPLICATIONS_PER_DAY in 24 hours; one pending application
# per contact address.
ALLIANCE_APPLICATIONS_PER_MINUTE = env_int("ALLIANCE_APPLICATIONS_PER_MINUTE", 3)
ALLIANCE_APPLICATIONS_PER_DAY = env_int("ALLIANCE_APPLICATIONS_PER_DAY", 5)
# The public, key-less reads (GET /api/v1/partners): requests per minute per address.
ALLIANCE_PUBLIC_REQUESTS_PER_MINUTE = env_int("ALLIANCE_PUBLIC_REQUESTS_PER_MINUTE", 120)
# Tiers: a partner's default quotas are ALLIANCE_DEFAULT_MONTHLY_UNITS and ALLIANCE_DEFAULT_RPM times its tier's
# factor; ALLIANCE_TIER_FACTORS overrides some, e.g. "founding=5,standard=1".
ALLIANCE_TIER_FACTORS: dict[str, int] = {"lab": 10, "founding": 5, "strategic": 3, "standard": 1}
for _entry in filter(None, os.environ.get("ALLIANCE_TIER_FACTORS", "").replace(" ", "").split(",")):
    _tier, _, _factor = _entry.partition("=")
    if _tier not in ALLIANCE_TIER_FACTORS or not _factor.isdigit() or int(_factor) < 1:
        raise ImproperlyConfigured(f"ALLIANCE_TIER_FACTORS: {_entry!r} is not <tier>=<whole factor of at least 1>.")
    ALLIANCE_TIER_FACTORS[_tier] = int(_factor)
# Fair sharing of workers (inference.services.fair_share): when several partners' jobs wait for the same model, the
# next job a worker claims (and each one it adds to a batch) is the lowest `priority` first, then the partner with the
# fewest jobs of that model started in the last ALLIANCE_FAIR_WINDOW_SECONDS (or still running) divided by its tier's
# weight, then the oldest. With two partners waiting, a founding partner (3) gets three jobs for a standard partner's
# one; a partner that was idle goes first until its share catches up, which the window bounds.
# ALLIANCE_TIER_WEIGHTS overrides some, e.g. "founding=4,standard=1".
ALLIANCE_TIER_WEIGHTS: dict[str, int] = {"lab": 4, "founding": 3, "strategic": 2, "standard": 1}
for _entry in filter(None, os.environ.get("ALLIANCE_TIER_WEIGHTS", "").replace(" ", "").split(",")):
    _tier, _, _weight = _entry.partition("=")
    if _tier not in ALLIANCE_TIER_WEIGHTS or not _weight.isdigit() or int(_weight) < 1:
        raise ImproperlyConfigured(f"ALLIANCE_TIER_WEIGHTS: {_entry!r} is not <tier>=<whole weight of at least 1>.")
    ALLIANCE_TIER_WEIGHTS[_tier] = int(_weight)
ALLIANCE_FAIR_WINDOW_SECONDS = env_float("ALLIANCE_FAIR_WINDOW_SECONDS", 30.0)
# At most this many of one partner's jobs run at once, over all models and workers (0: no cap). A delivery that finds
# only capped partners' jobs waiting waits up to ALLIANCE_PARTNER_CAP_WAIT_SECONDS for a slot, then puts its message
# back on the broker.
ALLIANCE_PARTNER_MAX_RUNNING = env_int("ALLIANCE_PARTNER_MAX_RUNNING", 64)
ALLIANCE_PARTNER_CAP_WAIT_SECONDS = env_float("ALLIANCE_PARTNER_CAP_WAIT_SECONDS", 1.0)
