"""The Redis cache with one connection pool per process.

Django keeps its cache objects per request context (``django.core.cache.caches`` is
context-local, so under ASGI every request builds its own), and each of Django's RedisCache
objects builds its own connection pool: every request that touched the cache (the API's rate
limit does, on every call) opened a Redis connection, with its TCP handshake and HELLO, and left
it for the garbage collector to close. Measured on the API benchmark: one Redis connection per
request, 419 in five seconds of ticket lists. This backend keeps one client, and so one pool, per
process for each location and options; redis-py's pool notices a fork and starts afresh in the
child, so gunicorn's workers never share a socket with the master.

Django's client also made a new ``redis.Redis`` around that pool for every call (a ``get``, an
``incr``): each one copies redis-py's table of ~170 response callbacks into a new dictionary,
~0.06 ms of CPU, several times a chat message (rate limits, presence). ``SharedClients`` keeps
one per pool; a ``redis.Redis`` is safe to share between threads (each command takes a connection
from the pool)."""

import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class SharedClients(RedisCacheClient):
    """Django's Redis cache client with one ``redis.Redis`` per connection pool."""

    # Set by Django's RedisCacheClient (its stubs leave them out).
    _client: Any
    _get_connection_pool: Callable[..., Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:  # two threads may both make one: either serves
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    _clients: ClassVar[dict[str, RedisCacheClient]] = {}
    _clients_lock: ClassVar[threading.Lock] = threading.Lock()
    # Set by Django's RedisCache.__init__ (its stubs leave them out).
    _servers: list[str]
    _options: dict[str, Any]
    _class: type[RedisCacheClient]

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedClients

    @cached_property
    def _cache(self) -> Any:
        key = repr((self._servers, sorted(self._options.items())))
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._class(self._servers, **self._options)
        return client

    def counter_add(self, key: str, delta: int, timeout: int, version: int | None = None) -> int:
        """Add ``delta`` to the integer at ``key`` (0 when there is none) and keep it ``timeout``
        seconds, in one round trip (``add`` + ``incr`` + ``touch`` took three); the new value."""
        key = self.make_and_validate_key(key, version=version)
        pipe = self._cache.get_client(key, write=True).pipeline(transaction=True)
        pipe.incrby(key, delta)
        pipe.expire(key, timeout)
        value, _ = pipe.execute()
        return int(value)
