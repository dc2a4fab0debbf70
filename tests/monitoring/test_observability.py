"""What operators see: /metrics (and who may read it), /readyz, ops_status, JSON logs with
the ids of the work in progress, and sampled or slow-request profiles in admin."""

import json
import logging
import re
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from config.celery import app as celery_app
from monitoring.logs import JsonFormatter
from monitoring.models import RequestProfile
from monitoring.profiling import request_profiles_prune
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db


@contextmanager
def kept_lines(name: str, level: int = logging.INFO):
    """The records one logger writes inside the block (whatever other handlers do)."""

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(level)
            self.records = []

        def emit(self, record):
            self.records.append(record)

    logger, handler = logging.getLogger(name), Keep()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text output."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0] if "{" not in line else line[: line.index("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_are_for_the_scraper_only(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    settings.METRICS_TOKEN = "s3cret-scrape"
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-scrape")
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")
    assert client.get("/metrics").status_code == 200  # loopback is allowed by default


def test_metrics_count_requests_by_route_and_read_the_desk(client, api, org, monkeypatch):
    before = REGISTRY.get_sample_value(
        "concierge_http_requests_total", {"view": "api/v1/tickets/", "method": "GET", "status": "200"}
    )
    assert api.get("/api/v1/tickets/").status_code == 200
    late = TicketFactory(customer=CustomerFactory(organization=org), priority="urgent")
    Ticket.objects.filter(pk=late.pk).update(first_response_due=late.created_at.replace(year=2000))
    rated = TicketFactory(customer=CustomerFactory(organization=org))
    services.ticket_transition(ticket=rated, to_status="resolved")
    services.ticket_csat_record(ticket=Ticket.objects.get(pk=rated.pk), score=4)
    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)
    from tickets.tasks import sla_check

    sla_check.delay()

    text = client.get("/metrics").content.decode()
    after = sample(text, "concierge_http_requests_total", view="api/v1/tickets/", method="GET", status="200")
    assert after == (before or 0) + 1
    assert sample(text, "concierge_http_request_duration_seconds_count", view="api/v1/tickets/") >= 1
    assert sample(text, "concierge_sla_tickets", state="breached") == 1
    assert sample(text, "concierge_csat_ratings", score="4") == 1 and sample(text, "concierge_csat_mean") == 4
    assert sample(text, "concierge_celery_tasks_total", task="tickets.tasks.sla_check", state="succeeded") >= 1
    assert sample(text, "concierge_celery_queue_depth", queue="celery") is not None
    assert sample(text, "concierge_celery_heartbeat_age_seconds") == float("inf")  # no worker in this test
    assert sample(text, "concierge_websocket_capacity") == 2000


def test_a_bot_turn_feeds_the_pipeline_metrics_and_logs_its_conversation(trained_org):
    from agents.services import assistant_reply

    customer = CustomerFactory(organization=trained_org)
    conversation = services.conversation_start(customer=customer)
    message, _ = services.message_create(conversation=conversation, role="customer", text="how do refunds work?")
    turns = REGISTRY.get_sample_value("concierge_chat_turns_total", {"outcome": "answered"}) or 0
    embeds = REGISTRY.get_sample_value("concierge_pipeline_stage_seconds_count", {"stage": "retrieve"}) or 0
    with kept_lines("agents.services") as lines:
        reply = assistant_reply(message_id=message.pk)
    assert reply.metadata["answered"] is True
    assert REGISTRY.get_sample_value("concierge_chat_turns_total", {"outcome": "answered"}) == turns + 1
    assert REGISTRY.get_sample_value("concierge_pipeline_stage_seconds_count", {"stage": "retrieve"}) == embeds + 1
    intent = reply.metadata["intent"]
    assert REGISTRY.get_sample_value("concierge_intents_total", {"intent": intent}) >= 1
    [line] = [r for r in lines if r.getMessage().startswith("bot turn")]
    assert json.loads(JsonFormatter().format(line))["conversation_id"] == conversation.pk


def test_every_request_gets_an_id_on_its_log_lines_and_response(api):
    with kept_lines("concierge.access") as lines:
        response = api.get("/api/v1/tickets/", HTTP_X_REQUEST_ID="req-42")
        fresh = api.get("/api/v1/tickets/")
    assert response["X-Request-ID"] == "req-42"
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["X-Request-ID"])
    first = lines[0]
    entry = json.loads(JsonFormatter().format(first))
    assert entry["request_id"] == "req-42" and entry["status"] == 200 and entry["view"] == "api/v1/tickets/"
    assert entry["message"].startswith("GET /api/v1/tickets/ 200") and entry["level"] == "INFO"
    garbage = api.get("/api/v1/tickets/", HTTP_X_REQUEST_ID='x" injected' + "y" * 80)
    assert re.fullmatch(r"[0-9a-f]{32}", garbage["X-Request-ID"])  # not echoed: too long, has a quote


def test_task_log_lines_carry_the_task_id(monkeypatch):
    from tests.monitoring.test_celery_ops import always_fails

    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)
    with kept_lines("concierge.tasks", logging.ERROR) as lines:
        result = always_fails.delay(7)
    [line] = lines
    assert json.loads(JsonFormatter().format(line))["task_id"] == result.id


def test_readyz_reports_each_dependency_with_latency(client, settings):
    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "tiny"  # nothing listens on 9
    body = client.get("/readyz").json()
    for name in ("database", "cache", "channel_layer", "chroma", "celery", "llm"):
        assert "latency_ms" in body["checks"][name], name
    assert body["checks"]["database"]["ok"] and body["checks"]["channel_layer"]["ok"]
    assert body["checks"]["llm"]["ok"] is False and body["ready"] is True  # optional: reported, not required


def test_ops_status_prints_the_picture_and_fails_when_not_ready(trained_org, capsys):
    call_command("ops_status")
    out = capsys.readouterr().out
    assert "ready: yes" in out and "channel_layer" in out and "celery queues: celery" in out
    assert re.search(r"acme\s+articles 16\s+vectors 38\s+keyword kb 38", out), out  # English and Chinese
    call_command("ops_status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert status["desk"]["active_tickets"] == 0 and status["indexes"][0]["articles"] == 16
    dead_cache = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=dead_cache), pytest.raises(CommandError, match="not ready: cache down"):
        call_command("ops_status")


def test_sampled_and_slow_requests_are_profiled_with_sql(agent, admin_user, ticket):
    with override_settings(CONCIERGE_PROFILE_SAMPLE_RATE=1.0):
        client = Client()
        client.force_login(agent)
        assert client.get("/api/v1/tickets/").status_code == 200
    profile = RequestProfile.objects.get()
    assert (profile.reason, profile.method, profile.view, profile.status) == ("sampled", "GET", "api/v1/tickets/", 200)
    assert profile.sql_count >= 3 and profile.sql_ms > 0 and profile.duration_ms > 0
    assert "Samples:" in profile.call_tree and len(profile.call_tree.splitlines()) > 5
    assert profile.slowest and {"function", "self_ms", "total_ms"} <= set(profile.slowest[0])

    with override_settings(CONCIERGE_PROFILE_SLOW_MS=60_000):  # nothing is that slow: nothing kept
        client = Client()
        client.force_login(agent)
        client.get("/api/v1/tickets/")
    assert RequestProfile.objects.count() == 1
    with override_settings(CONCIERGE_PROFILE_SLOW_MS=0.001):
        client = Client()
        client.force_login(agent)
        client.get(f"/api/v1/tickets/{ticket.pk}/")
    assert RequestProfile.objects.filter(reason="slow", view="api/v1/tickets/<pk>/").count() == 1

    staff = Client()
    staff.force_login(admin_user)
    page = staff.get(f"/admin/monitoring/requestprofile/{profile.pk}/change/")
    assert page.status_code == 200 and "Slowest functions" in page.content.decode() and "<pre" in page.content.decode()
    staff.force_login(agent)
    assert staff.get("/admin/monitoring/requestprofile/").status_code == 403


def test_old_and_surplus_profiles_are_pruned():
    from datetime import timedelta

    from django.utils import timezone

    for i in range(5):
        RequestProfile.objects.create(
            method="GET", path=f"/p{i}", status=200, duration_ms=i, reason="sampled", call_tree="", slowest=[]
        )
    RequestProfile.objects.filter(path="/p0").update(created_at=timezone.now() - timedelta(days=30))
    assert request_profiles_prune(keep_days=7, keep_max=3) == 2
    assert sorted(RequestProfile.objects.values_list("path", flat=True)) == ["/p2", "/p3", "/p4"]


def test_message_text_never_reaches_the_access_log(api, customer):
    conversation = services.conversation_start(customer=customer)
    with kept_lines("") as lines:
        api.post(f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "my card is 4111"}, format="json")
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert lines and not any("4111" in JsonFormatter().format(r) for r in lines)


def test_a_worker_makes_its_chat_turn_series_at_zero_before_its_first_turn():
    from monitoring.metrics import chat_metrics_warm

    answered = REGISTRY.get_sample_value("concierge_chat_turns_total", {"outcome": "answered"})
    assert REGISTRY.get_sample_value("concierge_pipeline_stage_seconds_count", {"stage": "warm-check"}) is None
    chat_metrics_warm(["warm-check"], ["warm-label"])
    assert REGISTRY.get_sample_value("concierge_pipeline_stage_seconds_count", {"stage": "warm-check"}) == 0
    assert REGISTRY.get_sample_value("concierge_sentiment_total", {"label": "warm-label"}) == 0
    assert REGISTRY.get_sample_value("concierge_chat_turns_total", {"outcome": "handoff"}) is not None
    # Made, not counted: what was counted before stays as it was.
    assert REGISTRY.get_sample_value("concierge_chat_turns_total", {"outcome": "answered"}) == (answered or 0)
