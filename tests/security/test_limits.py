"""Abuse limits: widget sessions per address and organization, chat messages per session,
the API per user, the conversation length cap, and the staff login lockout."""

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client, override_settings
from rest_framework.test import APIClient

from tests.agents.test_chat import connect, receive_until, start_session
from tickets import services
from tickets.errors import ConversationFull
from tickets.limits import limit_hit, limits_hit, parse_rate
from tickets.models import Conversation, Message

pytestmark = pytest.mark.django_db


def limits(settings, **rates):
    settings.CONCIERGE_RATE_LIMITS = {**settings.CONCIERGE_RATE_LIMITS, **rates}


def test_widget_sessions_are_limited_per_address(settings, org):
    limits(settings, widget_session_ip="3/min")
    client = APIClient(REMOTE_ADDR="203.0.113.7")
    codes = [client.post("/api/v1/widget/sessions", {"widget_key": org.widget_key}, format="json").status_code
             for _ in range(4)]  # fmt: skip
    assert codes == [201, 201, 201, 429]
    refused = client.post("/api/v1/widget/sessions", {"widget_key": org.widget_key}, format="json")
    assert "throttled" in refused.json()["detail"] and int(refused["Retry-After"]) > 0
    assert Conversation.objects.count() == 3  # nothing made for refused calls
    other = APIClient(REMOTE_ADDR="203.0.113.8")
    assert other.post("/api/v1/widget/sessions", {"widget_key": org.widget_key}, format="json").status_code == 201


def test_widget_sessions_are_limited_per_organization(settings, org, other_org):
    limits(settings, widget_session_org="2/min")
    codes = [
        APIClient(REMOTE_ADDR=f"198.51.100.{n}")
        .post("/api/v1/widget/sessions", {"widget_key": org.widget_key}, format="json")
        .status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 429]
    # Another company's widget is not held back by this one's traffic.
    other = APIClient(REMOTE_ADDR="198.51.100.9")
    assert other.post("/api/v1/widget/sessions", {"widget_key": other_org.widget_key}, format="json").status_code == 201


def test_the_api_is_limited_per_staff_user(settings, api):
    limits(settings, api_user="3/min")
    codes = [api.get("/api/v1/tickets/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


@pytest.mark.django_db(transaction=True)
async def test_chat_messages_are_limited_per_session(settings, trained_org):
    limits(settings, chat_message_session="2/min")
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    for n in range(2):
        await chat.send_to(text_data=json.dumps({"type": "message", "id": f"r{n}", "text": "can I rent skis?"}))
        await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "r2", "text": "and boots?"}))
    frame = json.loads(await chat.receive_from(timeout=10))
    assert frame["type"] == "error" and frame["code"] == "rate_limited" and frame["retry_after"] >= 1
    count = await database_sync_to_async(
        Message.objects.filter(conversation_id=session["conversation_id"], role="customer").count
    )()
    assert count == 2
    await chat.disconnect()


def test_conversations_are_capped(settings, customer):
    settings.CONCIERGE_CONVERSATION_MAX_MESSAGES = 3
    conversation = services.conversation_start(customer=customer)
    for n in range(3):
        services.message_create(conversation=conversation, role="customer", text=f"m{n}")
    with pytest.raises(ConversationFull, match="start a new chat"):
        services.message_create(conversation=conversation, role="customer", text="one too many")
    assert Message.objects.filter(conversation=conversation).count() == 3


def test_limits_fail_open_when_the_cache_is_down():
    dead = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=dead):
        assert all(limit_hit(scope="t", ident="x", rate="1/min").allowed for _ in range(3))


def test_several_limits_are_counted_together_and_the_longest_wait_is_given():
    checks = [("t_session", "c1", "3/min"), ("t_ip", "198.51.100.9", "2/s"), ("t_org", "o1", "100/day")]
    verdicts = [limits_hit(checks, now=1_000_000.2) for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].retry_after == 1  # only the per-second limit is past: its window ends in under a second
    fourth = limits_hit(checks, now=1_000_000.3)
    minute_left = int((1_000_000.3 // 60 + 1) * 60 - 1_000_000.3)  # 19 s to the end of that minute
    assert not fourth.allowed and fourth.retry_after == minute_left  # the per-minute one is past too: the longer wait
    assert limit_hit(scope="t_org", ident="o1", rate="5/day", now=1_000_000.4).allowed is True  # 5th of the day


def test_rates_parse_or_fail_clearly():
    assert parse_rate("20/min") == (20, 60) and parse_rate("5/s") == (5, 1) and parse_rate("100/day") == (100, 86400)
    for bad in ("20", "x/min", "20/fortnight", "/min"):
        with pytest.raises(ValueError, match="looks like"):
            parse_rate(bad)


def test_staff_login_locks_out_after_repeated_failures(agent):
    attacker = Client(REMOTE_ADDR="192.0.2.66")
    for _ in range(4):
        page = attacker.post("/admin/login/", {"username": "alice", "password": "wrong"})
        assert page.status_code == 200  # the form again, with an error
    assert attacker.post("/admin/login/", {"username": "alice", "password": "wrong"}).status_code == 429  # fifth
    locked = attacker.post("/admin/login/", {"username": "alice", "password": "correct horse battery"})
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    # The real user, from their own address, still gets in.
    colleague = Client(REMOTE_ADDR="192.0.2.10")
    response = colleague.post("/admin/login/", {"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302
