"""The chat websocket, /ws/chat/?token=T. It only handles the connection: it checks the
token, validates frames, calls services off the event loop and sends what they produce.

Frames are those of DESIGN.md. Every customer message is stored once (idempotent on the
client's id) and acknowledged with its sequence number; `resume` replays what the client
missed, so a reconnect loses nothing."""

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError

from agents.llm import answer_streamed
from agents.services import assistant_reply, customer_message_receive
from agents.tokens import WidgetSession, widget_token_read
from agents.turns import BUSY_MESSAGE, Turn, turn_gate
from agents.widget import origin_allowed, widget_contact_leave
from config.channel_layer import OUTAGE_ERRORS
from config.errors import database_refusal
from monitoring.context import conversation_context
from monitoring.metrics import CHAT_TURNS_REFUSED, WEBSOCKETS_OPEN
from tickets.errors import ConversationFull, DomainError, RateLimited
from tickets.handoff import handoff_status
from tickets.rules import MESSAGE_MAX_CHARS
from tickets.transport import (
    DirectDelivery,
    chat_presence_join,
    chat_presence_leave,
    console_group_name,
    conversation_group_name,
    direct_delivery,
    message_broadcast_on_commit,
    message_frame,
)

logger = logging.getLogger(__name__)

DEGRADED_MESSAGE = "Live updates are interrupted. Your messages are saved and answered here."
UNAVAILABLE_MESSAGE = "We could not save your message just now; it will be sent again automatically."
# Room for a message of MESSAGE_MAX_CHARS characters, JSON-escaped, and the frame around it.
MAX_FRAME_BYTES = 64 * 1024
CLOSE_BAD_TOKEN = 4401
CLOSE_ORIGIN_REFUSED = 4403
CLOSE_GONE = 4404
TYPING_EVERY = 2.0  # seconds between typing frames a customer's socket passes on


def _replay(session: WidgetSession, after: int) -> list[dict[str, Any]]:
    from tickets import selectors
    from tickets.models import Conversation

    conversation = Conversation.objects.get(pk=session.conversation_id)
    return [message_frame(m) for m in selectors.conversation_messages(conversation=conversation, after_seq=after)]


def _chat_open(*, session: WidgetSession, origin: str, host: str) -> str:
    """A socket's checks and presence in one hop to the turn threads: "" when it may chat (and
    the customer now counts as online), else why not: "origin" (a website the organization does
    not allow) or "gone" (the conversation no longer exists)."""
    from tickets.models import Conversation

    if not origin_allowed(organization_id=session.organization_id, origin=origin, host=host):
        return "origin"
    if not Conversation.objects.filter(
        pk=session.conversation_id, organization_id=session.organization_id, customer_id=session.customer_id
    ).exists():
        return "gone"
    try:
        chat_presence_join(conversation_id=session.conversation_id)
    except Exception:  # presence is a hint (widget or email for CSAT), never a reason to refuse
        logger.warning("chat presence not recorded", exc_info=True)
    return ""


class ChatConsumer(AsyncWebsocketConsumer):
    session: WidgetSession | None = None
    group = ""
    counted = False
    last_typing = float("-inf")

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels closes stale database connections before every event, a hop to its one
        database thread each time (a tenth of the event loop's work under load). This consumer
        touches the database only through the turn pool, whose calls do that themselves."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        """The socket's checks, presence and group come before the handshake is accepted, so a
        widget that sends as soon as its socket opens (a queued message after a reconnect, a
        first question typed before it opened) does not wait behind them, a hop to the turn
        threads and a Redis round trip (bench/cold_start.py's first turns, issue 14). A refused
        socket is accepted first, to carry the error frame and the close code the widget acts on."""
        query = parse_qs(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        session = widget_token_read((query.get("token") or [""])[0])
        if session is None:
            await self.refuse("bad_token", "The session token is missing, invalid or expired; start a new chat.",
                              CLOSE_BAD_TOKEN)  # fmt: skip
            return
        headers = dict(self.scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        host = headers.get(b"host", b"").decode("latin-1")
        refused = await turn_gate().run(_chat_open, session=session, origin=origin, host=host)
        if refused == "origin":
            await self.refuse("origin_not_allowed", f"The website {origin} is not allowed to embed this chat widget.",
                              CLOSE_ORIGIN_REFUSED)  # fmt: skip
            return
        if refused:
            await self.refuse("not_found", "This conversation no longer exists; start a new chat.", CLOSE_GONE)
            return
        self.session = session
        self.group = conversation_group_name(session.conversation_id)
        joined = await self.live(self.channel_layer.group_add(self.group, self.channel_name))
        await self.accept()
        if not joined:
            await self.error("degraded", DEGRADED_MESSAGE)
        WEBSOCKETS_OPEN.labels(kind="chat").inc()
        self.counted = True

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        await self.accept()
        await self.error(code, message)
        await self.close(code=close_code)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.live(self.channel_layer.group_discard(self.group, self.channel_name))
        if self.session is not None:
            try:
                await turn_gate().run(chat_presence_leave, conversation_id=self.session.conversation_id)
            except Exception:
                logger.warning("chat presence not cleared", exc_info=True)
        if self.counted:
            WEBSOCKETS_OPEN.labels(kind="chat").dec()
            self.counted = False

    async def error(self, code: str, message: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "message": message}))

    async def refuse_busy(self, retry_after: int) -> None:
        """A message refused before it is stored: no ack, so the widget keeps it and sends it
        again after ``retry_after`` seconds."""
        busy = {"type": "error", "code": "busy", "message": BUSY_MESSAGE, "retry_after": retry_after}
        await self.send(text_data=json.dumps(busy))

    async def live(self, operation: Any) -> bool:
        """Run a channel layer operation; False (and logged) when Redis is out."""
        try:
            await operation
        except OUTAGE_ERRORS:
            logger.warning("channel layer unavailable; delivering directly on this socket")
            return False
        return True

    def client_ip(self) -> str:
        client = self.scope.get("client") or ("unknown", 0)
        return str(client[0])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None:
            return
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if len(raw.encode("utf-8")) > MAX_FRAME_BYTES:
            await self.error("too_large", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
            return
        try:
            frame = json.loads(raw)
        except ValueError:
            await self.error("bad_json", "Frames are JSON objects.")
            return
        if not isinstance(frame, dict):
            await self.error("bad_json", "Frames are JSON objects.")
            return
        handler = {
            "message": self.on_message,
            "typing": self.on_typing,
            "resume": self.on_resume,
            "csat": self.on_csat,
            "contact": self.on_contact,
        }.get(str(frame.get("type")))
        if handler is None:
            await self.error("unknown_type", "Frame types are message, typing, resume, csat and contact.")
            return
        with conversation_context(self.session.conversation_id):
            await handler(frame)

    async def on_message(self, frame: dict[str, Any]) -> None:
        assert self.session is not None
        client_id, text = frame.get("id"), frame.get("text")
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            await self.error("invalid", "A message needs an id: a string of 1 to 64 characters.")
            return
        if not isinstance(text, str) or not text.strip():
            await self.error("invalid", "A message needs some text.")
            return
        if len(text) > MESSAGE_MAX_CHARS:
            await self.error("too_long", f"Messages are limited to {MESSAGE_MAX_CHARS:,} characters.")
            return
        with Turn(turn_gate()) as turn:
            if not turn.admitted:
                # Refused before it is stored: no ack, so the widget keeps it and sends it again.
                await self.refuse_busy(turn.gate.retry_after())
                return
            with direct_delivery(
                channel_name=self.channel_name, conversation_id=self.session.conversation_id
            ) as delivery:
                await self.take_turn(turn, delivery, client_id, text)

    async def deliver(self, delivery: DirectDelivery) -> None:
        """Send this socket the frames of its conversation committed by its own turn (they do
        not come back to it through the channel layer; see tickets.transport)."""
        frames, delivery.frames = delivery.frames, []
        for frame in frames:
            await self.send(text_data=json.dumps(frame))

    async def take_turn(self, turn: Turn, delivery: DirectDelivery, client_id: str, text: str) -> None:
        """Store the message, acknowledge it, and answer it (an accepted message is answered)."""
        assert self.session is not None
        try:
            received = await turn.run(
                customer_message_receive,
                conversation_id=self.session.conversation_id,
                organization_id=self.session.organization_id,
                text=text,
                client_message_id=client_id,
                sender_address=self.client_ip(),
                defer_broadcast=True,
            )
        except RateLimited as exc:
            await self.send(
                text_data=json.dumps(
                    {"type": "error", "code": "rate_limited", "message": str(exc), "retry_after": exc.retry_after}
                )
            )
            return
        except ConversationFull as exc:
            await self.error("conversation_full", str(exc))
            return
        except DomainError as exc:
            await self.error("invalid", str(exc))
            return
        except DatabaseError as exc:
            refusal = database_refusal(exc)
            if refusal is not None and refusal.code == "busy":
                # Overload, not an outage (every pooled connection open and in use): nothing was
                # stored. As for a turn the process refuses: no ack, a busy frame, and the widget
                # sends the message again after retry_after.
                CHAT_TURNS_REFUSED.inc()
                logger.warning("message from the widget refused: no database connection free in time")
                await self.refuse_busy(refusal.retry_after)
                return
            logger.exception("message from the widget not stored")
            # No ack: the widget keeps the message queued and sends it again (same id) on reconnect.
            await self.error("unavailable", UNAVAILABLE_MESSAGE)
            return
        # A repeated id (a client retrying after a lost ack) gets the same ack, and an answer
        # only if its first delivery never got one.
        seq = received.message.seq
        await self.send(text_data=json.dumps({"type": "ack", "id": client_id, "seq": seq}))
        await self.deliver(delivery)
        if not received.assistant_answers:
            return
        await self.send(text_data=json.dumps({"type": "typing", "role": "bot"}))
        try:
            with answer_streamed(self.stream_to_socket(seq)):
                reply = await turn.run(
                    assistant_reply,
                    message_id=received.message.pk,
                    announce_customer_message=received.broadcast_deferred,
                )
        except Exception:  # the customer's message is stored; staff see it even if the assistant failed
            logger.exception("the assistant's reply failed for message %s", received.message.pk)
            if received.broadcast_deferred:
                with contextlib.suppress(Exception):
                    await turn.run(
                        message_broadcast_on_commit,
                        message=received.message,
                        organization_id=self.session.organization_id,
                    )
            await self.deliver(delivery)
            await self.error("assistant_unavailable", "The assistant is unavailable; a person will read your message.")
            return
        # Straight to this socket, with Redis up or not.
        await self.deliver(delivery)
        if reply is not None and (reply.metadata or {}).get("handoff"):
            await self.send_queue_status()

    def stream_to_socket(self, seq: int) -> Callable[[str], None]:
        """A sink for a generated answer's words as the LLM writes them, called on the turn's
        thread: each call sends a ``stream`` frame with the text so far and its part number (the
        widget keeps the highest part; the final ``message`` frame replaces the draft)."""
        loop = asyncio.get_running_loop()
        parts = itertools.count(1)

        def sink(text: str) -> None:
            frame = {"type": "stream", "in_reply_to": seq, "part": next(parts), "text": text}
            asyncio.run_coroutine_threadsafe(self.send(text_data=json.dumps(frame, ensure_ascii=False)), loop)

        return sink

    async def send_queue_status(self) -> None:
        """Waiting for a person: the place in the queue, the expected wait, business hours."""
        assert self.session is not None
        try:
            status = await turn_gate().run(handoff_status, conversation_id=self.session.conversation_id)
        except DatabaseError:
            logger.warning("queue status not read", exc_info=True)
            return
        if status is not None:
            await self.send(text_data=json.dumps(status))

    async def on_contact(self, frame: dict[str, Any]) -> None:
        """The customer leaves an email so that a reply written while they are away reaches them."""
        assert self.session is not None
        try:
            await turn_gate().run(
                widget_contact_leave, conversation_id=self.session.conversation_id, email=frame.get("email")
            )
        except DomainError as exc:
            await self.error("invalid", str(exc))
            return
        await self.send(text_data=json.dumps({"type": "contact", "status": "saved"}))

    async def on_typing(self, frame: dict[str, Any]) -> None:
        assert self.session is not None
        # The widget sends at most one typing frame per TYPING_EVERY seconds; extra ones are dropped.
        now = time.monotonic()
        if now - self.last_typing < TYPING_EVERY:
            return
        self.last_typing = now
        await self.live(
            self.channel_layer.group_send(
                self.group, {"type": "chat.typing", "role": "customer", "sender": self.channel_name}
            )
        )
        await self.live(
            self.channel_layer.group_send(
                console_group_name(self.session.organization_id),
                {"type": "console.typing", "conversation_id": self.session.conversation_id, "role": "customer"},
            )
        )

    async def on_resume(self, frame: dict[str, Any]) -> None:
        assert self.session is not None
        after = frame.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            await self.error("invalid", "resume needs after: the last sequence number seen (0 for all).")
            return
        try:
            replay = await turn_gate().run(_replay, session=self.session, after=after)
        except DatabaseError:
            logger.exception("resume failed")
            await self.error("unavailable", UNAVAILABLE_MESSAGE)
            return
        for message in replay:
            await self.send(text_data=json.dumps(message))
        await self.send_queue_status()

    async def on_csat(self, frame: dict[str, Any]) -> None:
        assert self.session is not None
        from tickets.services import conversation_csat_submit

        score = frame.get("score")
        try:
            await turn_gate().run(
                conversation_csat_submit,
                conversation_id=self.session.conversation_id,
                score=score,
                comment=frame.get("comment", ""),
            )
        except DomainError as exc:
            await self.error("invalid", str(exc))
            return
        await self.send(text_data=json.dumps({"type": "csat", "score": score, "status": "recorded"}))

    # --- group events ---

    async def chat_message(self, event: dict[str, Any]) -> None:
        if event.get("sender") != self.channel_name:  # this socket sent its own turn's frames itself
            await self.send(text_data=json.dumps(event["frame"]))

    async def chat_messages(self, event: dict[str, Any]) -> None:
        if event.get("sender") != self.channel_name:
            for frame in event["frames"]:
                await self.send(text_data=json.dumps(frame))

    async def chat_csat_request(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"type": "csat_request", "ticket_id": event["ticket_id"]}))

    async def chat_typing(self, event: dict[str, Any]) -> None:
        if event.get("sender") != self.channel_name:
            await self.send(text_data=json.dumps({"type": "typing", "role": event["role"]}))
