"""Chat transport: how stored messages and chat events reach open websockets. The channel
groups (one per conversation, one per organization's staff console), the frame a stored message
travels as, broadcasts sent only after the database commit, and presence (whether a customer has
their chat open, counted in the cache, Redis in production, so every web process sees it).

The channel layer is a cache of delivery, never the record: a failed send loses nothing, since
the message is stored and a client gets it when it resumes."""

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction

from config.channel_layer import layer_call
from tickets.attachments import attachments_frame
from tickets.models import Message, MessageRole

logger = logging.getLogger(__name__)


# Channels whose replies leave by a route of their own (email, messaging apps): each channel app
# registers how to queue a stored bot or agent message for delivery, and the desk calls it
# instead of pushing to a chat that is not there.
_outbound_routes: dict[str, Callable[[Message], Any]] = {}


def outbound_route_register(channel: str, queue: Callable[[Message], Any]) -> None:
    _outbound_routes[channel] = queue


def outbound_route(channel: str) -> Callable[[Message], Any] | None:
    """How a reply in a conversation of this channel is queued for delivery; None for the web
    chat, whose replies reach the widget through the channel layer."""
    return _outbound_routes.get(channel)


def conversation_group_name(conversation_id: int) -> str:
    """Where everyone watching one conversation listens: the customer's widget, agents."""
    return f"conversation.{conversation_id}"


def console_group_name(organization_id: int) -> str:
    """Where an organization's staff console listens for every conversation's activity."""
    return f"console.{organization_id}"


def staff_group_name(user_id: int) -> str:
    """Where one staff member's open pages listen for what is meant for them (mentions)."""
    return f"staff.{user_id}"


def ticket_group_name(ticket_id: int) -> str:
    """Where the agents who have one ticket open listen for each other (viewing, typing)."""
    return f"ticket.{ticket_id}"


def send_on_commit(group: str, event: dict[str, Any]) -> None:
    """One group send after the database commit (nothing is sent for a rolled-back change)."""
    transaction.on_commit(lambda: group_send(group, event))


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
    if message.role == MessageRole.BOT and metadata.get("in_reply_to"):
        # The customer message it answers: the widget replaces that answer's streamed draft.
        frame["in_reply_to"] = metadata["in_reply_to"]
    attachments = attachments_frame(message)
    if attachments:
        frame["attachments"] = attachments
    if message.role == MessageRole.AGENT and message.author_id:
        # The customer sees who answers: the staff member's first name, else their username.
        author = message.author
        frame["author"] = (author.first_name or author.get_username()) if author is not None else ""
    return frame


@dataclass
class DirectDelivery:
    """The customer's socket taking its own turn: the frames of that conversation's messages
    committed meanwhile are handed to it (it sends them itself) instead of travelling through
    Redis back to it. Other members of the conversation group (the customer's other tabs)
    still get them through the channel layer."""

    channel_name: str
    conversation_id: int
    frames: list[dict[str, Any]] = field(default_factory=list)


_direct_delivery: ContextVar[DirectDelivery | None] = ContextVar("direct_delivery", default=None)


@contextmanager
def direct_delivery(*, channel_name: str, conversation_id: int) -> Iterator[DirectDelivery]:
    """Within the block (and the sync calls it awaits, which copy the context), this socket
    receives its conversation's new frames in ``.frames``."""
    delivery = DirectDelivery(channel_name=channel_name, conversation_id=conversation_id)
    token = _direct_delivery.set(delivery)
    try:
        yield delivery
    finally:
        _direct_delivery.reset(token)


def group_send(group: str, event: dict[str, Any]) -> bool:
    """Send now; False (and a warning) when the channel layer is missing or down."""
    return all(groups_send([(group, event, "")]))


def groups_send(sends: list[tuple[str, dict[str, Any], str]]) -> list[bool]:
    """Several (group, event, channel left out) sends at once, in one hop to the event loop (a
    chat turn's broadcasts go to the conversation and the console together), and through a
    layer with ``groups_send_except`` in one go, each leaving its channel out; one result per
    send, False where it failed. Another layer sends to everyone, and the left-out consumer drops
    the event by its ``sender``."""
    layer = get_channel_layer()
    if layer is None:
        return [False] * len(sends)

    async def send_all() -> list[Any]:
        if hasattr(layer, "groups_send_except"):  # all of them in one go (config.channel_layer)
            try:
                await layer.groups_send_except(sends)
            except Exception as exc:
                return [exc] * len(sends)
            return [None] * len(sends)
        return await asyncio.gather(
            *(layer.group_send(group, event) for group, event, _ in sends), return_exceptions=True
        )

    try:
        outcomes = layer_call(send_all)
    except Exception:  # the channel layer is a cache of delivery, never the record
        logger.warning("sends to %s failed", ", ".join(group for group, _, _ in sends), exc_info=True)
        return [False] * len(sends)
    for (group, _, _), outcome in zip(sends, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            logger.warning("send to %s failed", group, exc_info=outcome)
    return [not isinstance(outcome, BaseException) for outcome in outcomes]


def message_broadcast_on_commit(message: Message, organization_id: int) -> None:
    """After commit, push the message to everyone watching the conversation, and to the
    organization's staff console."""
    messages_broadcast_on_commit([message], organization_id)


def messages_broadcast_on_commit(messages: list[Message], organization_id: int) -> None:
    """Several messages of one conversation in one event per group (a chat turn: the customer's
    message and the assistant's reply), after commit. One message travels as ``chat.message``
    and ``console.message``, several as ``chat.messages`` and ``console.messages``."""

    def send() -> None:
        frames = [message_frame(m) for m in messages]
        conversation_id = messages[0].conversation_id
        chat: dict[str, Any]
        console: dict[str, Any]
        if len(frames) == 1:
            chat = {"type": "chat.message", "frame": frames[0]}
            console = {"type": "console.message", "conversation_id": conversation_id, "frame": frames[0]}
        else:
            chat = {"type": "chat.messages", "frames": frames}
            console = {"type": "console.messages", "conversation_id": conversation_id, "frames": frames}
        direct = _direct_delivery.get()
        exclude = ""
        if direct is not None and direct.conversation_id == conversation_id:
            direct.frames.extend(frames)
            exclude = chat["sender"] = direct.channel_name
        groups_send(
            [
                (conversation_group_name(conversation_id), chat, exclude),
                (console_group_name(organization_id), console, ""),
            ]
        )

    if messages:
        transaction.on_commit(send)


# --- presence --------------------------------------------------------------------------------

# A crashed process never decrements its count; the key then expires on its own.
PRESENCE_TTL_SECONDS = 6 * 3600


def _presence_key(conversation_id: int) -> str:
    return f"chat-presence:{conversation_id}"


def chat_presence_join(*, conversation_id: int) -> None:
    key = _presence_key(conversation_id)
    counter_add = getattr(cache, "counter_add", None)  # Redis (config.cache): one round trip
    if counter_add is not None:
        counter_add(key, 1, PRESENCE_TTL_SECONDS)
        return
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
