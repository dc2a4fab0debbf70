"""Customers, conversations and messages: the record every channel writes to. Messages get the
conversation's next sequence number under a row lock and are idempotent on the client's id."""

import os
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.compiled import fields_update, row_insert, row_update
from tenancy.models import Organization
from tickets.attachments import attachment_inspect, attachment_store, attachments_none_known
from tickets.errors import ConversationFull, DomainError
from tickets.models import (
    Channel,
    Conversation,
    Customer,
    Message,
    MessageRole,
    SentimentLabel,
    SentimentRecord,
    VipTier,
)
from tickets.rules import (
    MESSAGE_MAX_CHARS,
    NEGATIVE_SENTIMENT,
    POSITIVE_SENTIMENT,
    VERY_NEGATIVE_SENTIMENT,
    VERY_POSITIVE_SENTIMENT,
)
from tickets.search import desk_message_index, desk_ticket_index
from tickets.selectors import conversation_lock, message_by_client_id
from tickets.transport import message_broadcast_on_commit

CUSTOMER_FIELDS = ("name", "email", "phone", "external_id", "vip_tier", "language")


@transaction.atomic
def customer_create(*, organization: Organization, **fields: Any) -> Customer:
    unknown = set(fields) - set(CUSTOMER_FIELDS)
    if unknown:
        raise DomainError(f"Unknown customer fields: {', '.join(sorted(unknown))}.")
    if fields.get("vip_tier", VipTier.NONE) not in VipTier.values:
        raise DomainError(f"Unknown VIP tier {fields['vip_tier']!r}.")
    external_id = fields.get("external_id", "")
    if external_id and Customer.objects.filter(organization=organization, external_id=external_id).exists():
        raise DomainError(f"A customer with external id {external_id!r} already exists.")
    customer = Customer(organization=organization, **fields)
    customer.full_clean()
    customer.save()
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, **fields: Any) -> Customer:
    unknown = set(fields) - set(CUSTOMER_FIELDS)
    if unknown:
        raise DomainError(f"Unknown customer fields: {', '.join(sorted(unknown))}.")
    external_id = fields.get("external_id")
    if (
        external_id
        and Customer.objects.filter(organization=customer.organization, external_id=external_id)
        .exclude(pk=customer.pk)
        .exists()
    ):
        raise DomainError(f"A customer with external id {external_id!r} already exists.")
    if "email" in fields and (fields["email"] or "").lower() != (customer.email or "").lower():
        customer.email_bounced_at = None  # a new address is worth trying
    for name, value in fields.items():
        setattr(customer, name, value)
    customer.full_clean()
    customer.save()
    if {"name", "email"} & set(fields):
        for ticket in customer.tickets.select_related("customer"):
            desk_ticket_index(ticket)  # staff search finds tickets by customer name and email
    return customer


@transaction.atomic
def customer_merge(*, source: Customer, target: Customer, actor: Any = None) -> Customer:
    """One person known as two customers (a chat and a WhatsApp number, say): everything of
    ``source`` (conversations, tickets, channel identities, whatever else points at a customer)
    moves to ``target``, which keeps its own details and takes the source's where it has none;
    the source is deleted. Audited with both ids."""
    from tenancy.audit import audit_record
    from tickets.models import VipTier

    if source.pk == target.pk:
        raise DomainError("A customer cannot be merged into itself.")
    if source.organization_id != target.organization_id:
        raise DomainError("Customers of different organizations cannot be merged.")
    locked = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[source.pk, target.pk])}
    if len(locked) != 2:
        raise DomainError("One of the customers no longer exists.")
    source, target = locked[source.pk], locked[target.pk]
    if source.erased_at or target.erased_at:
        raise DomainError("An erased customer's data is gone; there is nothing to merge.")
    moved: dict[str, int] = {}
    for relation in Customer._meta.related_objects:
        if relation.many_to_many or relation.one_to_one:
            continue
        model: Any = relation.related_model
        count = model._default_manager.filter(**{relation.field.name: source}).update(**{relation.field.name: target})
        moved[model._meta.model_name] = count
    external_id = source.external_id
    for name in ("name", "email", "phone"):
        if not getattr(target, name) and getattr(source, name):
            setattr(target, name, getattr(source, name))
    ranks = list(VipTier.values)
    if ranks.index(source.vip_tier) > ranks.index(target.vip_tier):
        target.vip_tier = source.vip_tier
    if target.language == "en" and source.language != "en":
        target.language = source.language
    seen = [t for t in (source.last_seen_at, target.last_seen_at) if t is not None]
    target.last_seen_at = max(seen) if seen else None
    source_id = source.pk
    source.delete()
    if not target.external_id and external_id:
        target.external_id = external_id  # free now that the source is gone
    target.save()
    for ticket in target.tickets.select_related("customer"):
        desk_ticket_index(ticket)
    audit_record(
        organization_id=target.organization_id,
        action="customer.merged",
        actor=actor,
        object_type="customer",
        object_id=target.pk,
        data={"merged": source_id, "moved": moved},
    )
    return target


def customer_email_bounced(*, customer: Customer) -> Customer:
    """Mail to the customer's address bounced: nothing more is emailed to it until it changes."""
    customer.email_bounced_at = timezone.now()
    Customer.objects.filter(pk=customer.pk).update(email_bounced_at=customer.email_bounced_at)
    return customer


@transaction.atomic
def conversation_start(*, customer: Customer, channel: str = Channel.WEB) -> Conversation:
    if channel not in Channel.values:
        raise DomainError(f"Unknown channel {channel!r}.")
    conversation = Conversation.objects.create(organization=customer.organization, customer=customer, channel=channel)
    _last_seen_note(customer.pk, conversation.started_at)  # its first message does not write it again
    return conversation


@transaction.atomic
def conversation_end(*, conversation: Conversation) -> Conversation:
    if conversation.status != Conversation.Status.ENDED:
        conversation.status = Conversation.Status.ENDED
        conversation.ended_at = timezone.now()
        conversation.save(update_fields=["status", "ended_at"])
    return conversation


# A customer's last_seen_at is written at most once a minute by each process, when a conversation
# starts or a message comes: staff read it to the minute ("last seen"), and its UPDATE was one of
# a chat turn's fourteen statements (and a conversation's first message wrote it again).
LAST_SEEN_PRECISION_SECONDS = 60.0
_last_seen_written: dict[int, float] = {}  # customer id -> when this process last wrote it (monotonic)


def _last_seen_note(customer_id: int, at: datetime) -> None:
    """The customer was seen ``at``: written unless this process wrote it within the minute."""
    now = time.monotonic()
    written = _last_seen_written.get(customer_id)
    if written is not None and now - written < LAST_SEEN_PRECISION_SECONDS:
        return
    if len(_last_seen_written) >= 10_000:  # bounded: forgetting only costs an early write
        _last_seen_written.clear()
    _last_seen_written[customer_id] = now
    row_update(Customer, customer_id, {"last_seen_at": at})


def message_create(
    *,
    conversation: Conversation,
    role: str,
    text: str,
    client_message_id: str = "",
    metadata: dict[str, Any] | None = None,
    author: Any = None,
    broadcast: bool = True,
    attachment: Any = None,
    under_lock: bool = False,
    update_fields: tuple[str, ...] = (),
) -> tuple[Message, bool]:
    """Store one message with the conversation's next sequence number, with an image or PDF
    (an uploaded file, checked before anything is written) when one is given.

    Idempotent on ``client_message_id``: a repeat returns the stored message and False.
    ``under_lock``: the caller holds the conversation's row lock, in its own transaction, and
    passes the row it read under it: the row is not read again, and no savepoint is taken (two
    round trips fewer on a chat turn); an error then ends the caller's transaction.
    ``update_fields``: with ``under_lock``, other fields of that row the caller set, written in
    the same UPDATE as the sequence number (the reply's conversation mood: one statement fewer).
    """
    if role not in MessageRole.values:
        raise DomainError(f"Unknown message role {role!r}.")
    content_type = attachment_inspect(attachment) if attachment is not None else ""
    text = (text or "").strip()
    if not text and attachment is not None:
        text = f"\U0001f4ce {os.path.basename(str(attachment.name or 'file'))}"
    if not text:
        raise DomainError("A message needs some text.")
    if len(text) > MESSAGE_MAX_CHARS:
        raise DomainError(f"A message may hold at most {MESSAGE_MAX_CHARS} characters.")
    if len(client_message_id) > 64:
        raise DomainError("A client message id may hold at most 64 characters.")
    with transaction.atomic(savepoint=not under_lock):
        # Lock the conversation row: sequence numbers are handed out one writer at a time.
        locked = (
            conversation
            if under_lock
            else conversation_lock(conversation_id=conversation.pk, organization_id=conversation.organization_id)
        )
        if client_message_id:
            existing = message_by_client_id(conversation_id=locked.pk, client_message_id=client_message_id)
            if existing:
                return existing, False
        cap = settings.CONCIERGE_CONVERSATION_MAX_MESSAGES
        if role == MessageRole.CUSTOMER and locked.last_seq >= cap:
            raise ConversationFull(f"This conversation reached {cap} messages; please start a new chat.")
        locked.last_seq += 1
        fields_update(locked, ["last_seq", *(update_fields if under_lock else ())])
        conversation.last_seq = locked.last_seq
        message = Message(
            conversation=locked,
            role=role,
            text=text,
            seq=locked.last_seq,
            client_message_id=client_message_id,
            metadata=metadata or {},
            author=author,
        )
        row_insert(message)
        if attachment is not None:
            attachment_store(message=message, upload=attachment, content_type=content_type)
        else:
            attachments_none_known(message)
        if role == MessageRole.CUSTOMER:
            _last_seen_note(locked.customer_id, message.created_at)
            if locked.status == Conversation.Status.ENDED:
                # The customer came back: the chat is live again and the assistant answers.
                locked.status = Conversation.Status.OPEN
                locked.reopened_at = message.created_at
                locked.save(update_fields=["status", "reopened_at"])
                conversation.status = locked.status
        desk_message_index(message, locked.organization_id)
        if broadcast:
            message_broadcast_on_commit(message, locked.organization_id)
        return message, True


def sentiment_label_for(score: float) -> str:
    if score <= VERY_NEGATIVE_SENTIMENT:
        return SentimentLabel.VERY_NEGATIVE
    if score < NEGATIVE_SENTIMENT:
        return SentimentLabel.NEGATIVE
    if score <= POSITIVE_SENTIMENT:
        return SentimentLabel.NEUTRAL
    if score < VERY_POSITIVE_SENTIMENT:
        return SentimentLabel.POSITIVE
    return SentimentLabel.VERY_POSITIVE


MOOD_FIELDS = ("sentiment_score", "sentiment_label")


def message_sentiment_record(
    *, message: Message, score: float, savepoint: bool = True, conversation: Conversation | None = None
) -> SentimentRecord:
    """Record a message's sentiment; a customer message also sets the conversation's latest mood.
    ``savepoint=False``: the caller's transaction holds the write (see message_create).
    ``conversation``: the message's conversation row, which the caller holds under its lock and
    saves: the mood is set on it (``MOOD_FIELDS``) instead of written here."""
    if not -1.0 <= score <= 1.0:
        raise DomainError("A sentiment score lies between -1 and 1.")
    with transaction.atomic(savepoint=savepoint):
        label = sentiment_label_for(score)
        # One INSERT .. ON CONFLICT: a retried turn replaces the score (update_or_create took four queries).
        (record,) = SentimentRecord.objects.bulk_create(
            [SentimentRecord(message=message, score=score, label=label)],
            update_conflicts=True,
            unique_fields=["message"],
            update_fields=["score", "label"],
        )
        if message.role == MessageRole.CUSTOMER and conversation is not None:
            conversation.sentiment_score, conversation.sentiment_label = score, label
        elif message.role == MessageRole.CUSTOMER:
            Conversation.objects.filter(pk=message.conversation_id).update(sentiment_score=score, sentiment_label=label)
        return record


CORRECTED_LABELS = ("negative", "neutral", "positive")


@transaction.atomic
def message_sentiment_correct(*, record: SentimentRecord, label: str, actor: Any) -> SentimentRecord:
    """A staff member's word on a customer message's mood (blank: no correction). Corrected
    messages train the organization's own sentiment model (``train_sentiment --org``)."""
    from tenancy.audit import audit_record

    if label and label not in CORRECTED_LABELS:
        raise DomainError(f"A corrected sentiment is negative, neutral or positive, not {label!r}.")
    locked = SentimentRecord.objects.select_for_update().select_related("message__conversation").get(pk=record.pk)
    if locked.message.role != MessageRole.CUSTOMER:
        raise DomainError("Only a customer's message has a mood to correct.")
    previous = locked.corrected_label
    locked.corrected_label, locked.corrected_by = label, actor if label else None
    locked.save(update_fields=["corrected_label", "corrected_by"])
    audit_record(
        organization_id=locked.message.conversation.organization_id,
        action="sentiment.corrected",
        actor=actor,
        object_type="message",
        object_id=locked.message_id,
        data={"score": locked.score, "label": locked.label, "corrected": label, "previous": previous},
    )
    return locked
