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


def task_failure_store(*, task_name: str, task_id: str, args: str, exception: str, traceback: str) -> Any:
    from monitoring.models import TaskFailure

    return TaskFailure.objects.create(
        task_name=task_name[:200],
        task_id=task_id[:64],
        args=args[:2000],
        exception=exception[:500],
        traceback=traceback[-20000:],
    )


# Tasks of these apps are ours: a schedule row for one of them that the code no longer
# defines is removed by beat_schedule_load. Rows made by hand in admin for other tasks stay.
OWN_TASK_PREFIXES = ("tickets.", "knowledge.", "agents.", "monitoring.")


def beat_schedule_load() -> dict[str, list[str]]:
    """Write the beat schedule defined in config/celery.py into django-celery-beat's tables:
    add new entries, update changed ones, remove our own entries the code dropped."""
    from django.db import transaction
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    from config.celery import app

    result: dict[str, list[str]] = {"added": [], "updated": [], "unchanged": [], "removed": []}
    schedule = app.conf.beat_schedule
    with transaction.atomic():
        for name, entry in schedule.items():
            before = PeriodicTask.objects.filter(name=name).values().first()
            ModelEntry.from_entry(name, app=app, **entry)
            after = PeriodicTask.objects.filter(name=name).values().first()
            if before is None:
                result["added"].append(name)
            elif {k: v for k, v in before.items() if k != "date_changed"} != {
                k: v for k, v in (after or {}).items() if k != "date_changed"
            }:
                result["updated"].append(name)
            else:
                result["unchanged"].append(name)
        for task in PeriodicTask.objects.exclude(name__in=list(schedule)):
            if task.task.startswith(OWN_TASK_PREFIXES):
                result["removed"].append(task.name)
                task.delete()
    return result
