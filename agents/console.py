"""/ws/console/: a signed-in staff member's live view of their organization's desk. It receives
every new message and the customers' typing, the tickets' changes, and the mentions meant for
this staff member; on a ticket page it says which ticket it watches, so agents on the same
ticket see each other (viewing, typing a reply). It sends the agent's typing to the customer."""

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from monitoring.metrics import WEBSOCKETS_OPEN
from tickets.transport import console_group_name, conversation_group_name, staff_group_name, ticket_group_name

WATCH_AT_MOST = 10  # tickets one socket may watch (one page watches one)


class ConsoleConsumer(AsyncWebsocketConsumer):
    organization_id: int | None = None
    user_id: int | None = None
    username: str = ""

    async def connect(self) -> None:
        from tenancy.services import staff_organization

        user = self.scope.get("user")
        organization = await database_sync_to_async(staff_organization)(user) if user else None
        await self.accept()
        if organization is None:
            await self.send_json({"type": "error", "code": "forbidden", "message": "Sign in as staff first."})
            await self.close(code=4403)
            return
        self.organization_id, self.user_id, self.username = organization.pk, user.pk, user.get_username()
        self.watching: set[int] = set()
        await self.channel_layer.group_add(console_group_name(organization.pk), self.channel_name)
        await self.channel_layer.group_add(staff_group_name(user.pk), self.channel_name)
        WEBSOCKETS_OPEN.labels(kind="console").inc()

    async def disconnect(self, code: int) -> None:
        if self.organization_id is None:
            return
        for ticket_id in list(self.watching):
            await self.presence(ticket_id, "left")
            await self.channel_layer.group_discard(ticket_group_name(ticket_id), self.channel_name)
        await self.channel_layer.group_discard(console_group_name(self.organization_id), self.channel_name)
        await self.channel_layer.group_discard(staff_group_name(self.user_id or 0), self.channel_name)
        WEBSOCKETS_OPEN.labels(kind="console").dec()

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame))

    async def invalid(self, message: str) -> None:
        await self.send_json({"type": "error", "code": "invalid", "message": message})

    async def presence(self, ticket_id: int, state: str, *, answer: bool = False) -> None:
        await self.channel_layer.group_send(
            ticket_group_name(ticket_id),
            {
                "type": "ticket.presence",
                "ticket_id": ticket_id,
                "user": self.username,
                "state": state,
                "sender": self.channel_name,
                "answer": answer,
            },
        )

    def _owns(self, model: str, pk: int) -> bool:
        from tickets.models import Conversation, Ticket

        table = Conversation if model == "conversation" else Ticket
        return table.objects.filter(pk=pk, organization_id=self.organization_id or 0).exists()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.organization_id is None:
            return
        try:
            frame = json.loads(text_data or "")
            kind = frame.get("type") if isinstance(frame, dict) else None
        except ValueError:
            kind = None
        if kind == "typing":
            await self.on_typing(frame)
        elif kind in ("watch", "unwatch"):
            await self.on_watch(frame, kind)
        else:
            await self.invalid("Send {type: typing, conversation_id: N}, or {type: watch, ticket_id: N}.")

    async def on_typing(self, frame: dict[str, Any]) -> None:
        try:
            conversation_id = int(frame["conversation_id"])
        except (TypeError, KeyError, ValueError):
            await self.invalid("Send {type: typing, conversation_id: N}.")
            return
        if await database_sync_to_async(self._owns)("conversation", conversation_id):
            await self.channel_layer.group_send(
                conversation_group_name(conversation_id), {"type": "chat.typing", "role": "agent", "sender": ""}
            )
        ticket_id = frame.get("ticket_id")
        if isinstance(ticket_id, int) and ticket_id in self.watching:
            await self.presence(ticket_id, "typing")

    async def on_watch(self, frame: dict[str, Any], kind: str) -> None:
        ticket_id = frame.get("ticket_id")
        if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
            await self.invalid("Send {type: watch, ticket_id: N}.")
            return
        if kind == "unwatch":
            if ticket_id in self.watching:
                self.watching.discard(ticket_id)
                await self.presence(ticket_id, "left")
                await self.channel_layer.group_discard(ticket_group_name(ticket_id), self.channel_name)
            return
        if len(self.watching) >= WATCH_AT_MOST or not await database_sync_to_async(self._owns)("ticket", ticket_id):
            await self.send_json(
                {"type": "error", "code": "forbidden", "message": f"Ticket {ticket_id} is not yours to watch."}
            )
            return
        self.watching.add(ticket_id)
        await self.channel_layer.group_add(ticket_group_name(ticket_id), self.channel_name)
        await self.presence(ticket_id, "viewing")

    # --- events from the channel layer ---

    async def console_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "message", "conversation_id": event["conversation_id"], **event["frame"]})

    async def console_messages(self, event: dict[str, Any]) -> None:
        for frame in event["frames"]:
            await self.console_message({"conversation_id": event["conversation_id"], "frame": frame})

    async def console_typing(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "typing", "conversation_id": event["conversation_id"], "role": event["role"]})

    async def console_ticket(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def console_notification(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def ticket_presence(self, event: dict[str, Any]) -> None:
        if event.get("sender") == self.channel_name:
            return
        await self.send_json(
            {"type": "presence", "ticket_id": event["ticket_id"], "user": event["user"], "state": event["state"]}
        )
        # A newcomer learns who was already here: each watcher answers a "viewing" once.
        if event["state"] == "viewing" and not event.get("answer") and event["ticket_id"] in self.watching:
            await self.presence(event["ticket_id"], "viewing", answer=True)
