"""Websocket routes. The chat consumer (/ws/chat/) arrives with the dialog-agent work."""

from typing import Any

websocket_urlpatterns: list[Any] = []
