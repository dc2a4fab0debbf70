"""The worker's side of an inbound messaging message: its files fetched from the provider, then
the assistant's turn, the same as the web chat's, with the reply queued back through the
channel. A bot command (Telegram's /start, following a WeChat account) gets the organization's
greeting instead; a voicemail goes to people, with a ticket note linking the recording."""

from typing import Any

from django.db import transaction

from agents.messaging.inbound import media_store
from agents.messaging.models import MessagingRecord
from agents.messaging.outbound import messaging_reply_queue


def _greeting(conversation: Any, language: str) -> str:
    from agents.dialog import say
    from agents.models import WidgetSettings

    configured = WidgetSettings.objects.filter(organization_id=conversation.organization_id).first()
    if configured is not None and configured.greeting:
        return configured.greeting
    return say("greeting", language, organization=conversation.organization.name)


def messaging_answer(*, message_id: int, answers: bool, command: str = "") -> str:
    """Returns what was done. Safe to run twice: the reply is stored and queued once per
    customer message (assistant_reply and the outbound record are idempotent)."""
    from agents.services import assistant_reply, assistant_reply_for
    from tickets import services as desk
    from tickets.models import Conversation, Message, MessageRole

    message = Message.objects.select_related("conversation__organization", "conversation__customer").get(pk=message_id)
    media_store(message=message)
    if not answers:
        return "a person has the conversation"
    conversation = message.conversation
    record = MessagingRecord.objects.select_related("account").filter(message=message).first()
    with transaction.atomic():
        if command == "start":
            done = assistant_reply_for(message)
            if done is None:
                # A new follower has written nothing yet: the account's language greets them.
                language = record.account.language if record is not None else "en"
                done, _ = desk.message_create(
                    conversation=conversation,
                    role=MessageRole.BOT,
                    text=_greeting(conversation, language),
                    metadata={"in_reply_to": message.seq, "intent": "greeting"},
                )
            messaging_reply_queue(message=done)
            return "greeted"
        account = record.account if record is not None else None
        if account is not None and (account.provider == "voice" or not account.assistant_answers):
            voicemail = account.provider == "voice"
            if Conversation.objects.filter(pk=conversation.pk, status=Conversation.Status.OPEN).exists():
                reason = "voicemail" if voicemail else f"{account}: agents answer"
                ticket = desk.conversation_escalate(conversation=conversation, reason=reason)
                if voicemail:  # the link to the recording, where agents read the ticket
                    desk.ticket_note_add(ticket=ticket, author=None, body=message.text)
            return "handed to people"
        reply = assistant_reply(message_id=message_id)
        if reply is None:
            return "a person has the conversation"
        messaging_reply_queue(message=reply)
    return "answered"
