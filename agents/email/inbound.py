"""An email arrives (from an MTA pipe, a file, and later a polled mailbox or a provider's
webhook): it becomes a customer message in the right conversation, through the same
customer-message service as a chat message, and the assistant's turn is queued.

Threading: a reply continues the conversation of the mail it answers (In-Reply-To, then
References), else of the ticket its subject names (``[#123]``, when the sender is that ticket's
customer); anything else starts a new conversation. Automatic mail (auto-replies, bounces,
lists), mail from a support address of ours and a sender over their rate are recorded for staff
and never answered; a bounce marks the failed address's customer."""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from agents.email.parsing import InboundEmail, email_parse
from agents.models import EmailChannel, EmailDirection, EmailRecord, EmailStatus
from config.errors import DomainError
from tenancy.models import Organization
from tickets.rules import MESSAGE_MAX_CHARS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmailReceived:
    record: EmailRecord
    outcome: str  # "received", "duplicate" (this Message-ID was taken before) or "ignored"
    conversation_id: int | None
    assistant_answers: bool = False


def email_channel_for(*, recipients: list[str]) -> EmailChannel | None:
    """The organization's channel whose support address the mail was sent to."""
    return EmailChannel.objects.select_related("organization").filter(address__in=recipients).first()


def _conversation_threaded(organization: Organization, email: InboundEmail) -> Any:
    from tickets.models import Conversation, Ticket

    refs = [*email.in_reply_to, *reversed(email.references)]
    if refs:
        found = (
            EmailRecord.objects.filter(organization=organization, mail_id__in=refs, conversation__isnull=False)
            .select_related("conversation__customer")
            .order_by("-created_at")
            .first()
        )
        if found is not None:
            return found.conversation
    number = email.ticket_reference
    if number is not None:
        ticket = (
            Ticket.objects.filter(organization=organization, pk=number, conversation__isnull=False)
            .select_related("conversation__customer", "customer")
            .first()
        )
        # Only the ticket's own customer continues it by subject: anyone can type "[#123]".
        if ticket is not None and ticket.customer.email.lower() == email.sender:
            return ticket.conversation
    return Conversation.objects.none().first()


def _ignored(organization: Organization, email: InboundEmail, reason: str) -> EmailReceived:
    record = _record(organization, email, status=EmailStatus.IGNORED, reason=reason)
    logger.info("email %s ignored: %s", email.message_id, reason)
    return EmailReceived(record=record, outcome="ignored", conversation_id=None)


def _record(organization: Organization, email: InboundEmail, **fields: Any) -> EmailRecord:
    return EmailRecord.objects.create(
        organization=organization,
        direction=EmailDirection.INBOUND,
        mail_id=email.message_id[:255],
        in_reply_to=(email.in_reply_to[0] if email.in_reply_to else "")[:255],
        references=" ".join(email.references),
        subject=email.subject[:255],
        sender=email.sender,
        recipient=", ".join(email.recipients),
        full_text=email.text,
        html=email.html,
        **fields,
    )


def _bounce_mark(organization: Organization, addresses: list[str]) -> int:
    from tickets import services as desk
    from tickets.selectors import customer_by_email

    marked = 0
    for address in addresses:
        customer = customer_by_email(organization=organization, email=address)
        if customer is not None:
            desk.customer_email_bounced(customer=customer)
            marked += 1
    return marked


def _store_attachments(message: Any, email: InboundEmail) -> list[str]:
    """The images and PDFs of the mail, checked as the widget's are; what is refused is named."""
    from tickets.attachments import attachment_inspect, attachment_store

    refused = []
    for attachment in email.attachments:
        upload = ContentFile(attachment.content, name=attachment.filename)
        try:
            content_type = attachment_inspect(upload)
        except DomainError as exc:
            refused.append(f"{attachment.filename}: {exc}")
            continue
        attachment_store(message=message, upload=upload, content_type=content_type)
    return refused


def email_receive(*, raw: bytes, organization: Organization | None = None) -> EmailReceived:
    """Take one raw email. ``organization``: whose mailbox it came through (a pipe or a
    poll knows); without it, the organization whose support address it was sent to."""
    email = email_parse(raw)
    if organization is None:
        channel = email_channel_for(recipients=email.recipients)
        if channel is None:
            raise DomainError("No organization's support address is among this email's recipients.")
        organization = channel.organization
    existing = EmailRecord.objects.filter(organization=organization, mail_id=email.message_id[:255]).first()
    if existing is not None:
        return EmailReceived(record=existing, outcome="duplicate", conversation_id=existing.conversation_id)
    try:
        with transaction.atomic():
            return _receive(organization, email)
    except IntegrityError:  # the same mail taken at the same moment elsewhere (two polls, a resent pipe)
        record = EmailRecord.objects.get(organization=organization, mail_id=email.message_id[:255])
        return EmailReceived(record=record, outcome="duplicate", conversation_id=record.conversation_id)


def _receive(organization: Organization, email: InboundEmail) -> EmailReceived:
    from agents.services import customer_message_receive
    from tickets import services as desk
    from tickets.errors import RateLimited
    from tickets.limits import limits_hit
    from tickets.models import Channel
    from tickets.selectors import customer_by_email

    if email.automatic:
        if email.automatic == "bounce":
            marked = _bounce_mark(organization, email.bounced_recipients)
            return _ignored(organization, email, f"bounce ({marked} customer address(es) marked as failing)")
        return _ignored(organization, email, email.automatic)
    if EmailChannel.objects.filter(address=email.sender).exists():
        return _ignored(organization, email, "sent from one of our own support addresses")
    rate = settings.CONCIERGE_RATE_LIMITS["email_sender"]
    if not limits_hit([("email_sender", f"{organization.pk}:{email.sender}", rate)]).allowed:
        return _ignored(organization, email, f"more than {rate} emails from this sender")

    conversation = _conversation_threaded(organization, email)
    if conversation is None:
        customer = customer_by_email(organization=organization, email=email.sender)
        if customer is None:
            customer = desk.customer_create(organization=organization, name=email.sender_name[:200], email=email.sender)
        conversation = desk.conversation_start(customer=customer, channel=Channel.EMAIL)
        first = True
    else:
        first = False
    text = email.reply
    if first and email.topic and email.topic.lower() not in text.lower():
        text = f"{email.topic}\n\n{text}".strip()
    if not text and email.attachments:
        text = "\U0001f4ce " + ", ".join(a.filename for a in email.attachments)
    text = text[:MESSAGE_MAX_CHARS] or email.topic or "(empty email)"
    try:
        received = customer_message_receive(
            conversation_id=conversation.pk,
            organization_id=organization.pk,
            text=text,
            client_message_id="email:" + hashlib.sha256(email.message_id.encode()).hexdigest()[:40],
        )
    except RateLimited as exc:
        return _ignored(organization, email, str(exc))
    refused = _store_attachments(received.message, email)
    record = _record(
        organization,
        email,
        conversation=conversation,
        message=received.message,
        status=EmailStatus.RECEIVED,
        reason="; ".join(refused)[:300],
    )
    answers = received.assistant_answers
    if answers:
        message_id = received.message.pk
        transaction.on_commit(lambda: _queue_turn(message_id))
    return EmailReceived(record=record, outcome="received", conversation_id=conversation.pk, assistant_answers=answers)


def _queue_turn(message_id: int) -> None:
    from agents.tasks import email_assistant_turn

    email_assistant_turn.delay(message_id)


def email_assistant_answer(*, message_id: int) -> str:
    """The assistant's turn on a customer's email, as the organization's channel says:
    "answer" mails the assistant's reply (or its handoff notice) back in the thread; "draft"
    hands the conversation to people with the assistant's answer as an internal note on the
    ticket; "never" hands it over at once. Returns what was done. Safe to run twice: the reply
    and its outgoing mail are stored once per customer message."""
    from agents.email.outbound import email_reply_queue
    from agents.models import EmailAssistantMode
    from agents.pipeline import ConversationContext, run_pipeline
    from agents.services import assistant_reply
    from tickets import services as desk
    from tickets.models import Conversation, Message

    message = Message.objects.select_related("conversation__organization", "conversation__customer").get(pk=message_id)
    conversation = message.conversation
    channel = EmailChannel.objects.filter(organization_id=conversation.organization_id).first()
    mode = channel.assistant if channel is not None else EmailAssistantMode.NEVER
    if mode == EmailAssistantMode.ANSWER:
        with transaction.atomic():
            reply = assistant_reply(message_id=message_id)
            if reply is None:
                return "a person has the conversation"
            email_reply_queue(message=reply)
        return "answered"
    with transaction.atomic():
        if not Conversation.objects.filter(pk=conversation.pk, status=Conversation.Status.OPEN).exists():
            return "a person has the conversation"
        if mode == EmailAssistantMode.DRAFT:
            state = run_pipeline(
                message.text,
                ConversationContext(
                    organization_id=conversation.organization_id,
                    organization_name=conversation.organization.name,
                    vip_tier=conversation.customer.vip_tier,
                    conversation_id=conversation.pk,
                ),
            )
            ticket = desk.conversation_escalate(
                conversation=conversation,
                reason="email: the assistant drafts, an agent answers",
                intent=state["intent"],
                sentiment=state["sentiment"],
            )
            desk.ticket_note_add(ticket=ticket, author=None, body=f"The assistant's draft answer:\n\n{state['reply']}")
            return "drafted"
        desk.conversation_escalate(conversation=conversation, reason="email: the assistant does not answer email")
        return "handed to people"


def email_channel_set(
    *, organization: Organization, address: str, display_name: str = "", assistant: str = ""
) -> EmailChannel:
    """Give the organization its support address (or change it); the inbound secret is kept."""
    channel = EmailChannel.objects.filter(organization=organization).first() or EmailChannel(organization=organization)
    channel.address = address.strip().lower()
    channel.display_name = display_name
    if assistant:
        channel.assistant = assistant
    try:
        channel.full_clean()
    except ValidationError as exc:
        raise DomainError("; ".join(exc.messages)) from exc
    channel.save()
    return channel
