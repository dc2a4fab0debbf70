"""Plain HTTP under ASGI, as the production web workers serve it: the cache keeps one Redis
connection pool per process, however many request contexts use it, and the middleware runs in
one thread with the view."""

import asyncio
import contextvars

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections
from django.test import AsyncClient, override_settings
from rest_framework.authtoken.models import Token

from monitoring.models import RequestProfile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _request_thread_connection_closed():
    """The async test client keeps Django from closing connections at a request's end, and runs
    the views in asgiref's shared sync thread: close that thread's connection (the test
    database cannot be dropped while one is open)."""
    yield
    await sync_to_async(connections.close_all)()


def _redis_connections() -> int:
    return redis.Redis.from_url(settings.REDIS_URL).info("stats")["total_connections_received"]


async def test_api_calls_share_the_process_redis_connections(agent, ticket):
    if not getattr(settings, "REDIS_URL", ""):
        pytest.skip("the cache is Redis only with REDIS_URL set (make test sets it)")
    token = await database_sync_to_async(Token.objects.create)(user=agent)
    client, auth = AsyncClient(), {"authorization": f"Token {token.key}"}
    first = await client.get("/api/v1/tickets/", headers=auth)
    assert first.status_code == 200, first.content  # the pool's first connection
    before = _redis_connections()
    for _ in range(10):  # each call counts against the API rate limit in Redis
        # Each in a context of its own, as uvicorn runs every request (Django's cache objects
        # live in the request's context).
        call = client.get(f"/api/v1/tickets/{ticket.pk}/", headers=auth)
        response = await asyncio.create_task(call, context=contextvars.Context())
        assert response.status_code == 200 and response.json()["id"] == ticket.pk
    # One connection for the count itself; Django's own backend opened one per request.
    assert _redis_connections() - before <= 1


async def test_the_cache_keeps_one_redis_client_for_its_pool(monkeypatch):
    """Django's Redis cache made a new redis.Redis (and its table of response callbacks) for
    every get, add and incr; ours keeps one per pool, and a command still reaches Redis."""
    if not getattr(settings, "REDIS_URL", ""):
        pytest.skip("the cache is Redis only with REDIS_URL set (make test sets it)")
    from django.core.cache import cache

    made = []
    real = redis.Redis.__init__

    def counted(self, *args, **kwargs):
        made.append(kwargs.get("connection_pool"))
        real(self, *args, **kwargs)

    await sync_to_async(cache.set)("shared-client", 1)  # the process's client, made once
    monkeypatch.setattr(redis.Redis, "__init__", counted)
    for n in range(5):
        await sync_to_async(cache.incr)("shared-client")
        await sync_to_async(cache.add)(f"shared-client-{n}", n, 30)
    assert await sync_to_async(cache.get)("shared-client") == 6
    assert made == []


async def test_an_api_call_under_asgi_crosses_threads_six_times(agent, ticket, monkeypatch):
    """The middleware runs in sync mode, in one thread: Django's handler moves the request into
    it, back to the event loop for the view's handler, then into the thread for the CSRF check's
    view hook, the view, the rendering and the response's close. A sync-only middleware above
    async-capable ones would run those in async mode, where Django's own move each of their hooks
    to the thread as well (nine crossings with the staff preferences above the messages)."""
    from asgiref import sync

    token = await database_sync_to_async(Token.objects.create)(user=agent)
    client, auth = AsyncClient(), {"authorization": f"Token {token.key}"}
    assert (await client.get(f"/api/v1/tickets/{ticket.pk}/", headers=auth)).status_code == 200
    crossings = []
    for adapter in (sync.SyncToAsync, sync.AsyncToSync):
        real = adapter.__call__

        def counted(self, *args, _real=real, **kwargs):
            crossing = getattr(self, "func", None) or getattr(self, "awaitable", None)
            crossings.append(getattr(crossing, "__qualname__", type(crossing).__name__))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(adapter, "__call__", counted)
    response = await client.get(f"/api/v1/tickets/{ticket.pk}/", headers=auth)
    assert response.status_code == 200 and response.json()["id"] == ticket.pk
    # The test client's own signal send is not the server's.
    served = [name for name in crossings if not name.startswith("Signal.")]
    assert len(served) <= 6 and not [name for name in served if "Middleware.process_request" in name], served


async def test_staff_language_and_time_zone_apply_under_asgi(agent, org):
    def prefer() -> None:
        org.timezone = "Asia/Shanghai"
        org.save()
        agent.staff_profile.language = "zh-hans"
        agent.staff_profile.save()

    await database_sync_to_async(prefer)()
    desk = AsyncClient()
    await desk.aforce_login(agent)
    response = await desk.get("/admin/tickets/ticket/")
    page = response.content.decode()
    assert response.status_code == 200 and response["Content-Language"] == "zh-hans"
    assert '<html lang="zh-hans"' in page and "选择 ticket 来修改" in page  # Django admin's catalogue
    anonymous = await AsyncClient().get("/api/v1/widget/config?key=none")
    assert "Content-Language" not in anonymous or anonymous["Content-Language"] != "zh-hans"


async def test_a_profiled_request_under_asgi_samples_the_view(agent, ticket):
    """The profiling middleware is sync and innermost: Django runs the view in its thread, the
    one pyinstrument samples and the SQL meter watches."""
    with override_settings(CONCIERGE_PROFILE_SAMPLE_RATE=1.0):
        client = AsyncClient()
        await client.aforce_login(agent)
        assert (await client.get(f"/api/v1/tickets/{ticket.pk}/")).status_code == 200
    profile = await RequestProfile.objects.aget()
    assert (profile.reason, profile.view, profile.status) == ("sampled", "api/v1/tickets/<pk>/", 200)
    assert profile.sql_count >= 2  # the view's queries ran in the thread the meter watched
