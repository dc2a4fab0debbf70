"""Customer satisfaction: asking once per ticket (in the open chat, else by a signed email link),
validating a rating by one rule, and recording it on the ticket or on a chat the assistant
handled alone."""

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from tenancy.models import Organization
from tickets.models import Conversation, Customer, Ticket, TicketEvent
from tickets.rules import ACTIVE_STATUSES
from tickets.services.events import S, ticket_event_record, ticket_lock
from tickets.transport import (
    chat_is_online,
    conversation_group_name,
    group_send,
)

logger = logging.getLogger(__name__)


def csat_request_on_commit(ticket: Ticket) -> None:
    """After a resolution commits, ask the customer for a rating: in the widget when their
    chat is open, else by email (queued)."""
    ticket_id = ticket.pk
    transaction.on_commit(lambda: ticket_csat_request(ticket_id=ticket_id))


def ticket_csat_request(*, ticket_id: int) -> str:
    """Ask for a rating once: returns "widget", "email" (queued), or "" when not asked."""
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None or ticket.csat_score is not None or ticket.csat_requested_at is not None:
        return ""
    if ticket.conversation_id and chat_is_online(conversation_id=ticket.conversation_id):
        event = {"type": "chat.csat_request", "ticket_id": ticket_id}
        if group_send(conversation_group_name(ticket.conversation_id), event):
            _csat_requested(ticket_id, channel="widget")
            return "widget"
        # not delivered to the widget: ask by email below
    from tickets.tasks import csat_email

    try:
        csat_email.delay(ticket_id)
    except Exception:  # no broker: the rating is not asked for, nothing else is affected
        logger.warning("could not queue the CSAT email for ticket %s", ticket_id, exc_info=True)
        return ""
    return "email"


@transaction.atomic
def _csat_requested(ticket_id: int, *, channel: str) -> None:
    ticket = Ticket.objects.select_for_update().get(pk=ticket_id)
    ticket.csat_requested_at = timezone.now()
    ticket.csat_request_channel = channel
    ticket.save(update_fields=["csat_requested_at", "csat_request_channel", "updated_at"])
    ticket_event_record(ticket, None, TicketEvent.Kind.CSAT, message=f"Rating requested by {channel}")


CSAT_TOKEN_SALT = "concierge.csat"  # noqa: S105 (a signing namespace, not a secret)

CSAT_LINK_MAX_AGE = 30 * 24 * 3600


def csat_link_token(*, ticket_id: int) -> str:
    from django.core import signing

    return signing.dumps({"t": ticket_id}, salt=CSAT_TOKEN_SALT, compress=True)


def csat_link_read(token: str) -> Ticket:
    """The ticket a survey link is for; DomainError when it is forged, expired or gone."""
    from django.core import signing

    try:
        ticket_id = signing.loads(token, salt=CSAT_TOKEN_SALT, max_age=CSAT_LINK_MAX_AGE)["t"]
    except (signing.BadSignature, KeyError, TypeError) as exc:
        raise DomainError("This survey link is invalid or has expired.") from exc
    ticket = Ticket.objects.select_related("customer", "organization").filter(pk=ticket_id).first()
    if ticket is None:
        raise DomainError("This ticket no longer exists.")
    return ticket


@transaction.atomic
def ticket_csat_email(*, ticket: Ticket) -> bool:
    """Email the customer a link to rate a resolved ticket. Once per ticket; skipped when it
    is already rated or there is no address. Returns whether an email went out."""
    from django.core.mail import send_mail

    ticket = ticket_lock(ticket)
    if ticket.csat_score is not None or ticket.csat_requested_at is not None:
        return False
    if ticket.status not in (S.RESOLVED, S.CLOSED):
        return False
    customer = Customer.objects.get(pk=ticket.customer_id)
    if not customer.email:
        ticket_event_record(ticket, None, TicketEvent.Kind.CSAT, message="No email address to ask for a rating")
        return False
    link = f"{settings.CONCIERGE_PUBLIC_URL.rstrip('/')}/csat/{csat_link_token(ticket_id=ticket.pk)}/"
    organization = Organization.objects.get(pk=ticket.organization_id)
    send_mail(
        subject=f"How did we do? {organization.name} ticket #{ticket.pk}",
        message=(
            f"Hello {customer.name or 'there'},\n\n"
            f'Your request "{ticket.subject}" was resolved. Please rate how we handled it '
            f"(1 to 5, one click):\n\n{link}\n\nThank you,\n{organization.name}\n"
        ),
        from_email=None,
        recipient_list=[customer.email],
    )
    ticket.csat_requested_at = timezone.now()
    ticket.csat_request_channel = "email"
    ticket.save(update_fields=["csat_requested_at", "csat_request_channel", "updated_at"])
    ticket_event_record(ticket, None, TicketEvent.Kind.CSAT, message="Rating requested by email")
    return True


def csat_validate(score: Any, comment: Any = "") -> tuple[int, str]:
    """The one rule for a satisfaction rating, wherever it comes from (widget, email link, API):
    a whole number from 1 to 5 (true and false are not numbers) and an optional text comment."""
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise DomainError("A satisfaction score is a whole number from 1 to 5.")
    if not isinstance(comment, str):
        raise DomainError("A satisfaction comment must be text.")
    return score, comment.strip()[:2000]


@transaction.atomic
def conversation_csat_submit(*, conversation_id: int, score: Any, comment: Any = "") -> None:
    """A rating from the customer's chat: it rates the conversation's latest resolved ticket,
    or the chat itself when the assistant handled it alone."""
    score, comment = csat_validate(score, comment)
    ticket = (
        Ticket.objects.filter(conversation_id=conversation_id, status__in=[S.RESOLVED, S.CLOSED])
        .order_by("-resolved_at")
        .first()
    )
    if ticket is not None:
        ticket_csat_record(ticket=ticket, score=score, comment=comment)
        return
    conversation_csat_record(conversation=Conversation.objects.get(pk=conversation_id), score=score, comment=comment)


@transaction.atomic
def conversation_csat_record(*, conversation: Conversation, score: int, comment: str = "") -> Conversation:
    """The customer's rating of a chat the assistant handled on its own (no ticket)."""
    score, comment = csat_validate(score, comment)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if Ticket.objects.filter(conversation=conversation, status__in=ACTIVE_STATUSES).exists():
        raise DomainError("A person is still working on this conversation; rate it once it is resolved.")
    conversation.csat_score = score
    conversation.csat_comment = comment
    conversation.save(update_fields=["csat_score", "csat_comment"])
    return conversation


@transaction.atomic
def ticket_csat_record(*, ticket: Ticket, score: int, comment: str = "") -> Ticket:
    """The customer's 1-5 rating of a resolved ticket; updates their mean satisfaction."""
    from django.db.models import Avg

    score, comment = csat_validate(score, comment)
    ticket = ticket_lock(ticket)
    if ticket.status not in (S.RESOLVED, S.CLOSED):
        raise DomainError("Only a resolved or closed ticket can be rated.")
    before = ticket.csat_score
    ticket.csat_score = score
    ticket.csat_comment = comment
    ticket.save(update_fields=["csat_score", "csat_comment", "updated_at"])
    mean = Ticket.objects.filter(customer_id=ticket.customer_id, csat_score__isnull=False).aggregate(
        m=Avg("csat_score")
    )
    Customer.objects.filter(pk=ticket.customer_id).update(satisfaction_score=mean["m"])
    ticket_event_record(ticket, None, TicketEvent.Kind.CSAT, field="csat_score", before=before, after=score)
    return ticket
