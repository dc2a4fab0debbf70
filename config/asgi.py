"""ASGI entry point: HTTP goes to Django's WSGI handler on a pool of threads (config.http),
websockets to the Channels router, and the server's lifespan startup warms the process
(config.warmup) before it accepts its first connection."""

import asyncio
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before the routing modules import models.
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from agents.routing import websocket_urlpatterns  # noqa: E402
from agents.turns import turn_gate_close, turn_threads_hop_warm  # noqa: E402
from config.changes import changes_stop  # noqa: E402
from config.channel_layer import serving_loop_set  # noqa: E402
from config.http import http_application  # noqa: E402
from config.warmup import warm_channel_layer, warm_serving  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": http_application(settings.CONCIERGE_HTTP_THREADS),
        "websocket": URLRouter(websocket_urlpatterns),  # each route checks the page's origin
    }
)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        await router(scope, receive, send)
        return
    # uvicorn (alone or as a gunicorn worker) serves nothing until startup completes.
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            serving_loop_set(asyncio.get_running_loop())  # threads' channel layer calls hop here
            await asyncio.to_thread(warm_serving)
            if await warm_channel_layer() is not None:  # Redis answers: the turn threads' sends too
                await turn_threads_hop_warm()
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await asyncio.to_thread(turn_gate_close)
            await asyncio.to_thread(changes_stop)
            await send({"type": "lifespan.shutdown.complete"})
            return
