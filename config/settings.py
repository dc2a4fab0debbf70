"""Concierge settings: one module, driven by environment variables with embedded defaults.

With no variables set the project runs on one machine with no services: SQLite under
``var/``, an in-memory channel layer and cache, and Celery on a local filesystem broker.
Setting ``DATABASE_URL`` and ``REDIS_URL`` switches to PostgreSQL and Redis.
"""

import ipaddress
import os
from pathlib import Path

import environ

from config.version import __version__

# Chroma and onnxruntime phone home unless told not to; set before anything imports them.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env("CONCIERGE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
# Models prepared for serving (knowledge.model_prep), made once and read by every process.
MODEL_DIR = Path(env("CONCIERGE_MODEL_DIR", default=str(VAR_DIR / "models")))

SECRET_KEY = env("SECRET_KEY", default="concierge-insecure-development-key-change-me-in-production")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "corsheaders",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "axes",
    "tenancy",
    "tickets",
    "knowledge",
    "agents",
    "monitoring",
    "demo",
]

MIDDLEWARE = [
    "monitoring.middleware.RequestObservationMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    # Sync-only, and innermost on purpose: Django then runs every middleware above in sync mode,
    # in one thread with the view. Async-capable ones inside a sync-only one run in async mode,
    # and Django's own (MiddlewareMixin) then move each of their hooks to a thread: an API call
    # crossed between the event loop and a thread nine times with this one above the messages,
    # six now (tests/test_asgi_requests.py; bench/README.md, issue 14).
    "tenancy.middleware.StaffPreferencesMiddleware",
    "monitoring.middleware.ProfilingMiddleware",
]
# Staff sign-in: django-axes counts failures per username and address and locks that pair out.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_LOCKOUT_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "tickets/locked_out.html"

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "monitoring.context_processors.version",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'concierge.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file: WAL lets readers run beside a writer, and
    # IMMEDIATE transactions take the write lock up front instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env.bool("DATABASE_POOL", default=True):
    # Under ASGI every request runs its sync code in a fresh thread, so per-thread persistent
    # connections never get reused: a process-wide psycopg pool hands connections out instead
    # (a new PostgreSQL connection per request costs a backend fork, ~5 ms). Each connection is
    # checked as it is handed out (CONN_HEALTH_CHECKS makes Django give the pool its check), so
    # after a PostgreSQL restart a dead one is replaced instead of failing a request.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=20),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=5.0),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3" and env.bool("DATABASE_PREPARED", default=True):
    # Parameters bound by PostgreSQL instead of quoted into the SQL by psycopg, and a statement
    # a connection has run twice prepared on it the third time, and kept (psycopg's threshold;
    # Django turns it off for transaction-mode PgBouncer, which the deploy kit does not use): a
    # chat turn's statements are no longer parsed and planned each time. In one process: the
    # database's CPU a turn 3.7-4.0 -> 2.1-2.7 ms (bench/README.md, issue 14). psycopg forgets a
    # connection's prepared statements at every ROLLBACK; the boot's rehearsed turn, run three
    # times on each turn thread's connection, rolls back keeping them (config.compiled.prepared_kept).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=env.int("DATABASE_PREPARE_THRESHOLD", default=2)
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "config.channel_layer.ResilientRedisChannelLayer",
            # redis-py 8 times out socket reads after 5 s by default, which kills the channel
            # layer's blocking receive on every idle websocket; blocking reads need no timeout.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",  # one connection pool per process
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "concierge",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# Staff pages in English or Simplified Chinese: each staff member's choice (StaffProfile.language),
# else the browser's. Our own strings' catalogues live in the apps' locale/ folders.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "tickets" / "locale"]  # the staff desk's catalogue (make messages)
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
# Chat attachments go through Django's storage API: a folder here (shared by every web process;
# point STORAGES["default"] at an object store for several machines).
MEDIA_ROOT = Path(env("CONCIERGE_MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "/admin/login/"

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
if EMAIL_CONFIG.get("EMAIL_FILE_PATH") and not str(EMAIL_CONFIG["EMAIL_FILE_PATH"]).startswith("/"):
    # django-environ drops the leading slash of filemail:///abs/path; keep the path absolute.
    EMAIL_CONFIG["EMAIL_FILE_PATH"] = "/" + str(EMAIL_CONFIG["EMAIL_FILE_PATH"])
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="support@concierge.localhost")

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "tenancy.authentication.StaffTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenancy.permissions.IsOrganizationStaff"],
    "DEFAULT_PAGINATION_CLASS": "tickets.pagination.StandardPagination",
    "PAGE_SIZE": 25,
    "DEFAULT_FILTER_BACKENDS": [
        "tickets.filtering.QueryFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tickets.api_errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["tickets.limits.StaffApiThrottle"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Concierge API",
    "DESCRIPTION": "Tickets, customers, conversations and macros of one organization.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    # drf-spectacular's docs page loads Swagger UI from a CDN by default; we serve our own.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # One name per choice set that several models share.
    "ENUM_NAME_OVERRIDES": {
        "TicketStatusEnum": "tickets.models.TicketStatus",
        "PriorityEnum": "tickets.models.Priority",
        "ConversationStatusEnum": "tickets.models.Conversation.Status",
        "ArticleStatusEnum": "knowledge.models.Article.Status",
    },
}

# --- Celery ---------------------------------------------------------------------------
CELERY_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
    CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
    # A task whose worker died unacknowledged (acks_late) is handed out again after this long.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        # Every worker looks for such tasks every this many seconds (one cheap Redis query).
        "unacked_restore_interval": env.int("CELERY_RESTORE_INTERVAL", default=10),
        "unacked_restore_throttle": 1,
    }
else:
    # Local broker for `make run`: kombu's filesystem transport, polled every 0.1 s.
    for _folder in ("queue", "processed", "control"):
        (CELERY_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
    CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=f"file://{CELERY_DIR / 'results'}")
    (CELERY_DIR / "results").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DIR / "queue"),
        "data_folder_out": str(CELERY_DIR / "queue"),
        "processed_folder": str(CELERY_DIR / "processed"),
        "control_folder": str(CELERY_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
# The worker logs through LOGGING above (JSON, with the task id), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Concierge ------------------------------------------------------------------------
# SLA targets in minutes per priority, used when an organization has no policy of its own.
CONCIERGE_DEFAULT_SLA_MINUTES = {
    "urgent": (15, 4 * 60),
    "high": (60, 8 * 60),
    "medium": (4 * 60, 24 * 60),
    "low": (8 * 60, 72 * 60),
}
# VIP customers get tighter targets: each target is multiplied by this factor.
CONCIERGE_VIP_SLA_FACTOR = {"none": 1.0, "silver": 0.9, "gold": 0.75, "platinum": 0.5}
# A ticket is "at risk" once this share of its target time has elapsed.
CONCIERGE_SLA_AT_RISK_SHARE = 0.75
CONCIERGE_HEARTBEAT_SECONDS = env.int("CONCIERGE_HEARTBEAT_SECONDS", default=30)

LLM_PROVIDER = env("LLM_PROVIDER", default="")
LLM_MODEL = env("LLM_MODEL", default="")
LLM_BASE_URL = env("LLM_BASE_URL", default="")
LLM_API_KEY = env("LLM_API_KEY", default="")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=8.0)
# A sentence an LLM writes must be this similar (cosine, the knowledge base's embeddings) to a
# sentence of its passages or action result, or its answer is set aside for the composed one.
CONCIERGE_LLM_SUPPORT_MIN = env.float("CONCIERGE_LLM_SUPPORT_MIN", default=0.6)
# CORS only on the widget's endpoints, and only for the websites an organization allows
# (agents.widget.cors_request_allowed answers per request; no origin is allowed statically).
CORS_URLS_REGEX = r"^/api/v1/widget/"
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_CREDENTIALS = False
CORS_EXPOSE_HEADERS = ["Retry-After"]
CONCIERGE_ATTACHMENT_MAX_BYTES = env.int("CONCIERGE_ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
CONCIERGE_ATTACHMENT_URL_MAX_AGE = env.int("CONCIERGE_ATTACHMENT_URL_MAX_AGE", default=3600)
# An email reply is tried this many times (the task backs off between tries) before it is marked failed.
CONCIERGE_EMAIL_SEND_ATTEMPTS = env.int("CONCIERGE_EMAIL_SEND_ATTEMPTS", default=5)
# Messaging channels (agents.messaging): a reply is tried this many times before it is marked
# failed; the providers' API base URLs (set only to point them at a gateway or a test server);
# how far a signed request's timestamp may be from now (API channel, WeChat); how long a WeChat
# webhook waits for the assistant's reply to answer it passively (WeChat gives up at 5 s).
CONCIERGE_MESSAGING_SEND_ATTEMPTS = env.int("CONCIERGE_MESSAGING_SEND_ATTEMPTS", default=6)
CONCIERGE_WHATSAPP_API_URL = env("CONCIERGE_WHATSAPP_API_URL", default="")
CONCIERGE_TELEGRAM_API_URL = env("CONCIERGE_TELEGRAM_API_URL", default="https://api.telegram.org")
CONCIERGE_TWILIO_API_URL = env("CONCIERGE_TWILIO_API_URL", default="")
CONCIERGE_WECHAT_API_URL = env("CONCIERGE_WECHAT_API_URL", default="")
CONCIERGE_WEBHOOK_MAX_AGE = env.int("CONCIERGE_WEBHOOK_MAX_AGE", default=300)
CONCIERGE_WECHAT_PASSIVE_SECONDS = env.float("CONCIERGE_WECHAT_PASSIVE_SECONDS", default=4.0)
# Room for an attachment plus the form around it; larger bodies are refused before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
CONCIERGE_WIDGET_TOKEN_MAX_AGE = env.int("CONCIERGE_WIDGET_TOKEN_MAX_AGE", default=7 * 24 * 3600)
# Where customers reach this site: links in emails (CSAT surveys) start with it.
CONCIERGE_PUBLIC_URL = env("CONCIERGE_PUBLIC_URL", default="http://127.0.0.1:8000")
# The retrieval confidence an answer needs: English (MiniLM) and Chinese (USE multilingual) questions.
# English was 0.3 until the per-article fusion; at 0.35 no StackFAQ dev answer is lost and three more
# unrelated questions are declined. USE's similarities run lower: Chinese stays at 0.3.
CONCIERGE_ANSWER_MIN_CONFIDENCE = env.float("CONCIERGE_ANSWER_MIN_CONFIDENCE", default=0.35)
CONCIERGE_ANSWER_MIN_CONFIDENCE_ZH = env.float("CONCIERGE_ANSWER_MIN_CONFIDENCE_ZH", default=0.3)
# An upset customer's question is answered (besides the handoff) only above this confidence.
CONCIERGE_UPSET_ANSWER_MIN_CONFIDENCE = env.float("CONCIERGE_UPSET_ANSWER_MIN_CONFIDENCE", default=0.5)
# Assistant actions call organizations' HTTPS endpoints; plain HTTP only for these hosts (the
# demo's own order endpoint in development), and a CA bundle other than the system's if set.
CONCIERGE_ACTIONS_HTTP_HOSTS = env.list(
    "CONCIERGE_ACTIONS_HTTP_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else []
)
CONCIERGE_ACTIONS_CA_BUNDLE = env("CONCIERGE_ACTIONS_CA_BUNDLE", default="")
ELASTICSEARCH_URL = env("ELASTICSEARCH_URL", default="")
ELASTICSEARCH_INDEX_PREFIX = env("ELASTICSEARCH_INDEX_PREFIX", default="concierge")
CHROMA_PATH = env("CHROMA_PATH", default=str(VAR_DIR / "chroma"))
CHROMA_HOST = env("CHROMA_HOST", default="")
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")

LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "monitoring.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "monitoring.logs.JsonFormatter"},
        "text": {"()": "monitoring.logs.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if LOG_FORMAT == "text" else "json",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's own request log repeats our access line for 4xx/5xx; errors still come through.
        "django.request": {"level": "ERROR"},
        "bm25s": {"level": "WARNING"},
        "chromadb": {"level": "WARNING"},
        # The Chroma and LLM clients' HTTP library logs every request at INFO.
        "httpx": {"level": "WARNING"},
        "kombu.connection": {"level": "ERROR"},
        "axes": {"level": "WARNING"},
        "uvicorn.access": {"level": "WARNING"},
    },
}

# --- monitoring ------------------------------------------------------------------------
# /metrics answers a matching "Authorization: Bearer <METRICS_TOKEN>", or any client inside
# METRICS_ALLOWED_NETWORKS (default: loopback only).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(network, strict=False)
    for network in env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
]
# Profiling: a share of requests, plus (when > 0) every request slower than the threshold.
CONCIERGE_PROFILE_SAMPLE_RATE = env.float("CONCIERGE_PROFILE_SAMPLE_RATE", default=0.0)
CONCIERGE_PROFILE_SLOW_MS = env.float("CONCIERGE_PROFILE_SLOW_MS", default=0.0)
CONCIERGE_PROFILE_RETENTION_DAYS = env.int("CONCIERGE_PROFILE_RETENTION_DAYS", default=7)
CONCIERGE_PROFILE_MAX_ROWS = env.int("CONCIERGE_PROFILE_MAX_ROWS", default=2000)
# --- abuse limits (count/period; period s, min, h or day). Counted in the cache: Redis in production.
CONCIERGE_RATE_LIMITS = {
    "widget_session_ip": env("RATE_WIDGET_SESSIONS_PER_IP", default="20/min"),
    "widget_session_org": env("RATE_WIDGET_SESSIONS_PER_ORG", default="600/min"),
    "chat_message_session": env("RATE_CHAT_MESSAGES_PER_SESSION", default="20/min"),
    "chat_message_ip": env("RATE_CHAT_MESSAGES_PER_IP", default="120/min"),
    "chat_message_org": env("RATE_CHAT_MESSAGES_PER_ORG", default="6000/min"),
    "api_user": env("RATE_API_PER_USER", default="3000/min"),
    "email_sender": env("RATE_EMAILS_PER_SENDER", default="10/h"),
    # Below what the providers allow a business number or bot (Telegram: 30/s; WhatsApp: 80/s).
    "messaging_send": env("RATE_MESSAGING_SENDS_PER_ACCOUNT", default="20/s"),
}
CONCIERGE_CONVERSATION_MAX_MESSAGES = env.int("CONCIERGE_CONVERSATION_MAX_MESSAGES", default=500)
# A web process refuses a chat message (a "busy" frame; the widget sends it again) when the turns
# it already accepted would keep it waiting longer than this (agents.turns).
CONCIERGE_BUSY_WAIT_SECONDS = env.float("CONCIERGE_BUSY_WAIT_SECONDS", default=1.0)
CONCIERGE_TRUST_X_FORWARDED_FOR = env.bool("CONCIERGE_TRUST_X_FORWARDED_FOR", default=False)

# Adds /bench/bare (a bare Django view) and /bench/min/... (minimal twins of the busiest API
# endpoints, monitoring.bench_views) for the API load benchmark. Off in production.
CONCIERGE_BENCH_ENDPOINTS = env.bool("CONCIERGE_BENCH_ENDPOINTS", default=False)
CONCIERGE_WEBSOCKET_CAPACITY = env.int("CONCIERGE_WEBSOCKET_CAPACITY", default=2000)
# Threads a web process serves plain HTTP requests on (config.http); each holds at most one
# pooled database connection while it serves one.
CONCIERGE_HTTP_THREADS = env.int("CONCIERGE_HTTP_THREADS", default=8)

# --- production hardening (DEBUG off) -----------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and the scraper talk plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
