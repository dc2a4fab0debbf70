"""Websocket routes. The chat websocket serves companies' own websites: it checks the page's
origin against the organization's allowed websites itself (the token says which organization).
The staff console keeps the same-host check."""

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from agents.console import ConsoleConsumer
from agents.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    # Staff are recognised by their admin session cookie.
    path("ws/console/", AllowedHostsOriginValidator(AuthMiddlewareStack(ConsoleConsumer.as_asgi()))),
]
