"""The chat websocket end to end, over the real Redis channel layer and database."""

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from agents.tokens import WidgetSession, widget_token_issue
from config.asgi import application
from tests.agents.llm_server import FakeChatCompletions
from tickets import services
from tickets.models import Conversation, Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = [(b"origin", b"http://testserver")]


def start_session(org, **extra):
    response = APIClient().post("/api/v1/widget/sessions", {"widget_key": org.widget_key, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


async def connect(token):
    communicator = WebsocketCommunicator(application, f"/ws/chat/?token={token}", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def joined(communicator):
    """Wait until the socket's consumer handles frames (an answered frame shows it does)."""
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from(timeout=5))["code"] == "unknown_type"


async def receive_until(communicator, predicate, timeout=20):
    frames = []
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        frames.append(frame)
        if predicate(frame):
            return frames


def test_widget_session_validates_key_and_reuses_customer_by_email(org):
    bad = APIClient().post("/api/v1/widget/sessions", {"widget_key": "nope"}, format="json")
    assert bad.status_code == 400 and "widget key" in bad.json()["detail"]
    first = start_session(org, name="Maya", email="Maya@Example.com")
    second = start_session(org, email="maya@example.com")
    one, two = (
        Conversation.objects.get(pk=first["conversation_id"]),
        Conversation.objects.get(pk=second["conversation_id"]),
    )
    assert one.customer_id == two.customer_id and one.pk != two.pk
    assert APIClient().post("/api/v1/widget/sessions", {"widget_key": org.widget_key, "email": "x"}).status_code == 400


async def test_message_is_acked_answered_with_citation_and_stored_once(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    client_id = str(uuid.uuid4())
    await chat.send_to(text_data=json.dumps({"type": "message", "id": client_id, "text": "when will I get my refund?"}))
    frames = await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    ack = next(f for f in frames if f["type"] == "ack")
    bot = frames[-1]
    assert ack == {"type": "ack", "id": client_id, "seq": 1}
    assert bot["seq"] == 2 and bot["intent"] == "refund" and bot["handoff"] is False
    assert bot["sources"][0]["title"] == "Returns and refunds" and bot["sources"][0]["url"].startswith("https://")
    # The client retries the same message (say, the ack was lost): same ack, nothing new stored.
    await chat.send_to(text_data=json.dumps({"type": "message", "id": client_id, "text": "when will I get my refund?"}))
    assert json.loads(await chat.receive_from(timeout=10)) == ack
    count = await database_sync_to_async(Message.objects.filter(conversation_id=session["conversation_id"]).count)()
    assert count == 2
    stored = await database_sync_to_async(
        lambda: Message.objects.select_related("sentiment").get(conversation_id=session["conversation_id"], seq=1)
    )()
    assert stored.sentiment is not None
    bot_row = await database_sync_to_async(
        lambda: Message.objects.get(conversation_id=session["conversation_id"], seq=2)
    )()
    assert {"intent", "sentiment", "sources", "timings_ms"} <= set(bot_row.metadata)
    await chat.disconnect()


async def test_resume_replays_what_was_missed(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "a1", "text": "hello"}))
    await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    await chat.disconnect()
    # While the customer is offline, an agent writes.
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=session["conversation_id"])
    await database_sync_to_async(services.message_create)(conversation=conversation, role="agent", text="Still there?")
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "resume", "after": 2}))
    replayed = json.loads(await chat.receive_from(timeout=10))
    assert (replayed["seq"], replayed["role"], replayed["text"]) == (3, "agent", "Still there?")
    await chat.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    seqs = [json.loads(await chat.receive_from(timeout=10))["seq"] for _ in range(3)]
    assert seqs == [1, 2, 3]
    await chat.disconnect()


async def test_human_request_hands_off_and_agent_reply_reaches_the_widget(trained_org, supervisor):
    session = await database_sync_to_async(start_session)(trained_org, name="Maya")
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "h1", "text": "I want to talk to a human"}))
    frames = await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    assert frames[-1]["handoff"] is True
    # Right after the handoff reply: the customer's place in the queue.
    assert json.loads(await chat.receive_from(timeout=10))["type"] == "queue"
    ticket = await database_sync_to_async(
        lambda: Ticket.objects.select_related("conversation").get(conversation_id=session["conversation_id"])
    )()
    assert ticket.conversation.status == "handed_off" and ticket.priority == "medium"
    # The bot stays quiet after the handoff; a person answers from admin.
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "h2", "text": "ok, waiting"}))
    assert json.loads(await chat.receive_from(timeout=10))["type"] == "ack"
    await database_sync_to_async(services.ticket_reply)(ticket=ticket, author=supervisor, text="Hi Maya, Sam here.")
    frames = await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "agent")
    assert frames[-1]["text"] == "Hi Maya, Sam here."
    assert not [f for f in frames if f.get("role") == "bot"]
    await chat.disconnect()


async def test_bad_frames_get_error_frames_and_lose_nothing(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "k1", "text": "hello"}))
    await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    cases = [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"type": "message", "text": "no id"}), "invalid"),
        (json.dumps({"type": "message", "id": "k2", "text": "x" * 10_001}), "too_long"),
        ("x" * 70_000, "too_large"),
        (json.dumps({"type": "resume", "after": "yesterday"}), "invalid"),
        (json.dumps({"type": "csat", "score": 9}), "invalid"),
        (json.dumps({"type": "csat", "score": True}), "invalid"),
        (json.dumps({"type": "csat", "score": 5, "comment": 7}), "invalid"),
    ]
    for raw, code in cases:
        await chat.send_to(text_data=raw)
        frame = json.loads(await chat.receive_from(timeout=10))
        assert (frame["type"], frame["code"]) == ("error", code), raw[:40]
        assert frame["message"]
    count = await database_sync_to_async(Message.objects.filter(conversation_id=session["conversation_id"]).count)()
    assert count == 2
    await chat.disconnect()


async def test_a_retried_turn_whose_first_delivery_died_is_answered_once(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)

    def stored_without_answer():  # the first delivery reached the database, then its process died
        conversation = Conversation.objects.get(pk=session["conversation_id"])
        services.message_create(conversation=conversation, role="customer", text="can I rent skis?",
                                client_message_id="d1")  # fmt: skip

    await database_sync_to_async(stored_without_answer)()
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "d1", "text": "can I rent skis?"}))
    frames = await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    assert frames[0] == {"type": "ack", "id": "d1", "seq": 1} and frames[-1]["seq"] == 2
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "d1", "text": "can I rent skis?"}))
    assert json.loads(await chat.receive_from(timeout=10)) == {"type": "ack", "id": "d1", "seq": 1}
    assert await chat.receive_nothing(timeout=1)  # answered now: no second reply
    roles = await database_sync_to_async(
        lambda: list(Message.objects.filter(conversation_id=session["conversation_id"]).values_list("role", flat=True))
    )()
    assert roles == ["customer", "bot"]
    await chat.disconnect()


async def test_a_socket_is_in_its_group_and_online_when_its_handshake_completes(trained_org):
    """The socket's checks, presence and group come before the handshake is accepted: a message
    sent the moment the socket opens is not answered after them, and what is sent to the
    conversation from then on reaches it."""
    from channels.layers import get_channel_layer

    from tickets.transport import chat_is_online, conversation_group_name

    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    assert await database_sync_to_async(chat_is_online)(conversation_id=session["conversation_id"])
    frame = {"type": "message", "role": "agent", "seq": 7, "text": "Hello from the desk"}
    await get_channel_layer().group_send(
        conversation_group_name(session["conversation_id"]), {"type": "chat.message", "frame": frame}
    )
    assert json.loads(await chat.receive_from(timeout=5)) == frame
    await chat.disconnect()


async def test_bad_or_foreign_tokens_are_refused(trained_org, other_org):
    for token in ["", "garbage", widget_token_issue(WidgetSession(other_org.pk, 1, 999_999))]:
        chat = WebsocketCommunicator(application, f"/ws/chat/?token={token}", headers=ORIGIN)
        await chat.connect()
        frame = json.loads(await chat.receive_from(timeout=5))
        assert frame["type"] == "error" and frame["code"] in ("bad_token", "not_found")
        closed = await chat.receive_output(timeout=5)
        assert closed["type"] == "websocket.close" and closed["code"] in (4401, 4404)


async def test_typing_reaches_the_other_side_only(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)
    customer = await connect(session["token"])
    watcher = await connect(session["token"])  # a second tab, standing in for the staff console
    await joined(watcher)
    await customer.send_to(text_data=json.dumps({"type": "typing"}))
    assert json.loads(await watcher.receive_from(timeout=5)) == {"type": "typing", "role": "customer"}
    assert await customer.receive_nothing(timeout=0.3)
    await customer.disconnect()
    await watcher.disconnect()
    await asyncio.sleep(0)


async def test_resolving_the_ticket_asks_the_widget_for_a_rating(trained_org, supervisor):
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "r1", "text": "I want to talk to a human"}))
    await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    ticket = await database_sync_to_async(Ticket.objects.get)(conversation_id=session["conversation_id"])
    await database_sync_to_async(services.ticket_transition)(ticket=ticket, to_status="resolved", actor=supervisor)
    frames = await receive_until(chat, lambda f: f["type"] == "csat_request")
    assert frames[-1]["ticket_id"] == ticket.pk
    await chat.send_to(text_data=json.dumps({"type": "csat", "score": 5}))
    assert json.loads(await chat.receive_from(timeout=10)) == {"type": "csat", "score": 5, "status": "recorded"}
    ticket = await database_sync_to_async(Ticket.objects.select_related("customer").get)(pk=ticket.pk)
    assert ticket.csat_score == 5 and ticket.customer.satisfaction_score == 5
    assert ticket.csat_request_channel == "widget"  # the customer was online: no email
    await chat.disconnect()


async def test_a_chat_the_bot_handled_alone_is_rated_on_the_conversation(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "b1", "text": "how long do refunds take?"}))
    await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    await chat.send_to(text_data=json.dumps({"type": "csat", "score": 4, "comment": "clear answer"}))
    assert json.loads(await chat.receive_from(timeout=10)) == {"type": "csat", "score": 4, "status": "recorded"}
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=session["conversation_id"])
    assert (conversation.csat_score, conversation.csat_comment) == (4, "clear answer")
    await chat.disconnect()


async def test_a_generated_answer_streams_to_the_widget_before_it_is_final(trained_org, llm_server, settings):
    """The first words reach the widget while the LLM is still writing; the final message frame
    (the checked answer) replaces the draft. An answer that fails the support check streamed
    too, and the final frame carries the composed answer instead."""
    settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_TIMEOUT_SECONDS = llm_server, "tiny", 10
    FakeChatCompletions.answer = "Refunds take 2 business days once your return reaches our warehouse."
    FakeChatCompletions.chunk_delay = 0.1
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    timed = []

    async def until_final():
        while True:
            frame = json.loads(await chat.receive_from(timeout=20))
            timed.append((asyncio.get_running_loop().time(), frame))
            if frame["type"] == "message" and frame["role"] == "bot":
                return frame

    await chat.send_to(text_data=json.dumps({"type": "message", "id": "s1", "text": "when will I get my refund?"}))
    final = await until_final()
    streams = [(t, f) for t, f in timed if f["type"] == "stream"]
    assert len(streams) >= 5 and all(f["in_reply_to"] == 1 for _, f in streams)
    assert [f["part"] for _, f in streams] == sorted(f["part"] for _, f in streams)
    assert streams[0][1]["text"] == "Refunds" and streams[-1][1]["text"] == FakeChatCompletions.answer
    assert timed[-1][0] - streams[0][0] >= 0.5  # the first words came well before the answer was done
    assert final["text"] == FakeChatCompletions.answer and final["in_reply_to"] == 1

    FakeChatCompletions.answer = "Refunds are instant, and every return comes with a free tent as a thank-you."
    timed.clear()
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "s2", "text": "when will I get my refund?"}))
    final = await until_final()
    assert any(f["type"] == "stream" and "free tent" in f["text"] for _, f in timed)
    assert "free tent" not in final["text"] and "2 business days" in final["text"] and final["in_reply_to"] == 3
    stored = await database_sync_to_async(
        lambda: Message.objects.get(conversation_id=session["conversation_id"], seq=4)
    )()
    assert stored.metadata["llm"] == "unsupported" and stored.metadata["generated"] is False
    await chat.disconnect()
