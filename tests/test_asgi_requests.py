"""Plain HTTP as the production web workers serve it: the ASGI application (config.asgi) hands
each request to Django's WSGI handler on a pool of threads (config.http). Requests overlap, a
chunked body reaches the view, the cache keeps one Redis connection pool per process however
many request contexts use it, and the middleware runs in one thread with the view."""

import asyncio
import json
import threading
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.test import Client, override_settings
from django.urls import path
from rest_framework.authtoken.models import Token

from config.asgi import application
from config.channel_layer import serving_loop_set
from config.http import http_application
from monitoring.models import RequestProfile
from tickets.transport import console_group_name

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _request_thread_connection_closed():
    """Each request thread closes its connection at the request's end, as Django's WSGI
    handler does; close any a test left open (the test database cannot be dropped while one is)."""
    yield
    await sync_to_async(connections.close_all)()


async def serve(method: str, url: str, *, headers: dict[str, str] | None = None, chunks: list[bytes] | None = None,
                app: Any = application) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One HTTP request through the web worker's ASGI application, each in a context of its
    own as uvicorn runs them: its status, headers and body. ``chunks`` are the body's parts,
    sent as separate messages."""
    path_part, _, query = url.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path_part, "raw_path": path_part.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        + [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    if chunks and "transfer-encoding" not in (headers or {}):
        scope["headers"].append((b"content-length", str(sum(map(len, chunks))).encode()))
    communicator = ApplicationCommunicator(app, scope)
    parts = chunks or [b""]
    for n, part in enumerate(parts):
        await communicator.send_input({"type": "http.request", "body": part, "more_body": n < len(parts) - 1})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


async def _token_header(user) -> dict[str, str]:
    token = await database_sync_to_async(Token.objects.create)(user=user)
    return {"authorization": f"Token {token.key}"}


async def _session_cookie(user) -> dict[str, str]:
    def login() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    return {"cookie": f"{settings.SESSION_COOKIE_NAME}={await database_sync_to_async(login)()}"}


MEETING = threading.Barrier(2)


def _meet(request):
    """Waits until a second request arrives: answers only when two are served at once."""
    MEETING.wait(timeout=5)
    return JsonResponse({"thread": threading.get_ident()})


urlpatterns = [path("meet", _meet)]


@override_settings(ROOT_URLCONF=__name__)
async def test_requests_are_served_at_once_on_threads_of_their_own():
    """Two requests in the same process are served at the same moment on two of the pool's
    threads: with one thread the second would wait for the first, which waits for it (a broken
    barrier, 500s)."""
    MEETING.reset()
    first, second = await asyncio.gather(serve("GET", "/meet"), serve("GET", "/meet"))
    assert (first[0], second[0]) == (200, 200), (first, second)
    assert json.loads(first[2])["thread"] != json.loads(second[2])["thread"]


async def test_a_chunked_body_reaches_the_view(org):
    """A body sent in chunks, with no Content-Length, is read whole before Django's WSGI
    request (which reads Content-Length bytes and no more) sees it."""
    body = json.dumps({"widget_key": org.widget_key, "name": "Maya"}).encode()
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    status, _, answer = await serve("POST", "/api/v1/widget/sessions", headers=headers,
                                    chunks=[body[:10], body[10:30], body[30:]])  # fmt: skip
    assert status == 201, answer
    assert json.loads(answer)["token"]


async def test_a_chunked_body_over_the_limit_is_refused(org):
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    chunk = b"x" * 40_000
    with override_settings(CONCIERGE_ATTACHMENT_MAX_BYTES=10_000, DATA_UPLOAD_MAX_MEMORY_SIZE=10_000):
        status, _, answer = await serve("POST", "/api/v1/widget/sessions", headers=headers, chunks=[chunk] * 3)
        assert status == 413 and json.loads(answer)["code"] == "too_large"
        # Within the limit, the same route answers the body it was sent.
        status, _, answer = await serve("POST", "/api/v1/widget/sessions", headers=headers, chunks=[b"{}"])
    assert status == 400, answer


def _redis_connections() -> int:
    return redis.Redis.from_url(settings.REDIS_URL).info("stats")["total_connections_received"]


async def test_api_calls_share_the_process_redis_connections(agent, ticket):
    if not getattr(settings, "REDIS_URL", ""):
        pytest.skip("the cache is Redis only with REDIS_URL set (make test sets it)")
    auth = await _token_header(agent)
    first = await serve("GET", "/api/v1/tickets/", headers=auth)
    assert first[0] == 200, first  # the pool's first connection
    before = _redis_connections()
    for _ in range(10):  # each call counts against the API rate limit in Redis
        # Each in a context of its own, as uvicorn runs every request (Django's cache objects
        # live in the request's context).
        status, _, body = await serve("GET", f"/api/v1/tickets/{ticket.pk}/", headers=auth)
        assert status == 200 and json.loads(body)["id"] == ticket.pk
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


async def test_an_api_call_makes_no_asgiref_crossing(agent, ticket, monkeypatch):
    """The request goes to its thread once and stays there: middleware, the view, rendering and
    the response's close. Django's ASGI handler crossed six times (the request into the chain's
    thread, back to the event loop, the CSRF check's view hook, the view, the close), and a
    sync-only middleware above async-capable ones made each hook a crossing of its own."""
    from asgiref import sync

    auth = await _token_header(agent)
    assert (await serve("GET", f"/api/v1/tickets/{ticket.pk}/", headers=auth))[0] == 200
    crossings = []
    for adapter in (sync.SyncToAsync, sync.AsyncToSync):
        real = adapter.__call__

        def counted(self, *args, _real=real, **kwargs):
            crossing = getattr(self, "func", None) or getattr(self, "awaitable", None)
            crossings.append(getattr(crossing, "__qualname__", type(crossing).__name__))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(adapter, "__call__", counted)
    status, _, body = await serve("GET", f"/api/v1/tickets/{ticket.pk}/", headers=auth)
    assert status == 200 and json.loads(body)["id"] == ticket.pk
    assert crossings == []


async def test_staff_language_and_time_zone_apply(agent, org):
    def prefer() -> None:
        org.timezone = "Asia/Shanghai"
        org.save()
        agent.staff_profile.language = "zh-hans"
        agent.staff_profile.save()

    await database_sync_to_async(prefer)()
    status, headers, page = await serve("GET", "/admin/tickets/ticket/", headers=await _session_cookie(agent))
    text = page.decode()
    assert status == 200 and headers["content-language"] == "zh-hans"
    assert '<html lang="zh-hans"' in text and "选择 ticket 来修改" in text  # Django admin's catalogue
    _, anonymous, _ = await serve("GET", "/api/v1/widget/config?key=none")
    assert anonymous.get("content-language") != "zh-hans"


async def test_a_profiled_request_samples_the_view(agent, ticket):
    """The profiling middleware is sync and innermost: the view runs in its thread, the one
    pyinstrument samples and the SQL meter watches. (It is left out of the chain when a process
    starts with profiling off, so the application is made here with it on.)"""
    with override_settings(CONCIERGE_PROFILE_SAMPLE_RATE=1.0):
        app = http_application(2)
        status, _, _ = await serve("GET", f"/api/v1/tickets/{ticket.pk}/", headers=await _session_cookie(agent),
                                   app=app)  # fmt: skip
        assert status == 200
    profile = await RequestProfile.objects.aget()
    assert (profile.reason, profile.view, profile.status) == ("sampled", "api/v1/tickets/<pk>/", 200)
    assert profile.sql_count >= 2  # the view's queries ran in the thread the meter watched


@pytest.fixture
async def serving_loop():
    """This test's event loop as the process's serving loop, as a web worker's lifespan
    startup sets it (config.asgi)."""
    serving_loop_set(asyncio.get_running_loop())
    yield
    serving_loop_set(None)


async def test_an_edit_broadcasts_on_the_serving_loop(agent, ticket, serving_loop, monkeypatch):
    """A ticket edit's broadcast to the staff console goes from the request's thread to the
    serving loop and its Redis connections in one hop. Through asgiref's async_to_sync, from a
    thread asgiref knows nothing of, each send made a thread and an event loop of its own."""
    from asgiref import sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(console_group_name(ticket.organization_id), channel)
    auth = await _token_header(agent)
    made = []
    real = sync.AsyncToSync.__call__

    def counted(self, *args, **kwargs):
        made.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(sync.AsyncToSync, "__call__", counted)
    headers = {**auth, "content-type": "application/json"}
    edit = json.dumps({"priority": "high"}).encode()
    status, _, body = await serve("PATCH", f"/api/v1/tickets/{ticket.pk}/", headers=headers, chunks=[edit])
    assert status == 200, body
    event = await asyncio.wait_for(layer.receive(channel), 5)
    assert event["type"] == "console.ticket" and event["frame"]["ticket_id"] == ticket.pk
    assert (event["frame"]["field"], event["frame"]["after"]) == ("priority", "high")
    assert made == []
    await layer.group_discard(console_group_name(ticket.organization_id), channel)


async def test_a_layer_call_that_outlasts_its_timeout_is_cancelled_on_the_serving_loop(serving_loop):
    """A thread waiting on the serving loop gives up after its timeout, and the operation stops
    there instead of running on for ever (a readiness probe's receive that never returns)."""
    from config.channel_layer import layer_call

    stopped = asyncio.Event()
    loop_thread = threading.get_ident()
    ran_on = []

    async def forever() -> None:
        ran_on.append(threading.get_ident())
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    async def answer() -> int:
        ran_on.append(threading.get_ident())
        return 42

    assert await asyncio.to_thread(layer_call, answer) == 42
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(layer_call, forever, 0.2)
    await asyncio.wait_for(stopped.wait(), 2)
    assert ran_on == [loop_thread, loop_thread]  # both ran on this (the serving) loop's thread
