"""Thin Celery tasks of the assistant's channels: they take ids and call a service."""

from celery import shared_task
from django.db import OperationalError

from agents.email.outbound import EmailSendDeferred
from agents.messaging.outbound import MessagingSendDeferred


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=60, time_limit=90)
def email_assistant_turn(message_id: int) -> str:
    from agents.email.inbound import email_assistant_answer

    return email_assistant_answer(message_id=message_id)


@shared_task(
    autoretry_for=(OperationalError, EmailSendDeferred),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=10,
    soft_time_limit=60,
    time_limit=90,
)
def email_send(record_id: int) -> str:
    from agents.email.outbound import email_record_send

    return email_record_send(record_id=record_id)


@shared_task(soft_time_limit=50, time_limit=55)
def email_mailboxes_poll() -> int:
    """The beat's minute: one poll task per enabled mailbox."""
    from agents.email.mailbox import email_mailboxes_due

    due = email_mailboxes_due()
    for mailbox_id in due:
        email_mailbox_poll.delay(mailbox_id)
    return len(due)


@shared_task(soft_time_limit=240, time_limit=270)
def email_mailbox_poll(mailbox_id: int) -> dict[str, object]:
    from agents.email.mailbox import email_mailbox_poll as poll
    from agents.models import EmailMailbox

    mailbox = EmailMailbox.objects.select_related("channel__organization").filter(pk=mailbox_id, enabled=True).first()
    if mailbox is None:
        return {"skipped": True}
    return poll(mailbox=mailbox).__dict__


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=60, time_limit=90)
def messaging_turn(message_id: int, answers: bool, command: str = "") -> str:
    from agents.messaging.turn import messaging_answer

    return messaging_answer(message_id=message_id, answers=answers, command=command)


@shared_task(
    autoretry_for=(OperationalError, MessagingSendDeferred),
    retry_backoff=5,
    retry_backoff_max=900,
    max_retries=10,
    soft_time_limit=60,
    time_limit=90,
)
def messaging_send(record_id: int) -> str:
    from agents.messaging.outbound import messaging_record_send

    return messaging_record_send(record_id=record_id)
