"""A chat turn under load: admission (a busy frame instead of an unbounded queue), the turn's
frames sent straight to the customer's socket and through Redis to the others, and one
embedding a turn, batched with other turns' queries."""

import asyncio
import json
import os
import threading

import numpy as np
import pytest
from channels.db import database_sync_to_async

from agents import turns
from agents.pipeline import ConversationContext, run_pipeline
from agents.turns import TurnGate
from knowledge import embeddings
from knowledge.embeddings import QueryBatcher
from tests.agents.test_chat import connect, joined, receive_until, start_session
from tests.support import exhausted_pool
from tickets.models import Message


def test_the_gate_takes_turns_until_the_expected_wait_passes_the_limit():
    gate = TurnGate(threads=2, busy_wait=1.0)
    gate.turn_seconds = 0.5  # each turn keeps a thread half a second
    # The fifth finds 4 ahead: 4 x 0.5 s / 2 threads = 1 s, not over the limit.
    assert all(gate.admit() for _ in range(5))
    assert gate.admit() is False  # a sixth would wait 1.25 s
    assert gate.retry_after() >= 2  # never under two seconds, past the queued work
    gate.done(0.5)
    assert gate.admit() is True  # room again once a turn ends
    gate.done(0.1)  # fast turns bring the expected wait down
    assert gate.turn_seconds < 0.5
    gate.close()


def test_query_batcher_runs_queries_that_arrive_together_as_one_batch():
    release = threading.Event()
    batches: list[list[str]] = []

    def run(texts: list[str]) -> np.ndarray:
        batches.append(texts)
        if len(batches) == 1:
            release.wait(5)  # the model is busy: later queries queue up meanwhile
        return np.array([[float(len(t))] for t in texts])

    batcher = QueryBatcher(run)
    results: dict[str, float] = {}

    def ask(text: str) -> None:
        results[text] = float(batcher.embed(text)[0])

    first = threading.Thread(target=ask, args=("a",))
    first.start()
    while not batches:
        pass
    others = [threading.Thread(target=ask, args=("b" * n,)) for n in range(2, 7)]
    for thread in others:
        thread.start()
    while len(batcher.waiting) < len(others):
        pass
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    # Six queries, two model runs; every caller got its own vector.
    assert [len(b) for b in batches] == [1, 5]
    assert results == {"a": 1.0, **{"b" * n: float(n) for n in range(2, 7)}}


def test_a_failing_batch_reaches_every_caller_and_the_next_batch_runs():
    calls = []

    def run(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("model down")
        return np.zeros((len(texts), 1))

    batcher = QueryBatcher(run)
    with pytest.raises(RuntimeError, match="model down"):
        batcher.embed("x")
    assert batcher.embed("y").shape == (1,) and not batcher.running


@pytest.mark.django_db
def test_a_turn_embeds_the_message_once_for_intent_and_retrieval(trained_org):
    batcher = embeddings.get_embedder().batcher
    run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))  # warm
    before = batcher.batches
    state = run_pipeline("when will I get my refund?", ConversationContext(trained_org.pk))
    assert batcher.batches == before + 1
    assert state["intent"] == "refund" and state["sources"]  # and both stages used it


@pytest.mark.django_db(transaction=True)
async def test_a_busy_process_refuses_before_storing_and_the_resent_message_is_answered(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    gate = turns.turn_gate()
    saved = (gate.in_flight, gate.busy_wait)
    gate.in_flight, gate.busy_wait = gate.threads * 100, 0.0  # the process is full
    try:
        await chat.send_to(text_data=json.dumps({"type": "message", "id": "b1", "text": "can I rent skis?"}))
        refused = json.loads(await chat.receive_from(timeout=10))
    finally:
        gate.in_flight, gate.busy_wait = saved
    assert refused["type"] == "error" and refused["code"] == "busy" and refused["retry_after"] >= 2
    stored = await database_sync_to_async(Message.objects.filter(conversation_id=session["conversation_id"]).count)()
    assert stored == 0  # refused, so not stored: nothing to answer later, nothing lost
    # The widget sends it again under the same id once the wait is over.
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "b1", "text": "can I rent skis?"}))
    frames = await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    assert frames[0] == {"type": "ack", "id": "b1", "seq": 1}
    await chat.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_message_that_gets_no_database_connection_in_time_is_refused_busy_and_stored_when_sent_again(
    trained_org,
):
    """Overload at the database: every connection of the process's real psycopg pool is in use
    for the pool's whole timeout. The message cannot be stored: a busy frame (not the outage's
    `unavailable`), no ack, nothing stored; sent again once connections are free, it is stored
    once and answered."""
    session = await database_sync_to_async(start_session)(trained_org)
    chat = await connect(session["token"])
    await joined(chat)
    # Fresh turn threads, holding no connection from an earlier call: every one must ask the pool.
    # (Channels' test communicator turns close_old_connections into a no-op while it sends and
    # receives, so under it the turn threads keep their connections between calls; served for
    # real they hand them back after each call, as the test below checks.)
    await database_sync_to_async(turns.turn_gate_close)()
    with exhausted_pool():
        await chat.send_to(text_data=json.dumps({"type": "message", "id": "d1", "text": "can I rent skis?"}))
        refused = json.loads(await chat.receive_from(timeout=10))
    assert refused["type"] == "error" and refused["code"] == "busy", refused
    assert refused["retry_after"] == 1
    stored = await database_sync_to_async(Message.objects.filter(conversation_id=session["conversation_id"]).count)()
    assert stored == 0
    await chat.send_to(text_data=json.dumps({"type": "message", "id": "d1", "text": "can I rent skis?"}))
    frames = await receive_until(chat, lambda f: f["type"] == "message" and f["role"] == "bot")
    assert frames[0] == {"type": "ack", "id": "d1", "seq": 1}
    await chat.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_every_call_on_the_turn_threads_hands_its_database_connection_back_to_the_pool():
    """A chat turn's calls run on the turn threads, each taking a connection from the process's
    psycopg pool; each hands it back as it ends, so idle threads hold none: a process with
    hundreds of idle chats holds no connections for them, and none survives a PostgreSQL restart
    to fail the next turn. (Run here without Channels' test communicator, which keeps them.)"""
    from django.db import connection

    pool = connection.pool
    assert pool is not None, "the tests run on PostgreSQL with the connection pool, as production does"
    gate = TurnGate(threads=2, busy_wait=1.0)
    try:
        before = pool.get_stats()
        for _ in range(6):
            await gate.run(Message.objects.count)
        after = pool.get_stats()
    finally:
        await database_sync_to_async(gate.close, thread_sensitive=False)()

    def checked_out(stats: dict[str, int]) -> int:
        return stats["pool_size"] - stats["pool_available"]

    assert after["requests_num"] - before["requests_num"] == 6  # each call asked the pool anew
    assert checked_out(after) == checked_out(before)


@pytest.mark.django_db(transaction=True)
async def test_the_turn_reaches_its_own_socket_once_and_other_tabs_through_redis(trained_org):
    session = await database_sync_to_async(start_session)(trained_org)
    asking, other_tab = await connect(session["token"]), await connect(session["token"])
    await joined(other_tab)
    await asking.send_to(text_data=json.dumps({"type": "message", "id": "t1", "text": "can I rent skis?"}))
    own = await receive_until(asking, lambda f: f["type"] == "message" and f["role"] == "bot")
    seen = await receive_until(other_tab, lambda f: f["type"] == "message" and f["role"] == "bot")
    # The asking socket: ack, its message, typing, the reply; and nothing more comes through
    # the channel layer (it was left out of the group send).
    assert [(f["type"], f.get("role")) for f in own if f["type"] != "typing"] == [
        ("ack", None),
        ("message", "customer"),
        ("message", "bot"),
    ]
    assert await asking.receive_nothing(timeout=1)
    # The other tab gets both messages, in order, through Redis.
    assert [(f["seq"], f["role"]) for f in seen if f["type"] == "message"] == [(1, "customer"), (2, "bot")]
    await asking.disconnect()
    await other_tab.disconnect()


@pytest.mark.django_db(transaction=True)
def test_a_worker_rehearses_once_on_each_turn_thread_each_with_its_own_connection(monkeypatch):
    gate = TurnGate(threads=3, busy_wait=1.0)
    monkeypatch.setattr(turns, "_gate", gate)
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def rehearse() -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with lock:
            seen.append((threading.current_thread().name, pid))

    try:
        turns.turn_threads_warm(rehearse)
        names = {name for name, _ in seen}
        assert len(seen) == 3 and len(names) == 3 and all(n.startswith("chat-turn") for n in names)
        assert len({pid for _, pid in seen}) == 3  # at the same time: three pooled connections warmed

        def fail() -> None:
            raise RuntimeError("the database is down")

        with pytest.raises(RuntimeError, match="down"):  # the caller logs it; the process serves
            turns.turn_threads_warm(fail)
        turns.turn_threads_warm()  # without a rehearsal: the threads' connections, handed back
    finally:
        gate.close()


@pytest.mark.django_db(transaction=True)
def test_a_worker_warms_the_turn_on_the_warming_threads_connection_too(trained_org, monkeypatch):
    """The pool hands its connections out first in, first out, to the turn threads too, so the
    connection the boot's warming used (the lifespan thread's) goes to a customer's turn soon
    after: it holds the turn's statements prepared, as the turn threads' connections do."""
    from django.apps import apps
    from django.db import connections

    from tests.support import prepared_statements

    gate = TurnGate(threads=2, busy_wait=1.0)
    monkeypatch.setattr(turns, "_gate", gate)
    kept: list[str] = []

    def lifespan() -> None:
        try:
            apps.get_app_config("agents").warm()
            kept.extend(prepared_statements())
        finally:
            connections.close_all()

    try:
        thread = threading.Thread(target=lifespan)
        thread.start()
        thread.join(timeout=120)
        # The conversation's lock and the reply's insert, which only a whole turn runs (the
        # reading stages the warming ran first on this connection run neither).
        assert [sql for sql in kept if "FOR UPDATE" in sql and '"tickets_conversation"' in sql and "$1" in sql], kept
        assert [sql for sql in kept if sql.startswith('INSERT INTO "tickets_message"') and "$1" in sql], kept
        assert Message.objects.filter(conversation__customer__name="rehearsal").count() == 0
    finally:
        gate.close()


@pytest.mark.django_db(transaction=True)
async def test_at_startup_each_turn_thread_sends_once_through_the_channel_layer_to_the_serving_loop(monkeypatch):
    """What a turn's broadcasts after commit do, done once per thread before the first chat:
    the send runs on each of the gate's threads and arrives through the real channel layer."""
    from channels.layers import get_channel_layer

    from tickets import transport

    gate = TurnGate(threads=3, busy_wait=1.0)
    monkeypatch.setattr(turns, "_gate", gate)
    senders: list[str] = []
    send = transport.groups_send

    def recorded(sends):
        senders.append(threading.current_thread().name)
        return send(sends)

    monkeypatch.setattr(transport, "groups_send", recorded)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(f"warmup.{os.getpid()}", channel)
    try:
        await turns.turn_threads_hop_warm()
        received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(3)]
        assert [event["type"] for event in received] == ["warmup"] * 3
        assert len(set(senders)) == 3 and all(name.startswith("chat-turn") for name in senders)
    finally:
        await layer.group_discard(f"warmup.{os.getpid()}", channel)
        await database_sync_to_async(gate.close)()


async def test_several_group_sends_go_together_each_reaching_its_members_but_the_one_left_out(settings):
    """config.channel_layer.groups_send_except against the real Redis: a member left out of one
    group still gets another group's event, and an empty group is no error."""
    from config.channel_layer import ResilientRedisChannelLayer

    layer = ResilientRedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    asking, other_tab, console = [await layer.new_channel() for _ in range(3)]
    tag = os.urandom(4).hex()
    chat, staff, nobody = f"chat-{tag}", f"console-{tag}", f"empty-{tag}"
    for group, channel in ((chat, asking), (chat, other_tab), (staff, console), (staff, asking)):
        await layer.group_add(group, channel)
    await layer.groups_send_except(
        [
            (chat, {"type": "chat.message", "n": 1}, asking),
            (staff, {"type": "console.message", "n": 2}, ""),
            (nobody, {"type": "chat.message", "n": 3}, ""),
        ]
    )
    assert (await layer.receive(other_tab))["n"] == 1
    assert (await layer.receive(console))["n"] == 2
    assert (await layer.receive(asking))["n"] == 2  # the console's event; not the chat's
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await layer.receive(asking)
    for group, channel in ((chat, asking), (chat, other_tab), (staff, console), (staff, asking)):
        await layer.group_discard(group, channel)
