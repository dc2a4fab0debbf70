"""Knowledge changes reach the search legs at once, and the clients behind them are made once
per process even when many first requests arrive together (the cross-process checks on real
servers are in tests/deploy/test_knowledge_freshness.py and tests/test_local_stack.py)."""

import asyncio
import logging
import threading
import time

import pytest
from django.db import connection

from config import clients
from config.celery import app as celery_app
from knowledge import embeddings, keyword, vectors
from knowledge.models import Article, Chunk
from knowledge.search import kb_search
from knowledge.services import (
    kb_article_delete,
    kb_article_index,
    kb_article_publish,
    kb_article_unpublish,
)
from tests.knowledge.factories import ArticleFactory

ALPACA_QUESTION = "Can I bring my alpaca to the climbing wall?"
ALPACA_BODY = (
    "Alpacas are welcome at the climbing wall on Tuesday mornings, on a lead and with a member. "
    "Bring your alpaca's vaccination card to the front desk; alpacas may not climb."
)


def alpaca_article(org):
    return ArticleFactory(organization=org, title="Alpacas at the climbing wall", body=ALPACA_BODY)


def cited_titles(org):
    return [hit.title for hit in kb_search(organization_id=org.pk, query=ALPACA_QUESTION, k=3).hits]


@pytest.mark.django_db
def test_publish_unpublish_and_delete_move_the_article_in_and_out_of_both_legs(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)  # the queued tasks run here
    vectors.drop_collection(org.pk)
    article = alpaca_article(org)
    with django_capture_on_commit_callbacks(execute=True):
        kb_article_publish(article=article)
    result = kb_search(organization_id=org.pk, query=ALPACA_QUESTION, k=3)
    assert result.hits[0].title == "Alpacas at the climbing wall"
    assert result.hits[0].similarity > 0.5 and result.confidence == result.hits[0].similarity  # the vector leg
    chunk_ids = [str(pk) for pk in Chunk.objects.filter(article=article).values_list("pk", flat=True)]
    assert vectors.count(org.pk) == len(chunk_ids) > 0

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        kb_article_unpublish(article=article)
    assert [c.__qualname__.split(".")[0] for c in callbacks][:1] == ["kb_article_queue_indexing"]
    assert Article.objects.get(pk=article.pk).status == Article.Status.DRAFT
    assert vectors.count(org.pk) == 0 and not Chunk.objects.filter(article=article).exists()
    assert "Alpacas at the climbing wall" not in cited_titles(org)

    with django_capture_on_commit_callbacks(execute=True):
        kb_article_publish(article=article)
    assert cited_titles(org)[0] == "Alpacas at the climbing wall"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        kb_article_delete(article=article)
    assert any("kb_article_delete" in c.__qualname__ for c in callbacks)
    assert not Article.objects.filter(pk=article.pk).exists()
    assert vectors.count(org.pk) == 0
    assert "Alpacas at the climbing wall" not in cited_titles(org)


@pytest.mark.django_db
def test_deleting_an_article_in_admin_purges_its_vectors(org, monkeypatch, django_capture_on_commit_callbacks):
    from django.test import Client

    from tenancy.models import StaffRole
    from tests.tenancy.factories import StaffFactory

    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)
    vectors.drop_collection(org.pk)
    article = alpaca_article(org)
    kb_article_publish(article=article)
    kb_article_index(article_id=article.pk)
    assert vectors.count(org.pk) > 0
    client = Client()
    client.force_login(StaffFactory(organization=org, username="olga", role=StaffRole.ADMIN))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/knowledge/article/{article.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Article.objects.filter(pk=article.pk).exists()
    assert vectors.count(org.pk) == 0


def test_a_client_is_made_once_when_many_threads_ask_at_once():
    made = []

    @clients.process_client
    def slow_client(address: str) -> object:
        made.append(address)
        time.sleep(0.05)  # long enough for every thread to miss the cache together
        return object()

    barrier = threading.Barrier(50)
    got: list[object] = []

    def ask() -> None:
        barrier.wait()
        got.append(slow_client("127.0.0.1:1"))

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["127.0.0.1:1"]
    assert len(got) == 50 and len({id(client) for client in got}) == 1
    assert slow_client("127.0.0.1:2") is not got[0] and made == ["127.0.0.1:1", "127.0.0.1:2"]


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_first_searches_on_a_cold_process(org):
    vectors.drop_collection(org.pk)
    article = alpaca_article(org)
    kb_article_publish(article=article)
    kb_article_index(article_id=article.pk)
    clients.forget_all()  # as in a process that has made no client yet
    vectors._forget_collection(org.pk)

    barrier = threading.Barrier(50)
    errors: list[BaseException] = []
    firsts: list[str] = []

    def search() -> None:
        try:
            barrier.wait()
            firsts.append(kb_search(organization_id=org.pk, query=ALPACA_QUESTION, k=3).hits[0].title)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=search) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert firsts == ["Alpacas at the climbing wall"] * 50
    assert vectors._client.made() == 1 and embeddings.get_embedder.made() == 1
    assert keyword._backend_for.made() == 1


def test_lifespan_startup_warms_the_process_before_it_serves(settings, caplog):
    from config.asgi import application

    clients.forget_all()
    assert embeddings.get_embedder.made() == 0 and vectors._client.made() == 0
    sent: list[dict] = []
    events = asyncio.Queue()

    async def lifespan() -> None:
        await events.put({"type": "lifespan.startup"})
        await events.put({"type": "lifespan.shutdown"})
        await application({"type": "lifespan", "asgi": {"version": "3.0"}}, events.get, _append(sent))

    warmup_log = logging.getLogger("config.warmup")
    caplog.set_level("INFO", logger="config.warmup")
    warmup_log.addHandler(caplog.handler)  # the project's logging config does not propagate its INFO
    try:
        asyncio.run(lifespan())
    finally:
        warmup_log.removeHandler(caplog.handler)
    assert [event["type"] for event in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert embeddings.get_embedder.made() == 1 and vectors._client.made() == 1
    assert keyword._backend_for.made() == 1
    assert "channel layer warmed in" in caplog.text  # on the serving loop, before the first chat


def test_the_channel_layer_round_trip_at_boot_leaves_nothing_behind_and_a_down_redis_only_warns(caplog):
    """The warm-up joins a group of its own, sends to it, receives and leaves: nothing stays in
    Redis or in the layer's memberships. With Redis down it gives up within its timeout, and
    the process starts anyway."""
    import redis
    from channels.layers import channel_layers, get_channel_layer
    from django.conf import settings as django_settings

    from config.channel_layer import ResilientRedisChannelLayer
    from config.warmup import warm_channel_layer

    layer = get_channel_layer()
    took = asyncio.run(warm_channel_layer())
    assert took is not None and took > 0
    assert not [group for group, _ in layer._memberships if group.startswith("warmup.")]
    store = redis.Redis.from_url(django_settings.REDIS_URL)
    assert list(store.scan_iter(match="asgi:group:warmup.*")) == []

    down = ResilientRedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:9"}])
    previous = channel_layers.set("default", down)
    try:
        started = time.monotonic()
        assert asyncio.run(warm_channel_layer(timeout=1.0)) is None
        assert time.monotonic() - started < 3
    finally:
        channel_layers.set("default", previous)
    assert "the channel layer was not warmed" in caplog.text


def test_a_store_that_is_down_at_boot_does_not_stop_the_process(settings, caplog):
    from config.warmup import warm_process

    clients.forget_all()
    settings.CHROMA_HOST = "127.0.0.1:9"  # nothing listens there
    took = warm_process()
    assert "knowledge" not in took and "agents" in took
    assert "warming knowledge failed" in caplog.text


def _append(sent: list[dict]):
    async def send(event: dict) -> None:
        sent.append(event)

    return send
