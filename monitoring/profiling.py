"""Request profiling with pyinstrument, and a per-request SQL meter.

A request is profiled when it is sampled (CONCIERGE_PROFILE_SAMPLE_RATE), or, with a slow
threshold set (CONCIERGE_PROFILE_SLOW_MS), every request is profiled and only those slower
than the threshold are kept. Kept profiles are RequestProfile rows, browsable in admin."""

import contextvars
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from monitoring.models import RequestProfile


@dataclass
class SqlMeter:
    count: int = 0
    seconds: float = 0.0


_sql_meter: contextvars.ContextVar[SqlMeter | None] = contextvars.ContextVar("sql_meter", default=None)


def _sql_timer(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    meter = _sql_meter.get()
    if meter is None:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        meter.count += 1
        meter.seconds += time.perf_counter() - started


@receiver(connection_created)
def _meter_new_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Installed once per connection; it only measures while a request has a meter set.
    if _sql_timer not in connection.execute_wrappers:
        connection.execute_wrappers.append(_sql_timer)


def sql_meter_start() -> tuple[SqlMeter, contextvars.Token[SqlMeter | None]]:
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if _sql_timer not in connection.execute_wrappers:
            connection.execute_wrappers.append(_sql_timer)
    meter = SqlMeter()
    return meter, _sql_meter.set(meter)


def sql_meter_stop(token: contextvars.Token[SqlMeter | None]) -> None:
    _sql_meter.reset(token)


def profiling_wanted() -> tuple[bool, bool]:
    """(profile this request, because it was sampled)."""
    sampled = settings.CONCIERGE_PROFILE_SAMPLE_RATE > 0 and random.random() < settings.CONCIERGE_PROFILE_SAMPLE_RATE  # noqa: S311
    return sampled or settings.CONCIERGE_PROFILE_SLOW_MS > 0, sampled


def slowest_functions(session: Any, limit: int = 15) -> list[dict[str, Any]]:
    """Functions by self time (time on the stack top), summed over the whole call tree."""
    totals: dict[str, dict[str, Any]] = {}
    root = session.root_frame()
    stack = [root] if root is not None else []
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        if frame.is_synthetic:
            continue
        key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        entry = totals.setdefault(key, {"function": key, "self_ms": 0.0, "total_ms": 0.0})
        entry["self_ms"] += frame.total_self_time * 1000
        entry["total_ms"] = max(entry["total_ms"], frame.time * 1000)
    rows = sorted(totals.values(), key=lambda r: r["self_ms"], reverse=True)[:limit]
    return [{**r, "self_ms": round(r["self_ms"], 2), "total_ms": round(r["total_ms"], 2)} for r in rows]


def request_profile_store(
    *,
    profiler: Any,
    method: str,
    path: str,
    view: str,
    status: int,
    duration_ms: float,
    meter: SqlMeter,
    sampled: bool,
    request_id: str,
) -> RequestProfile | None:
    """Keep the profile when it was sampled or slow; otherwise drop it."""
    slow = settings.CONCIERGE_PROFILE_SLOW_MS > 0 and duration_ms >= settings.CONCIERGE_PROFILE_SLOW_MS
    if not (sampled or slow):
        return None
    session = profiler.last_session
    if session is None:
        return None
    return RequestProfile.objects.create(
        method=method[:10],
        path=path[:500],
        view=view[:200],
        status=status,
        duration_ms=round(duration_ms, 2),
        sql_count=meter.count,
        sql_ms=round(meter.seconds * 1000, 2),
        reason=RequestProfile.Reason.SLOW if slow else RequestProfile.Reason.SAMPLED,
        request_id=request_id,
        call_tree=profiler.output_text(unicode=True, color=False, show_all=False)[:200_000],
        slowest=slowest_functions(session),
    )


def request_profiles_prune(*, keep_days: int | None = None, keep_max: int | None = None) -> int:
    """Delete profiles older than the retention, and beyond the newest keep_max."""
    from datetime import timedelta

    from django.utils import timezone

    keep_days = settings.CONCIERGE_PROFILE_RETENTION_DAYS if keep_days is None else keep_days
    keep_max = settings.CONCIERGE_PROFILE_MAX_ROWS if keep_max is None else keep_max
    deleted = RequestProfile.objects.filter(created_at__lt=timezone.now() - timedelta(days=keep_days)).delete()[0]
    cutoff = RequestProfile.objects.order_by("-created_at").values_list("created_at", flat=True)[
        keep_max : keep_max + 1
    ]
    if cutoff:
        deleted += RequestProfile.objects.filter(created_at__lte=cutoff[0]).delete()[0]
    return deleted
