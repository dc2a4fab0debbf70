"""Plain HTTP under ASGI, as the production web workers serve it: Django's request chain runs on
the event loop and hops to a thread once, for the view; the cache keeps one Redis connection
pool per process; the middleware that had been sync-only (static files, staff preferences,
profiling) does the same work in either mode."""

import asyncio
import contextvars
from pathlib import Path

import pytest
import redis
from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
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


def _chain(handler):
    """Everything reachable from a handler: middleware instances, their wrapped handlers, and
    any sync/async adapter Django put between them."""
    found, seen, stack = [], set(), [handler]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        for attr in ("get_response", "awaitable", "func"):
            inner = getattr(item, attr, None)
            if callable(inner):
                stack.append(inner)
        for cell in getattr(item, "__closure__", None) or ():
            if callable(cell.cell_contents):
                stack.append(cell.cell_contents)
    return found


@pytest.mark.parametrize("slow_ms", [0, 500])  # profiling off (not loaded) and on
def test_the_asgi_request_chain_never_hops_threads_before_the_view(slow_ms):
    with override_settings(CONCIERGE_PROFILE_SLOW_MS=slow_ms):
        chain = _chain(ASGIHandler()._middleware_chain)
    names = {type(item).__name__ for item in chain}
    expected = {path.rsplit(".", 1)[1] for path in settings.MIDDLEWARE}
    if not slow_ms:
        expected.discard("ProfilingMiddleware")
    assert expected <= names  # the walk reached every middleware, down to the view's handler
    assert any(getattr(item, "__name__", "") == "_get_response_async" for item in chain)
    assert [type(item).__name__ for item in chain if isinstance(item, (AsyncToSync, SyncToAsync))] == []


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


@pytest.mark.parametrize("autorefresh", [False, True])  # production: files indexed at start; development
async def test_static_files_are_served_under_asgi(autorefresh):
    with override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=autorefresh):
        client = AsyncClient()
        response = await client.get("/static/concierge/widget.css")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/css")
    body = b"".join(response.streaming_content)
    source = Path(settings.BASE_DIR, "templates", "static", "concierge", "widget.css").read_bytes()
    assert body == source
    missing = await client.get("/static/concierge/no-such-file.css")
    assert missing.status_code == 404


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
    with override_settings(CONCIERGE_PROFILE_SAMPLE_RATE=1.0):
        client = AsyncClient()
        await client.aforce_login(agent)
        assert (await client.get(f"/api/v1/tickets/{ticket.pk}/")).status_code == 200
    profile = await RequestProfile.objects.aget()
    assert (profile.reason, profile.view, profile.status) == ("sampled", "api/v1/tickets/<pk>/", 200)
    assert profile.sql_count >= 2  # the view's queries ran in the thread the meter watched
