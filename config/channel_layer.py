"""The Redis channel layer, made to ride out a Redis outage.

Stock channels_redis lets a connection error escape ``receive()``, which kills every open
websocket the moment Redis goes away. Here ``receive()`` waits and retries instead, so
sockets stay open; sends and group operations still raise (callers catch them and carry on,
since PostgreSQL, not Redis, is the record), and ``healthy`` tells consumers to deliver
directly until Redis is back. Group memberships are remembered per process and added again
when Redis returns (a restarted Redis has lost them), before anything else is sent.

Group sends take two round trips to Redis instead of four (channels_redis's own steps,
pipelined: the group's members in one, the delivery in another) and one for an empty group;
``groups_send_except`` makes several sends in those same two round trips (one when no one else
listens), each leaving out one member: the socket that delivers the frames itself.

Sync code (an HTTP request's or a chat turn's broadcasts after commit, /readyz) calls the layer
through ``layer_call``: on a web worker's serving loop, in one hop."""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import redis.exceptions
from asgiref.sync import async_to_sync
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)
T = TypeVar("T")

OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)

# channels_redis's delivery script: each channel gets the message unless it is over capacity.
GROUP_SEND_LUA = """
local over_capacity = 0
local current_time = ARGV[#ARGV - 1]
local expiry = ARGV[#ARGV]
for i=1,#KEYS do
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


class ResilientRedisChannelLayer(RedisChannelLayer):
    healthy = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This process's group memberships. Redis keeps them too, but a restarted Redis has
        # forgotten them: they are added again as soon as Redis answers.
        self._memberships: set[tuple[str, str]] = set()

    def _mark(self, ok: bool) -> None:
        if ok != self.healthy:
            logger.warning("channel layer %s", "recovered: Redis is back" if ok else "lost Redis; retrying")
        self.healthy = ok

    async def _rejoin(self) -> None:
        for group, channel in list(self._memberships):
            await super().group_add(group, channel)
        self._mark(True)

    async def receive(self, channel: str) -> Any:
        delay = 0.5
        while True:
            try:
                if not self.healthy:
                    await self._rejoin()
                message = await super().receive(channel)
            except OUTAGE_ERRORS:
                self._mark(False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            return message

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._watch(super().send(channel, message))

    async def group_add(self, group: str, channel: str) -> None:
        self._memberships.add((group, channel))
        await self._watch(super().group_add(group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        self._memberships.discard((group, channel))
        await self._watch(super().group_discard(group, channel))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.groups_send_except([(group, message, "")])

    async def groups_send_except(self, sends: list[tuple[str, dict[str, Any], str]]) -> None:
        """Several group sends, each leaving out one member (or none: ""), together: every
        group's members in one round trip per Redis connection, then every delivery in one
        (a chat turn's two sends, to a conversation and a console no one else watches, are
        one round trip)."""
        await self._watch(self._groups_send(sends))

    async def _groups_send(self, sends: list[tuple[str, dict[str, Any], str]]) -> None:
        by_index: dict[int, list[int]] = {}  # connection -> the sends whose group lives there
        for n, (group, _, _) in enumerate(sends):
            assert self.require_valid_group_name(group), "Group name not valid"
            by_index.setdefault(self.consistent_hash(group), []).append(n)
        members: dict[int, list[str]] = {}
        for index, numbers in by_index.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for n in numbers:
                key = self._group_key(sends[n][0])
                pipe.zremrangebyscore(key, min=0, max=int(time.time()) - self.group_expiry)
                pipe.zrange(key, 0, -1)
            found = await pipe.execute()
            for place, n in enumerate(numbers):
                exclude = sends[n][2]
                members[n] = [name for name in (m.decode("utf8") for m in found[2 * place + 1]) if name != exclude]
        deliveries: dict[int, list[tuple[str, list[str], list[Any]]]] = {}  # connection -> (group, keys, args)
        for n, (group, message, _) in enumerate(sends):
            if not members[n]:
                continue
            by_connection, messages, capacities = self._map_channel_keys_to_connection(members[n], message)
            for index, channel_keys in by_connection.items():
                args = [messages[k] for k in channel_keys] + [capacities[k] for k in channel_keys]
                deliveries.setdefault(index, []).append((group, channel_keys, args))
        for index, batch in deliveries.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for _, channel_keys, args in batch:
                for channel_key in channel_keys:  # drop messages nobody received in time
                    pipe.zremrangebyscore(channel_key, min=0, max=int(time.time()) - int(self.expiry))
                pipe.eval(GROUP_SEND_LUA, len(channel_keys), *channel_keys, *args, time.time(), self.expiry)
            outcomes = await pipe.execute()
            at = 0
            for group, channel_keys, _ in batch:
                at += len(channel_keys) + 1
                if over := outcomes[at - 1]:
                    logger.info("%s of %s channels over capacity in group %s", over, len(channel_keys), group)

    async def _watch(self, operation: Any) -> None:
        try:
            if not self.healthy:
                await self._rejoin()  # members first, so this very send reaches them
            await operation
        except OUTAGE_ERRORS:
            self._mark(False)
            if asyncio.iscoroutine(operation):
                operation.close()
            raise
        self._mark(True)


# The event loop this process serves websockets on (a web worker's, set at its lifespan
# startup by config.asgi); None in processes without one (Celery, commands).
_serving_loop: asyncio.AbstractEventLoop | None = None
LAYER_CALL_TIMEOUT = 30.0


def serving_loop_set(loop: asyncio.AbstractEventLoop | None) -> None:
    global _serving_loop
    _serving_loop = loop


def layer_call(make: Callable[[], Coroutine[Any, Any, T]], timeout: float = LAYER_CALL_TIMEOUT) -> T:
    """Run the channel layer operation ``make()`` from sync code and return its result. From a
    web worker's threads (HTTP requests, chat turns) it runs on the serving loop, where the
    layer's Redis connections already are, in one hop; elsewhere asgiref's ``async_to_sync``
    (from a thread it knows nothing of, a new thread with a new event loop and new Redis
    connections for each call, which is what an HTTP request's broadcast paid on a pool thread
    outside asgiref). Raises what the operation raised, or TimeoutError after ``timeout`` on the
    serving loop (the operation is then cancelled there)."""
    loop = _serving_loop
    if loop is not None and loop.is_running() and not _running_here(loop):
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise
    return async_to_sync(make)()


def _running_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
