"""The Redis channel layer, made to ride out a Redis outage.

Stock channels_redis lets a connection error escape ``receive()``, which kills every open
websocket the moment Redis goes away. Here ``receive()`` waits and retries instead, so
sockets stay open; sends and group operations still raise (callers catch them and carry on,
since PostgreSQL, not Redis, is the record), and ``healthy`` tells consumers to deliver
directly until Redis is back. Group memberships are remembered per process and added again
when Redis returns (a restarted Redis has lost them), before anything else is sent."""

import asyncio
import logging
from typing import Any

import redis.exceptions
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)


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
        await self._watch(super().group_send(group, message))

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
