"""What arrives through a messaging account becomes a customer message, through the same
customer-message service as the web chat and email; the assistant's turn is queued for a worker.

The customer: the one this provider address belongs to (ChannelIdentity); else, when the
provider proved a phone number, the customer of that number on another channel (WhatsApp and
SMS meet there); else, when the sender vouches for an email (the API channel's signed request),
the customer with that email; else a new customer. The conversation: the customer's latest one
on this channel that has not ended, else a new one. A provider message id taken before is a
duplicate: nothing is stored twice and nothing is answered twice."""

import hashlib
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction

from agents.messaging.adapters import Inbound, Media, StatusUpdate, adapter_for
from agents.messaging.models import (
    STATUS_RANK,
    ChannelIdentity,
    DeliveryStatus,
    Direction,
    MessagingAccount,
    MessagingRecord,
)
from tickets.crypto import blind_index
from tickets.rules import MESSAGE_MAX_CHARS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessagingReceived:
    outcome: str  # "received", "duplicate" or "held" (over a rate limit: stored, not answered)
    conversation_id: int | None
    message_id: int | None


def _customer(account: MessagingAccount, inbound: Inbound) -> Any:
    from tickets import services as desk
    from tickets.selectors import customer_by_email

    organization = account.organization
    address_hash = blind_index(inbound.address)
    known = (
        ChannelIdentity.objects.filter(organization=organization, provider=account.provider, address_hash=address_hash)
        .select_related("customer")
        .first()
    )
    if known is not None:
        return _named(known.customer, inbound)
    customer = None
    if inbound.verified_phone:
        same_phone = (
            ChannelIdentity.objects.filter(organization=organization, address_hash=address_hash, verified_phone=True)
            .select_related("customer")
            .first()
        )
        customer = same_phone.customer if same_phone is not None else None
    if customer is None and inbound.email:
        customer = customer_by_email(organization=organization, email=inbound.email)
    if customer is not None:
        customer = _named(customer, inbound)
    else:
        fields: dict[str, Any] = {"name": inbound.display_name[:200]}
        if inbound.verified_phone:
            fields["phone"] = inbound.address[:40]
        if inbound.email:
            fields["email"] = inbound.email
        customer = desk.customer_create(organization=organization, **fields)
    ChannelIdentity.objects.create(
        organization=organization,
        customer=customer,
        provider=account.provider,
        address=inbound.address,
        verified_phone=inbound.verified_phone,
        display_name=inbound.display_name[:200],
    )
    return customer


def _named(customer: Any, inbound: Inbound) -> Any:
    """A customer known without a name (a caller) takes the name a provider gives (a WhatsApp
    profile, a Telegram user); a name staff or the customer set is never overwritten."""
    from tickets import services as desk

    if customer.name or not inbound.display_name:
        return customer
    return desk.customer_update(customer=customer, name=inbound.display_name[:200])


def _conversation(account: MessagingAccount, customer: Any) -> Any:
    from tickets import services as desk
    from tickets.models import Conversation

    channel = adapter_for(account.provider).channel
    current = (
        Conversation.objects.filter(customer=customer, channel=channel)
        .exclude(status=Conversation.Status.ENDED)
        .order_by("-started_at")
        .first()
    )
    return current or desk.conversation_start(customer=customer, channel=channel)


def messaging_receive(*, account: MessagingAccount, inbound: Inbound) -> MessagingReceived:
    """Take one inbound message; safe to call again with the same provider message id."""
    existing = MessagingRecord.objects.filter(
        account=account, direction=Direction.INBOUND, provider_message_id=inbound.provider_message_id
    ).first()
    if existing is not None:
        return MessagingReceived("duplicate", existing.conversation_id, existing.message_id)
    try:
        with transaction.atomic():
            return _receive(account, inbound)
    except IntegrityError:
        record = MessagingRecord.objects.filter(
            account=account, direction=Direction.INBOUND, provider_message_id=inbound.provider_message_id
        ).first()
        if record is None:  # another first message of this new person made their identity meanwhile
            with transaction.atomic():
                return _receive(account, inbound)
        # the provider's retry arrived while the first delivery was being stored
        return MessagingReceived("duplicate", record.conversation_id, record.message_id)


def _receive(account: MessagingAccount, inbound: Inbound) -> MessagingReceived:
    from agents.services import customer_message_receive
    from monitoring.metrics import channel_message_count
    from tickets.errors import RateLimited

    customer = _customer(account, inbound)
    conversation = _conversation(account, customer)
    text = inbound.text.strip()
    if not text and inbound.media:
        text = "\U0001f4ce " + ", ".join(m.filename or m.content_type or "file" for m in inbound.media)
    record = MessagingRecord.objects.create(
        account=account,
        conversation=conversation,
        direction=Direction.INBOUND,
        provider_message_id=inbound.provider_message_id,
        recipient=inbound.address,
        status=DeliveryStatus.RECEIVED,
        media=[m.__dict__ for m in inbound.media],
    )
    digest = hashlib.sha256(f"{account.pk}:{inbound.provider_message_id}".encode()).hexdigest()[:40]
    try:
        received = customer_message_receive(
            conversation_id=conversation.pk,
            organization_id=account.organization_id,
            text=text[:MESSAGE_MAX_CHARS] or "(empty message)",
            client_message_id=f"{account.provider}:{digest}",
        )
    except RateLimited as exc:
        record.reason = str(exc)[:300]
        record.save(update_fields=["reason"])
        return MessagingReceived("held", conversation.pk, None)
    record.message = received.message
    record.save(update_fields=["message"])
    transaction.on_commit(partial(channel_message_count, conversation.channel, "inbound"))
    message_id = received.message.pk
    answers = received.assistant_answers
    if answers or inbound.media:
        command = inbound.command
        transaction.on_commit(lambda: _queue_turn(message_id, answers, command))
    return MessagingReceived("received", conversation.pk, message_id)


def _queue_turn(message_id: int, answers: bool, command: str) -> None:
    from agents.messaging.outbound import printing
    from agents.tasks import messaging_turn

    if printing():  # channel_inject: the turn runs here, its replies printed
        from agents.messaging.turn import messaging_answer

        messaging_answer(message_id=message_id, answers=answers, command=command)
        return
    messaging_turn.delay(message_id, answers, command)


def media_store(*, message: Any) -> list[str]:
    """Fetch the files of an inbound message from the provider and store them as the widget's
    are (type from the bytes, size limit); returns what was refused or could not be fetched."""
    from django.core.files.base import ContentFile

    from config.errors import DomainError
    from tickets.attachments import attachment_inspect, attachment_store

    record = MessagingRecord.objects.select_related("account").filter(message=message).first()
    if record is None or not record.media or message.attachments.exists():
        return []
    adapter = adapter_for(record.account.provider)
    refused = []
    for raw in record.media:
        media = Media(**raw)
        try:
            content, _ = adapter.fetch_media(record.account, media)
            upload = ContentFile(content, name=media.filename or "file")
            content_type = attachment_inspect(upload)
        except DomainError as exc:
            refused.append(f"{media.filename or 'file'}: {exc}")
            continue
        except Exception as exc:  # the provider's download failed: say so, keep the text
            refused.append(f"{media.filename or 'file'}: not fetched ({type(exc).__name__})")
            continue
        with transaction.atomic():
            attachment_store(message=message, upload=upload, content_type=content_type)
    if refused:
        MessagingRecord.objects.filter(pk=record.pk).update(reason="; ".join(refused)[:300])
    return refused


def messaging_status_apply(*, account: MessagingAccount, update: StatusUpdate) -> bool:
    """A provider's status callback: the sent message moves forward (sent, delivered, read) or
    fails with the provider's reason; an unknown id or a step back changes nothing."""
    from monitoring.metrics import channel_message_count

    with transaction.atomic():
        record = (
            MessagingRecord.objects.select_for_update(of=("self",))
            .select_related("conversation")
            .filter(account=account, direction=Direction.OUTBOUND, provider_message_id=update.provider_message_id)
            .first()
        )
        if record is None or record.status == DeliveryStatus.FAILED:
            return False
        if STATUS_RANK.get(update.status, -1) <= STATUS_RANK.get(record.status, -1):  # type: ignore[call-overload]
            return False
        record.status = update.status
        record.reason = update.reason[:300] if update.status == DeliveryStatus.FAILED else ""
        record.save(update_fields=["status", "reason", "updated_at"])
        if update.status == DeliveryStatus.FAILED and record.conversation is not None:
            channel = record.conversation.channel
            transaction.on_commit(partial(channel_message_count, channel, "failed"))
    return True
