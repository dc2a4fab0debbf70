"""Prometheus metrics. Process-local ones (HTTP, websocket, chat pipeline) use
prometheus_client; under gunicorn, PROMETHEUS_MULTIPROC_DIR makes every worker write to a
shared folder and /metrics adds them up. Figures that live elsewhere are read at scrape time:
SLA and CSAT from the database, Celery task outcomes from counters the workers keep in the
cache (Redis in production), queue depths from the broker."""

import logging
import os
from collections.abc import Iterable
from datetime import timedelta
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Any process of the deploy (web, worker, manage.py) may import this; the folder must exist.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_REQUESTS = Counter(
    "concierge_http_requests_total",
    "HTTP requests answered, by route, method and status.",
    ["view", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "concierge_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["view", "method"],
    buckets=LATENCY_BUCKETS,
)
WEBSOCKETS_OPEN = Gauge(
    "concierge_websocket_connections", "Websocket connections open now.", ["kind"], multiprocess_mode="livesum"
)
WEBSOCKET_CAPACITY = Gauge(
    "concierge_websocket_capacity",
    "Websocket connections each web process is sized for (CONCIERGE_WEBSOCKET_CAPACITY).",
    multiprocess_mode="livesum",
)
CHAT_TURNS = Counter("concierge_chat_turns_total", "Customer messages the assistant handled.", ["outcome"])
CHAT_TURN_LATENCY = Histogram(
    "concierge_chat_turn_seconds", "Pipeline time for one customer message, all stages.", buckets=STAGE_BUCKETS
)
PIPELINE_STAGE = Histogram(
    "concierge_pipeline_stage_seconds", "Latency of each dialog pipeline stage.", ["stage"], buckets=STAGE_BUCKETS
)
CHAT_TURNS_REFUSED = Counter(
    "concierge_chat_turns_refused_total",
    "Customer messages refused with a busy frame before they were stored (the widget sends them again).",
)
INTENTS = Counter("concierge_intents_total", "Intents the classifier chose.", ["intent"])
ESCALATIONS = Counter("concierge_escalations_total", "Handoffs to people, by reason.", ["reason"])
RETRIEVAL_CONFIDENCE = Histogram(
    "concierge_retrieval_confidence",
    "Best cosine similarity of the knowledge passages behind an answer.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
SENTIMENT = Counter("concierge_sentiment_total", "Customer messages by sentiment label.", ["label"])

TASK_STATES = ("succeeded", "failed", "retried")


def chat_turn_observe(metadata: dict[str, Any]) -> None:
    """Record one answered customer message from the bot message's metadata."""
    timings = metadata.get("timings_ms") or {}
    for stage, ms in timings.items():
        if isinstance(ms, int | float):
            PIPELINE_STAGE.labels(stage=stage).observe(ms / 1000)
    total = sum(ms for ms in timings.values() if isinstance(ms, int | float))
    CHAT_TURN_LATENCY.observe(total / 1000)
    outcome = "handoff" if metadata.get("handoff") else "answered" if metadata.get("answered") else "fallback"
    CHAT_TURNS.labels(outcome=outcome).inc()
    INTENTS.labels(intent=str(metadata.get("intent") or "unknown")[:60]).inc()
    confidence = metadata.get("retrieval_confidence")
    if isinstance(confidence, int | float):
        RETRIEVAL_CONFIDENCE.observe(max(0.0, float(confidence)))
    for reason in metadata.get("escalation_reasons") or []:
        ESCALATIONS.labels(reason=str(reason).split(":")[0][:60]).inc()


def chat_metrics_warm(stages: Iterable[str], sentiment_labels: Iterable[str]) -> None:
    """Make this process's series of the chat turn's metrics, at zero, before its first turn.
    Under gunicorn the metrics live in files per process, and the first value a forked worker
    touches re-reads every value it inherited (~150 of them) and the first use of each labelled
    series makes its own: 4 ms on the first turn of a fresh worker (bench/cold_start.py, issue 14)."""
    for stage in stages:
        PIPELINE_STAGE.labels(stage=stage)
    for outcome in ("answered", "fallback", "handoff"):
        CHAT_TURNS.labels(outcome=outcome)
    for label in sentiment_labels:
        SENTIMENT.labels(label=label)


def sentiment_observe(label: str) -> None:
    SENTIMENT.labels(label=label).inc()


# --- Celery task outcomes, counted across processes in the cache ---------------------------


def _task_key(task: str, state: str) -> str:
    return f"metrics:celery:{task}:{state}"


def task_outcome_count(task: str, state: str) -> None:
    _cache_count(_task_key(task, state))


# --- messages through each channel (inbound, outbound, failed), counted in the cache too ----

CHANNEL_DIRECTIONS = ("inbound", "outbound", "failed")


def _channel_key(channel: str, direction: str) -> str:
    return f"metrics:channel:{channel}:{direction}"


def channel_message_count(channel: str, direction: str) -> None:
    """One message received (inbound), handed to the provider (outbound) or given up (failed)."""
    _cache_count(_channel_key(channel, direction))


def _cache_count(key: str) -> None:
    from django.core.cache import cache

    try:
        if not cache.add(key, 1, timeout=None):
            cache.incr(key)
    except Exception:  # metrics never break a task
        logging.getLogger(__name__).debug("%s not counted", key, exc_info=True)


@lru_cache(maxsize=1)
def _our_tasks() -> tuple[str, ...]:
    """Our task names: fixed for the life of the process, so looked up once."""
    from config.celery import app
    from monitoring.services import OWN_TASK_PREFIXES

    app.loader.import_default_modules()
    return tuple(sorted(name for name in app.tasks if name.startswith(OWN_TASK_PREFIXES)))


class DeskCollector(Collector):
    """Figures read at scrape time from the database, the cache and the broker."""

    def describe(self) -> Iterable[Any]:
        return []  # nothing to query when registered; names come with each scrape

    def collect(self) -> Iterable[Any]:
        from django.core.cache import cache
        from django.db.models import Count
        from django.utils import timezone

        from monitoring.services import celery_queue_depths, heartbeat_age_seconds
        from tickets.models import ReplySuggestion, Ticket
        from tickets.selectors import sla_at_risk_q, sla_breached_q, suggestion_outcomes
        from tickets.services import suggestion_rates

        now = timezone.now()
        sla = GaugeMetricFamily(
            "concierge_sla_tickets", "Active tickets at risk of or past their SLA.", labels=["state"]
        )
        sla.add_metric(["at_risk"], Ticket.objects.filter(sla_at_risk_q(now)).count())
        sla.add_metric(["breached"], Ticket.objects.filter(sla_breached_q(now)).count())
        yield sla

        since = now - timedelta(days=30)
        ratings = dict(
            Ticket.objects.filter(csat_score__isnull=False, resolved_at__gte=since)
            .values_list("csat_score")
            .annotate(n=Count("id"))
            .values_list("csat_score", "n")
        )
        csat = GaugeMetricFamily(
            "concierge_csat_ratings", "Ticket ratings in the last 30 days, by score.", labels=["score"]
        )
        for score in range(1, 6):
            csat.add_metric([str(score)], ratings.get(score, 0))
        yield csat
        total = sum(ratings.values())
        mean = sum(score * n for score, n in ratings.items()) / total if total else float("nan")
        yield GaugeMetricFamily("concierge_csat_mean", "Mean ticket rating over the last 30 days.", value=mean)

        suggestions = suggestion_outcomes(since=since)
        offered = GaugeMetricFamily(
            "concierge_reply_suggestions",
            "Replies the assistant suggested to agents in the last 30 days, by what the agent did.",
            labels=["outcome"],
        )
        for outcome in ReplySuggestion.Outcome.values:
            offered.add_metric([outcome], suggestions.get(outcome, 0))
        yield offered
        rate = suggestion_rates(suggestions)["acceptance_rate"]
        yield GaugeMetricFamily(
            "concierge_reply_suggestion_acceptance",
            "Share of decided suggestions (last 30 days) sent as drafted (NaN: none decided).",
            value=float("nan") if rate is None else float(rate),
        )

        yield _channel_messages(cache)

        tasks = CounterMetricFamily(
            "concierge_celery_tasks", "Celery task outcomes counted by the workers.", labels=["task", "state"]
        )
        names = _our_tasks()
        keys = {_task_key(name, state): (name, state) for name in names for state in TASK_STATES}
        try:
            counts = cache.get_many(list(keys))
        except Exception:
            counts = {}
        for key, (name, state) in keys.items():
            tasks.add_metric([name, state], float(counts.get(key) or 0))
        yield tasks

        depth = GaugeMetricFamily("concierge_celery_queue_depth", "Messages waiting in the broker.", labels=["queue"])
        for queue, waiting in celery_queue_depths().items():
            depth.add_metric([queue], waiting)
        yield depth

        age = heartbeat_age_seconds()
        yield GaugeMetricFamily(
            "concierge_celery_heartbeat_age_seconds",
            "Seconds since a Celery worker last ran the heartbeat task (+Inf: never).",
            value=float("inf") if age is None else age,
        )


def _channel_messages(cache: Any) -> CounterMetricFamily:
    from tickets.models import Channel

    family = CounterMetricFamily(
        "concierge_channel_messages",
        "Messages through each channel: received, handed to the provider, given up as failed.",
        labels=["channel", "direction"],
    )
    keys = {_channel_key(c, d): (c, d) for c in Channel.values for d in CHANNEL_DIRECTIONS}
    try:
        counts = cache.get_many(list(keys))
    except Exception:
        counts = {}
    for key, labels in keys.items():
        family.add_metric(list(labels), float(counts.get(key) or 0))
    return family


_desk = DeskCollector()
_desk_registered = False


def metrics_render() -> tuple[bytes, str]:
    """The exposition text of every metric, summed over web processes when multiprocess."""
    global _desk_registered
    from django.conf import settings

    WEBSOCKET_CAPACITY.set(settings.CONCIERGE_WEBSOCKET_CAPACITY)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_desk)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    if not _desk_registered:
        REGISTRY.register(_desk)
        _desk_registered = True
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
