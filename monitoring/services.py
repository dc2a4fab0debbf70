import time
from collections.abc import Callable
from dataclasses import dataclass
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
    age = heartbeat_age_seconds()
    if age is None:
        raise RuntimeError("no heartbeat from the Celery worker yet")
    if age > 3 * settings.CONCIERGE_HEARTBEAT_SECONDS:
        raise RuntimeError(f"last Celery heartbeat {age:.0f}s ago")
    return f"last heartbeat {age:.0f}s ago"


def _elasticsearch() -> str:
    from knowledge.keyword import get_backend

    backend = get_backend()
    if not getattr(backend, "ping", lambda: False)():
        raise RuntimeError(f"no answer from {settings.ELASTICSEARCH_URL}")
    return "reachable"


def _channel_layer() -> str:
    from channels.layers import get_channel_layer

    from config.channel_layer import layer_call

    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def ping() -> Any:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "readyz.ping"})
        return await layer.receive(channel)

    if layer_call(ping, timeout=5).get("type") != "readyz.ping":
        raise RuntimeError("the channel layer returned something else")
    return type(layer).__name__


def _chroma() -> str:
    from knowledge import vectors

    return vectors.ping()


@dataclass(frozen=True)
class OptionalCheck:
    """A dependency an app above monitoring reports on: checked when ``wanted()`` says it is
    configured, never required (chat goes on without it)."""

    probe: Callable[[], str]
    wanted: Callable[[], bool]


OPTIONAL_CHECKS: dict[str, OptionalCheck] = {}


def readiness_check_register(name: str, probe: Callable[[], str], wanted: Callable[[], bool]) -> None:
    """Add a reported, not required, readiness check (agents adds the LLM endpoint)."""
    OPTIONAL_CHECKS[name] = OptionalCheck(probe, wanted)


def readiness() -> dict[str, Any]:
    """Each dependency's state with its latency; ``ready`` is false when a required one is
    down. The Celery worker and the LLM endpoint are reported but not required: chat keeps
    answering without them (grounded answers; tasks wait in the broker)."""
    checks = {
        "database": _timed(_database),
        "cache": _timed(_cache),
        "channel_layer": _timed(_channel_layer),
        "chroma": _timed(_chroma),
        "celery": _timed(_worker),
    }
    required: tuple[str, ...] = ("database", "cache", "channel_layer", "chroma")
    if settings.ELASTICSEARCH_URL:
        checks["elasticsearch"] = _timed(_elasticsearch)
        required += ("elasticsearch",)
    for name, optional in OPTIONAL_CHECKS.items():
        if optional.wanted():
            checks[name] = _timed(optional.probe)
    failed = [name for name in required if not checks[name]["ok"]]
    return {"ready": not failed, "failed": failed, "checks": checks}


def heartbeat_age_seconds() -> float | None:
    heartbeat = Heartbeat.objects.filter(name="celery").first()
    return None if heartbeat is None else max(0.0, (timezone.now() - heartbeat.seen_at).total_seconds())


def celery_queue_depths() -> dict[str, int]:
    """Messages waiting per queue: Redis list lengths, or files in the local broker's folder."""
    from pathlib import Path

    queues = ["celery"]
    broker = settings.CELERY_BROKER_URL
    try:
        if broker.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(broker, socket_timeout=2)
            return {queue: int(client.llen(queue)) for queue in queues}
        if broker.startswith("filesystem://"):
            folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
            return {"celery": sum(1 for path in folder.iterdir() if path.suffix == ".msg")}
    except Exception:  # a metrics scrape reports what it can
        return {}
    return {}


def index_sizes() -> list[dict[str, Any]]:
    """Per organization: published articles, vectors in Chroma, documents in each keyword corpus."""
    from knowledge import keyword, vectors
    from knowledge.models import Article
    from tenancy.models import Organization

    backend = keyword.get_backend()
    rows = []
    for organization in Organization.objects.order_by("slug"):
        row: dict[str, Any] = {
            "organization": organization.slug,
            "articles": Article.objects.filter(organization=organization, status="published").count(),
        }
        measures: dict[str, tuple[Callable[..., int], tuple[Any, ...]]] = {
            "vectors": (vectors.count, (organization.pk,))
        }
        for corpus in keyword.CORPORA:
            measures[f"keyword_{corpus}"] = (backend.size, (organization.pk, corpus))
        for name, (measure, args) in measures.items():
            try:
                row[name] = measure(*args)
            except Exception as exc:
                row[name] = f"error: {type(exc).__name__}"
        rows.append(row)
    return rows


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
