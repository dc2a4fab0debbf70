"""gunicorn settings for the web role: ASGI (HTTP + websockets) through uvicorn workers.

    gunicorn -c deploy/gunicorn.conf.py config.asgi:application

Every value can be set from the environment. Workers share PostgreSQL and the Redis channel
layer, so any number of them (on any number of machines) serve the same chats."""

import gc
import multiprocessing
import os
import shutil
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
worker_class = "config.workers.WebWorker"
# Websockets are long-lived: a worker only restarts when it has been idle this long.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Recycle workers now and then to bound memory growth; jitter keeps them from restarting together.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = 2000
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Django and the big read-only models (the sentiment lexicons and models, the multilingual
# encoder, the language identifier), and the libraries every worker imports as it warms
# (config.warmup.SHARED_IMPORTS), load once in the master; the forked workers share those
# pages. What runs threads (database pools, the channel layer) is made in each worker after
# the fork, when it warms.
# A code change then needs a restart, not a HUP.
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() in ("1", "true", "yes")
accesslog = None  # the app writes one JSON access line per request, with its request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "monitoring.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/concierge-metrics")  # noqa: S108
os.makedirs(_metrics_dir, exist_ok=True)


def on_starting(server: Any) -> None:
    """Start every deploy with empty Prometheus multiprocess files."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def when_ready(server: Any) -> None:
    """Before the first fork: load the read-only models (config.warmup.warm_shared) into the
    master, move everything loaded so far out of the garbage collector's reach, so
    collections in the workers do not touch (and copy) the shared pages, and hand the memory
    loading freed back to the system, so no worker inherits it."""
    if preload_app:
        from config.warmup import release_free_memory, warm_shared

        warm_shared()
        gc.freeze()
        release_free_memory()


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges (open websockets) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
