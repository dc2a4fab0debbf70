"""Chat transport: how stored messages and chat events reach open websockets. The channel
groups (one per conversation, one per organization's staff console), the frame a stored message
travels as, broadcasts sent only after the database commit, and presence (whether a customer has
their chat open, counted in the cache, Redis in production, so every web process sees it).

The channel layer is a cache of delivery, never the record: a failed send loses nothing, since
the message is stored and a client gets it when it resumes."""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction

from tickets.attachments import attachments_frame
from tickets.models import Message, MessageRole

logger = logging.getLogger(__name__)


def conversation_group_name(conversation_id: int) -> str:
    """Where everyone watching one conversation listens: the customer's widget, agents."""
    return f"conversation.{conversation_id}"


def console_group_name(organization_id: int) -> str:
    """Where an organization's staff console listens for every conversation's activity."""
    return f"console.{organization_id}"


def message_frame(message: Message) -> dict[str, Any]:
    """The websocket frame that carries one stored message to a client."""
    metadata = message.metadata or {}
    frame = {
        "type": "message",
        "seq": message.seq,
        "role": message.role,
        "text": message.text,
        "sources": metadata.get("sources", []),
        "intent": metadata.get("intent", ""),
        "handoff": bool(metadata.get("handoff", False)),
    }
    attachments = attachments_frame(message)
    if attachments:
        frame["attachments"] = attachments
    if message.role == MessageRole.AGENT and message.author_id:
        # The customer sees who answers: the staff member's first name, else their username.
        author = message.author
        frame["author"] = (author.first_name or author.get_username()) if author is not None else ""
    return frame


def group_send(group: str, event: dict[str, Any]) -> bool:
    """Send now; False (and a warning) when the channel layer is missing or down."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # the channel layer is a cache of delivery, never the record
        logger.warning("send to %s failed", group, exc_info=True)
        return False
    return True


def message_broadcast_on_commit(message: Message, organization_id: int) -> None:
    """After commit, push the message to everyone watching the conversation, and to the
    organization's staff console."""

    def send() -> None:
        frame = message_frame(message)
        group_send(conversation_group_name(message.conversation_id), {"type": "chat.message", "frame": frame})
        group_send(
            console_group_name(organization_id),
            {"type": "console.message", "conversation_id": message.conversation_id, "frame": frame},
        )

    transaction.on_commit(send)


# --- presence --------------------------------------------------------------------------------

# A crashed process never decrements its count; the key then expires on its own.
PRESENCE_TTL_SECONDS = 6 * 3600


def _presence_key(conversation_id: int) -> str:
    return f"chat-presence:{conversation_id}"


def chat_presence_join(*, conversation_id: int) -> None:
    key = _presence_key(conversation_id)
    cache.add(key, 0, timeout=PRESENCE_TTL_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=PRESENCE_TTL_SECONDS)
    cache.touch(key, PRESENCE_TTL_SECONDS)


def chat_presence_leave(*, conversation_id: int) -> None:
    key = _presence_key(conversation_id)
    try:
        if cache.decr(key) <= 0:
            cache.delete(key)
    except ValueError:  # already expired
        pass


def chat_is_online(*, conversation_id: int) -> bool:
    return int(cache.get(_presence_key(conversation_id)) or 0) > 0
