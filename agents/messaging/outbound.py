"""Replies in a messaging conversation (the assistant's and agents') go back through the account
the customer last wrote through, by a Celery task (agents.tasks.messaging_send) over a
MessagingRecord row.

Exactly once in effect: the row is locked while its parts go to the provider and each part's
success is recorded, so two workers never both send it, a retry after success sends nothing, and
a retry after a failure in the middle of a long reply resumes at the part that failed. Limits:
a text longer than the provider takes is split at paragraphs or words; a per-account rate holds
a burst back (the task tries again later); WhatsApp refuses free text 24 hours after the
customer last wrote (WeChat 48), which is said to the agent as a note on the ticket, not left to
fail. An agent's files go with the reply's last part (uploaded, or as signed links where the
provider fetches a URL).

WeChat first: its webhook waits a few seconds to carry the reply in its own answer (a passive
reply, ``messaging_passive_claim``), so the task sending a WeChat reply starts only once that
wait is over; whichever takes the row first sends it, once."""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.messaging.adapters import Outgoing, OutgoingFile, SendFailed, adapter_for, text_split
from agents.messaging.models import ChannelIdentity, DeliveryStatus, Direction, MessagingAccount, MessagingRecord

logger = logging.getLogger(__name__)

WINDOW_CLOSED = (
    "Not sent: {provider} takes free-form replies for {hours} hours after the customer last wrote, and they "
    "last wrote {ago} ago. Ask the customer to write again, or reach them through another channel{template}."
)
TEMPLATE_HINT = {"whatsapp": " (WhatsApp still takes an approved template, sent from WhatsApp Manager)"}

# Set by channel_inject: each part is handed to this printer instead of the provider.
_printer: ContextVar[Callable[[MessagingAccount, Outgoing], None] | None] = ContextVar("printer", default=None)


@contextmanager
def printed_instead(printer: Callable[[MessagingAccount, Outgoing], None]) -> Iterator[None]:
    token = _printer.set(printer)
    try:
        yield
    finally:
        _printer.reset(token)


def _logged(account: MessagingAccount, outgoing: Outgoing) -> None:
    logger.info(
        "try-out %s account %s would send to %s: %s%s",
        account.provider,
        account.pk,
        outgoing.to,
        outgoing.text,
        "".join(f" [file {file.name}]" for file in outgoing.files),
    )


def printing() -> bool:
    """Inside ``printed_instead``: channel_inject runs the turn here and prints the replies."""
    return _printer.get() is not None


class MessagingSendDeferred(Exception):
    """The provider could not take the message this time, or the account's rate is spent; the
    task tries again later."""


def _thread_head(conversation_id: int) -> MessagingRecord | None:
    return (
        MessagingRecord.objects.filter(conversation_id=conversation_id, direction=Direction.INBOUND)
        .select_related("account")
        .order_by("-created_at")
        .first()
    )


def messaging_reply_queue(*, message: Any) -> MessagingRecord | None:
    """Queue a bot or agent message for delivery through the account the customer last wrote
    through; None when no message came through one. Idempotent per message."""
    head = _thread_head(message.conversation_id)
    if head is None:
        return None
    record, created = MessagingRecord.objects.get_or_create(
        message=message,
        defaults={
            "account": head.account,
            "conversation_id": message.conversation_id,
            "direction": Direction.OUTBOUND,
            "status": DeliveryStatus.QUEUED,
        },
    )
    if created:
        record_id = record.pk
        if _printer.get() is not None:
            transaction.on_commit(lambda: messaging_record_send(record_id=record_id))
        else:
            from agents.tasks import messaging_send

            # WeChat's webhook may still be waiting to carry this reply passively: after it.
            wait = 0.0
            if head.account.provider == "wechat":
                waited = (timezone.now() - head.created_at).total_seconds()
                wait = max(0.0, settings.CONCIERGE_WECHAT_PASSIVE_SECONDS + 0.5 - waited)
            transaction.on_commit(lambda: messaging_send.apply_async((record_id,), countdown=wait or None))
    return record


def messaging_passive_claim(*, message_ids: list[int], max_chars: int, wait_seconds: float) -> str | None:
    """For a webhook that can carry the reply in its answer (WeChat): wait up to
    ``wait_seconds`` for the assistant's reply to any of these customer messages, and take it
    when it is still queued and fits one provider message (no files): it is marked sent and its
    text returned. None: nothing to carry, the sending task delivers it."""
    from agents.services import assistant_reply_for
    from monitoring.metrics import channel_message_count
    from tickets.models import Message

    deadline = time.monotonic() + wait_seconds
    while True:
        for message in Message.objects.filter(pk__in=message_ids):
            reply = assistant_reply_for(message)
            if reply is None:
                continue
            with transaction.atomic():
                record = (
                    MessagingRecord.objects.select_for_update(skip_locked=True, of=("self",))
                    .filter(message=reply, direction=Direction.OUTBOUND, status=DeliveryStatus.QUEUED)
                    .select_related("message__conversation")
                    .first()
                )
                if record is None:
                    return None  # sent already, or being sent by the task now
                text, _ = _text(reply, structured_sources=False)
                if len(text) > max_chars or reply.attachments.exists():
                    return None
                record.status, record.parts, record.attempts = DeliveryStatus.SENT, 1, record.attempts + 1
                record.provider_message_id = f"passive-{record.pk}"
                record.save(update_fields=["status", "parts", "attempts", "provider_message_id", "updated_at"])
                channel = reply.conversation.channel
                transaction.on_commit(partial(channel_message_count, channel, "outbound"))
                return text
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def _text(message: Any, structured_sources: bool) -> tuple[str, list[dict[str, Any]]]:
    sources = [
        {"title": s.get("title", ""), "url": s.get("url", "")}
        for s in (message.metadata or {}).get("sources", [])
        if s.get("url") or s.get("title")
    ]
    text = message.text
    if sources and not structured_sources:
        text += "\n\n" + "\n".join(f"[{i}] {s['title']} {s['url']}".strip() for i, s in enumerate(sources, 1))
    return text, sources


def _window_closed(account: MessagingAccount, head: MessagingRecord | None) -> str:
    window = adapter_for(account.provider).reply_window
    if window is None or head is None:
        return ""
    ago = timezone.now() - head.created_at
    if ago <= window:
        return ""
    return WINDOW_CLOSED.format(
        provider=account.get_provider_display(),
        hours=int(window.total_seconds() // 3600),
        ago=f"{int(ago.total_seconds() // 3600)} h",
        template=TEMPLATE_HINT.get(account.provider, ""),
    )


def _files(message: Any) -> tuple[OutgoingFile, ...]:
    from tickets.attachments import attachment_link

    base = settings.CONCIERGE_PUBLIC_URL.rstrip("/")
    files = []
    for attachment in message.attachments.all():
        with attachment.file.open("rb") as handle:
            content = handle.read()
        files.append(
            OutgoingFile(attachment.name, attachment.content_type, content, base + attachment_link(attachment))
        )
    return tuple(files)


def _tell_the_agent(record: MessagingRecord, reason: str) -> None:
    from tickets import services as desk
    from tickets.selectors import conversation_open_ticket

    message: Any = record.message
    if message is None or message.role != "agent":
        return
    ticket = conversation_open_ticket(conversation_id=message.conversation_id)
    if ticket is not None:
        desk.ticket_note_add(ticket=ticket, author=None, body=f"Reply #{message.seq} was not delivered. {reason}")


def _fail(record: MessagingRecord, reason: str) -> str:
    from monitoring.metrics import channel_message_count

    record.status, record.reason = DeliveryStatus.FAILED, reason[:300]
    record.save(update_fields=["status", "reason", "attempts", "parts", "provider_message_id", "recipient"])
    _tell_the_agent(record, reason)
    channel = record.message.conversation.channel if record.message else ""
    transaction.on_commit(partial(channel_message_count, channel, "failed"))
    return record.status


def messaging_record_send(*, record_id: int) -> str:
    """Send one queued reply; returns its status (see the module docstring)."""
    from monitoring.metrics import channel_message_count
    from tickets.limits import limits_hit

    deferred = ""
    with transaction.atomic():
        record = (
            MessagingRecord.objects.select_for_update(of=("self",))
            .select_related("account__organization", "message__conversation__customer", "message__author")
            .get(pk=record_id)
        )
        if record.status != DeliveryStatus.QUEUED:
            return record.status
        account, message = record.account, record.message
        assert message is not None  # outbound records are made for a message
        # The address the customer last wrote from; else (a merged customer, a cleared record)
        # their newest identity on this provider.
        head = _thread_head(message.conversation_id)
        address = head.recipient if head is not None and head.account_id == account.pk else ""
        if not address:
            identity = (
                ChannelIdentity.objects.filter(customer=message.conversation.customer, provider=account.provider)
                .order_by("-created_at")
                .first()
            )
            address = identity.address if identity is not None else ""
        if not account.active:
            return _fail(record, f"the {account} account is switched off")
        if not address:
            return _fail(record, f"the customer has no {account.get_provider_display()} address")
        closed = _window_closed(account, head)
        if closed:
            return _fail(record, closed)
        rate = settings.CONCIERGE_RATE_LIMITS["messaging_send"]
        if (
            _printer.get() is None
            and not account.try_out
            and not limits_hit([("messaging_send", str(account.pk), rate)]).allowed
        ):
            raise MessagingSendDeferred(f"more than {rate} messages through {account}")
        adapter = adapter_for(account.provider)
        text, sources = _text(message, structured_sources=account.provider == "api")
        files = _files(message)
        if not text.strip() and files:
            text = "\U0001f4ce " + ", ".join(file.name for file in files)
        parts = text_split(text, adapter.max_chars)
        author = ""
        if message.role == "agent" and message.author is not None:
            author = message.author.first_name or message.author.get_username()
        record.attempts += 1
        record.recipient = address
        printer = _printer.get() or (_logged if account.try_out else None)
        for index in range(record.parts, len(parts)):
            last = index == len(parts) - 1
            outgoing = Outgoing(
                record.pk,
                index,
                address,
                parts[index],
                sources if index == 0 else [],
                author,
                files if last else (),
            )
            try:
                if printer is not None:
                    printer(account, outgoing)
                    sent_id = f"printed-{record.pk}-{index}"
                else:
                    sent_id = adapter.send(account, outgoing)
            except SendFailed as exc:
                if not exc.retry or record.attempts >= settings.CONCIERGE_MESSAGING_SEND_ATTEMPTS:
                    return _fail(record, exc.reason)
                record.reason = exc.reason[:300]
                deferred = exc.reason
                break
            record.provider_message_id, record.parts = sent_id[:200], index + 1
        else:
            record.status, record.reason = DeliveryStatus.SENT, ""
            channel = message.conversation.channel
            transaction.on_commit(partial(channel_message_count, channel, "outbound"))
        record.save()
    if deferred:
        raise MessagingSendDeferred(deferred)
    logger.info("messaging record %s: %s", record.pk, record.status)
    return record.status
