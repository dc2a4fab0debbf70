"""Websocket routes."""

from django.urls import path

from agents.consumers import ChatConsumer

websocket_urlpatterns = [path("ws/chat/", ChatConsumer.as_asgi())]
