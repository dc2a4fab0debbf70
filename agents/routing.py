"""Websocket routes."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from agents.consumers import ChatConsumer, ConsoleConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    # Staff are recognised by their admin session cookie.
    path("ws/console/", AuthMiddlewareStack(ConsoleConsumer.as_asgi())),
]
