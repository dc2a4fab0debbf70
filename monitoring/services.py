import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from monitoring.models import Heartbeat


def heartbeat_record(*, name: str) -> Heartbeat:
    heartbeat, _ = Heartbeat.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})
    return heartbeat


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a readiness probe reports failures, it does not raise them
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "latency_ms": round((time.perf_counter() - started) * 1000, 2), "detail": detail}


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _cache() -> str:
    cache.set("concierge:readyz", "1", 5)
    if cache.get("concierge:readyz") != "1":
        raise RuntimeError("cache did not return what was written")
    return "redis" if settings.REDIS_URL else "local memory"


def _worker() -> str:
    heartbeat = Heartbeat.objects.filter(name="celery").first()
    if heartbeat is None:
        raise RuntimeError("no heartbeat from the Celery worker yet")
    age = (timezone.now() - heartbeat.seen_at).total_seconds()
    if age > 3 * settings.CONCIERGE_HEARTBEAT_SECONDS:
        raise RuntimeError(f"last Celery heartbeat {age:.0f}s ago")
    return f"last heartbeat {age:.0f}s ago"


def _elasticsearch() -> str:
    from knowledge.keyword import get_backend

    backend = get_backend()
    if not getattr(backend, "ping", lambda: False)():
        raise RuntimeError(f"no answer from {settings.ELASTICSEARCH_URL}")
    return "reachable"


def readiness() -> dict[str, Any]:
    """Each dependency's state; ``ready`` is false when a required one is down.
    The Celery worker is reported but not required: chat keeps answering without it."""
    checks = {"database": _timed(_database), "cache": _timed(_cache), "celery": _timed(_worker)}
    required: tuple[str, ...] = ("database", "cache")
    if settings.ELASTICSEARCH_URL:
        checks["elasticsearch"] = _timed(_elasticsearch)
        required += ("elasticsearch",)
    return {"ready": all(checks[name]["ok"] for name in required), "checks": checks}
