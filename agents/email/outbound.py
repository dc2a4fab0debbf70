"""Replies to an email conversation go out as proper mail: From the organization's support
address (Reply-To the same), a Message-ID of our own fixed before the first attempt, In-Reply-To
and References continuing the customer's thread, ``[#ticket]`` in the subject, text and HTML
alternatives, the message's files attached.

Sending is a Celery task (agents.tasks.email_send) over an EmailRecord row: the row is locked
while its mail is handed to the SMTP server and marked sent in the same transaction, so two
workers never both send it and a retry after success sends nothing. A worker that dies after
the server took the mail but before the commit sends it again under the same Message-ID, which
mail clients show once."""

import logging
from email.utils import formataddr, make_msgid
from typing import Any

import nh3
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.utils import timezone
from markdown_it import MarkdownIt

from agents.email.parsing import address_domain
from agents.models import EmailChannel, EmailDirection, EmailRecord, EmailStatus

logger = logging.getLogger(__name__)

REFERENCES_KEPT = 20  # the newest ids of a long thread; enough for every client to thread it
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


def _thread_head(conversation_id: int) -> EmailRecord | None:
    """The newest email the customer sent in this conversation: the reply answers it."""
    return (
        EmailRecord.objects.filter(conversation_id=conversation_id, direction=EmailDirection.INBOUND)
        .exclude(status=EmailStatus.IGNORED)
        .order_by("-created_at")
        .first()
    )


def email_reply_queue(*, message: Any) -> EmailRecord | None:
    """Queue a bot or agent message of an email conversation for sending; the record (and so
    the Message-ID) exists before the first attempt. None when the organization has no email
    channel. Idempotent per message."""
    channel = EmailChannel.objects.filter(organization_id=message.conversation.organization_id).first()
    if channel is None:
        return None
    record, created = EmailRecord.objects.get_or_create(
        message=message,
        defaults={
            "organization_id": message.conversation.organization_id,
            "conversation_id": message.conversation_id,
            "direction": EmailDirection.OUTBOUND,
            "mail_id": make_msgid(domain=address_domain(channel.address)),
            "status": EmailStatus.QUEUED,
            "sender": channel.address,
        },
    )
    if created:
        from agents.tasks import email_send

        record_id = record.pk
        transaction.on_commit(lambda: email_send.delay(record_id))
    return record


def _subject(head: EmailRecord | None, conversation: Any) -> str:
    from agents.email.parsing import InboundEmail
    from tickets.selectors import conversation_open_ticket

    topic = ""
    if head is not None:
        topic = InboundEmail("", [], [], head.subject, "", "", [], "", "", "").topic
    topic = topic or f"Your conversation with {conversation.organization.name}"
    ticket = conversation_open_ticket(conversation_id=conversation.pk)
    if ticket is None:
        ticket = conversation.tickets.order_by("-created_at").first()
    reference = f" [#{ticket.pk}]" if ticket is not None else ""
    return f"Re: {topic}{reference}"


def _body(message: Any) -> tuple[str, str]:
    text = message.text
    sources = [s for s in (message.metadata or {}).get("sources", []) if s.get("url") or s.get("title")]
    if sources:
        text += "\n\nSources:\n" + "\n".join(
            f"- {s.get('title', '')}: {s.get('url', '')}".rstrip(": ") for s in sources
        )
    html = nh3.clean(_markdown.render(text), url_schemes={"http", "https", "mailto"})
    return text, f'<!doctype html><html><body style="font-family:sans-serif">{html}</body></html>'


def email_mail_build(record: EmailRecord) -> EmailMultiAlternatives:
    message: Any = record.message
    conversation = message.conversation
    channel = EmailChannel.objects.get(organization_id=conversation.organization_id)
    customer = conversation.customer
    head = _thread_head(conversation.pk)
    references = (head.references.split() if head and head.references else [])[-(REFERENCES_KEPT - 1) :]
    if head is not None:
        references.append(head.mail_id)
    headers = {"Message-ID": record.mail_id, "Reply-To": channel.address}
    if head is not None:
        headers["In-Reply-To"] = head.mail_id
        headers["References"] = " ".join(references)
    if message.role == "bot":
        headers["Auto-Submitted"] = "auto-replied"  # RFC 3834: other robots must not answer it
    text, html = _body(message)
    name = channel.display_name or conversation.organization.name
    if message.role == "agent" and message.author is not None and message.author.first_name:
        name = f"{message.author.first_name} ({name})"
    mail = EmailMultiAlternatives(
        subject=_subject(head, conversation),
        body=text,
        from_email=formataddr((name, channel.address)),
        to=[formataddr((customer.name, customer.email)) if customer.name else customer.email],
        headers=headers,
    )
    mail.attach_alternative(html, "text/html")
    for attachment in message.attachments.all():
        with attachment.file.open("rb") as handle:
            mail.attach(attachment.name, handle.read(), attachment.content_type)
    return mail


def email_record_send(*, record_id: int) -> str:
    """Send one queued email; returns its status. Safe to run again: a sent record is left as
    it is. When the SMTP server cannot take it, the attempt and the reason are recorded and
    EmailSendDeferred is raised (the task tries again later), until the last attempt marks it
    failed."""
    deferred = ""
    with transaction.atomic():
        record = (
            EmailRecord.objects.select_for_update(of=("self",))
            .select_related("message__conversation__customer", "message__conversation__organization", "message__author")
            .get(pk=record_id)
        )
        if record.status in (EmailStatus.SENT, EmailStatus.FAILED):
            return record.status
        message: Any = record.message
        customer = message.conversation.customer
        if not customer.email:
            return _failed(record, "the customer has no email address")
        if customer.email_bounced_at is not None:
            return _failed(record, f"the address bounced on {customer.email_bounced_at:%Y-%m-%d}")
        mail = email_mail_build(record)
        record.attempts += 1
        record.recipient = customer.email
        try:
            get_connection(fail_silently=False).send_messages([mail])
        except Exception as exc:  # whatever the backend raises: refused, unreachable, timed out
            record.reason = f"{type(exc).__name__}: {exc}"[:300]
            if record.attempts >= settings.CONCIERGE_EMAIL_SEND_ATTEMPTS:
                record.status = EmailStatus.FAILED
            else:
                deferred = record.reason
            record.save(update_fields=["attempts", "recipient", "reason", "status"])
        else:
            record.status, record.sent_at, record.reason = EmailStatus.SENT, timezone.now(), ""
            record.subject = str(mail.subject)[:255]
            record.in_reply_to = mail.extra_headers.get("In-Reply-To", "")[:255]
            record.references = mail.extra_headers.get("References", "")
            record.save()
    if deferred:
        raise EmailSendDeferred(deferred)
    logger.info("email %s: %s", record.mail_id, record.status)
    return record.status


class EmailSendDeferred(Exception):
    """The SMTP server could not take the mail this time; the task tries again later."""


def _failed(record: EmailRecord, reason: str) -> str:
    record.status, record.reason = EmailStatus.FAILED, reason[:300]
    record.save(update_fields=["status", "reason"])
    return record.status
