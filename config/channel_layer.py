"""The Redis channel layer, made to ride out a Redis outage.

Stock channels_redis lets a connection error escape ``receive()``, which kills every open
websocket the moment Redis goes away. Here ``receive()`` waits and retries instead, so
sockets stay open; sends and group operations still raise (callers catch them and carry on,
since PostgreSQL, not Redis, is the record), and ``healthy`` tells consumers to deliver
directly until Redis is back."""

import asyncio
import logging
from typing import Any

import redis.exceptions
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)


class ResilientRedisChannelLayer(RedisChannelLayer):
    healthy = True

    def _mark(self, ok: bool) -> None:
        if ok != self.healthy:
            logger.warning("channel layer %s", "recovered: Redis is back" if ok else "lost Redis; retrying")
        self.healthy = ok

    async def receive(self, channel: str) -> Any:
        delay = 0.5
        while True:
            try:
                message = await super().receive(channel)
            except OUTAGE_ERRORS:
                self._mark(False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._mark(True)
            return message

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._watch(super().send(channel, message))

    async def group_add(self, group: str, channel: str) -> None:
        await self._watch(super().group_add(group, channel))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._watch(super().group_send(group, message))

    async def _watch(self, operation: Any) -> None:
        try:
            await operation
        except OUTAGE_ERRORS:
            self._mark(False)
            raise
        self._mark(True)
