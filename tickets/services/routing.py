"""Escalation and routing: the assistant hands a conversation to people (a ticket with a priority
from intent, sentiment and VIP tier), tickets go to the available agent with the most room, and
staff answer a conversation through its open ticket."""

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from tenancy.models import Organization, StaffProfile
from tickets.models import Conversation, Message, MessageRole, Priority, Ticket, TicketEvent, VipTier
from tickets.rules import (
    ACTIVE_STATUSES,
    HIGH_VALUE_VIP_TIERS,
    PRIORITY_RANK,
    VERY_NEGATIVE_SENTIMENT,
    priority_raised,
)
from tickets.selectors import conversation_open_ticket
from tickets.services.conversations import message_create
from tickets.services.events import ticket_event_record, ticket_lock
from tickets.services.tickets import ticket_assign, ticket_create, ticket_reply, ticket_update

logger = logging.getLogger(__name__)


ESCALATION_BASE_PRIORITY = {"complaint": Priority.HIGH, "human_request": Priority.MEDIUM}


def escalation_priority(*, intent: str, sentiment: float | None, vip_tier: str) -> str:
    """Priority of a ticket opened by the agent: from the intent, raised one step for a very
    negative customer and one for a gold or platinum VIP."""
    steps = int(sentiment is not None and sentiment <= VERY_NEGATIVE_SENTIMENT) + int(vip_tier in HIGH_VALUE_VIP_TIERS)
    return priority_raised(ESCALATION_BASE_PRIORITY.get(intent, Priority.MEDIUM), steps)


@transaction.atomic
def conversation_escalate(
    *, conversation: Conversation, reason: str, intent: str = "", sentiment: float | None = None
) -> Ticket:
    """Hand the conversation to people: open a ticket (or raise the priority of the open one),
    mark the conversation handed off, and record why."""
    conversation = Conversation.objects.select_for_update().select_related("customer").get(pk=conversation.pk)
    customer = conversation.customer
    priority = escalation_priority(intent=intent, sentiment=sentiment, vip_tier=customer.vip_tier)
    ticket = conversation_open_ticket(conversation_id=conversation.pk)
    if ticket is None:
        first = conversation.messages.filter(role=MessageRole.CUSTOMER).order_by("seq").first()
        subject = (first.text if first else f"Chat with {customer}").splitlines()[0][:120]
        ticket = ticket_create(
            organization=conversation.organization,
            customer=customer,
            subject=subject,
            priority=priority,
            channel=conversation.channel,
            conversation=conversation,
            tags=["bot-escalation", intent] if intent else ["bot-escalation"],
        )
    elif PRIORITY_RANK[priority] > PRIORITY_RANK[ticket.priority]:
        ticket = ticket_update(ticket=ticket, priority=priority)
    ticket_event_record(ticket, None, TicketEvent.Kind.NOTE, message=f"Escalated by the assistant: {reason}")
    if conversation.status == Conversation.Status.OPEN:
        conversation.status = Conversation.Status.HANDED_OFF
        conversation.save(update_fields=["status"])
    ticket_id = ticket.pk
    transaction.on_commit(lambda: _queue_escalation(ticket_id))
    return ticket


def _queue_escalation(ticket_id: int) -> None:
    from tickets.tasks import ticket_escalated

    try:
        ticket_escalated.delay(ticket_id)
    except Exception:  # no broker: the ticket is stored and `route_backlog` assigns it later
        logger.warning("could not queue routing of ticket %s", ticket_id, exc_info=True)


VIP_RANK: dict[str, int] = {VipTier.NONE: 0, VipTier.SILVER: 1, VipTier.GOLD: 2, VipTier.PLATINUM: 3}


def _route_pick(ticket: Ticket, *, exclude_user_id: int | None = None) -> StaffProfile | None:
    """Lock the organization's available staff (in id order, so concurrent routers queue up)
    and pick the one with the fewest active tickets under capacity, least recently assigned
    first. Call inside a transaction, before locking the ticket."""
    staff = list(
        StaffProfile.objects.select_for_update()
        .filter(organization_id=ticket.organization_id, is_available=True)
        .select_related("user")
        .order_by("pk")
    )
    load = {
        row["assignee"]: row["n"]
        for row in Ticket.objects.filter(
            organization_id=ticket.organization_id, status__in=ACTIVE_STATUSES, assignee__isnull=False
        )
        .values("assignee")
        .annotate(n=Count("id"))
    }
    candidates = [
        p for p in staff if p.user.is_active and p.user_id != exclude_user_id and load.get(p.user_id, 0) < p.capacity
    ]
    if not candidates:
        return None
    epoch = timezone.now() - timedelta(days=36500)
    chosen = min(candidates, key=lambda p: (load.get(p.user_id, 0), p.last_assigned_at or epoch, p.pk))
    chosen.last_assigned_at = timezone.now()
    chosen.save(update_fields=["last_assigned_at"])
    return chosen


@transaction.atomic
def ticket_route(*, ticket: Ticket) -> Any:
    """Assign an unassigned active ticket to the available staff member with the fewest open
    tickets under their capacity, the least recently assigned first (round-robin).

    Safe under concurrency: the organization's staff rows are locked in id order, so two
    workers route one after the other and capacity is never overrun. Harmless to repeat:
    an assigned ticket is left as it is. Returns the assignee, or None."""
    current = Ticket.objects.only("assignee_id", "status").get(pk=ticket.pk)
    if current.assignee_id is not None or current.status not in ACTIVE_STATUSES:
        return current.assignee
    chosen = _route_pick(ticket)
    ticket = ticket_lock(ticket)
    if ticket.assignee_id is not None or ticket.status not in ACTIVE_STATUSES:
        return ticket.assignee
    if chosen is None:
        ticket_event_record(
            ticket, None, TicketEvent.Kind.ASSIGNED, message="No available agent has capacity; left in the queue"
        )
        return None
    return ticket_assign(ticket=ticket, assignee=chosen.user).assignee


@transaction.atomic
def ticket_reassign_after_breach(*, ticket: Ticket) -> Any:
    """Give a breached ticket to another available agent with room (the breach policy
    'reassign'). Keeps the current assignee when nobody else can take it. Returns the
    assignee after the attempt."""
    chosen = _route_pick(ticket, exclude_user_id=ticket.assignee_id)
    ticket = ticket_lock(ticket)
    if ticket.status not in ACTIVE_STATUSES:
        return ticket.assignee
    if chosen is None:
        ticket_event_record(
            ticket, None, TicketEvent.Kind.ASSIGNED, message="SLA breached; nobody else has room to take it"
        )
        return ticket.assignee
    reason = f"SLA breached; reassigned from {ticket.assignee} to {chosen.user}"
    return ticket_assign(ticket=ticket, assignee=chosen.user, reason=reason).assignee


def tickets_route_backlog(*, organization: Organization) -> int:
    """Route every unassigned active ticket: urgent and VIP first, then oldest. Returns how many."""
    waiting = list(
        Ticket.objects.filter(organization=organization, assignee__isnull=True, status__in=ACTIVE_STATUSES)
        .select_related("customer")
        .order_by("created_at")
    )
    waiting.sort(key=lambda t: (-PRIORITY_RANK[t.priority], -VIP_RANK.get(t.customer.vip_tier, 0), t.created_at))
    return sum(1 for ticket in waiting if ticket_route(ticket=ticket) is not None)


@transaction.atomic
def ticket_escalation_notify(*, ticket: Ticket) -> int:
    """Email the assignee (or, when nobody could take it, every available staff member) about a
    ticket the assistant escalated, once: a redelivered task finds it sent and does nothing.
    Returns the number of recipients (0 when already notified)."""
    from django.core.mail import send_mail

    # The row lock makes two deliveries of the same task take turns; the second sees it sent.
    ticket = Ticket.objects.select_for_update(of=("self",)).select_related("assignee", "customer").get(pk=ticket.pk)
    if ticket.escalation_notified_at is not None:
        return 0
    if ticket.assignee is not None:
        recipients = [ticket.assignee.email]
    else:
        recipients = list(
            StaffProfile.objects.filter(organization_id=ticket.organization_id, is_available=True).values_list(
                "user__email", flat=True
            )
        )
    recipients = [address for address in recipients if address]
    if recipients:
        send_mail(
            subject=f"[{ticket.get_priority_display()}] Ticket #{ticket.pk}: {ticket.subject}",
            message=(
                f"The assistant handed a conversation with {ticket.customer} to the team.\n"
                f"Priority: {ticket.get_priority_display()}. "
                f"First response due {ticket.first_response_due:%Y-%m-%d %H:%M %Z}.\n"
            ),
            from_email=None,
            recipient_list=recipients,
        )
    ticket.escalation_notified_at = timezone.now()
    ticket.save(update_fields=["escalation_notified_at", "updated_at"])
    return len(recipients)


@transaction.atomic
def conversation_reply(
    *, conversation: Conversation, author: Any, text: str, client_message_id: str = "", attachment: Any = None
) -> Message:
    """A person answers in a conversation: through its open ticket when there is one (so the
    first-response clock and the audit trail see it), else as a plain agent message. Every
    entry point that lets staff answer a customer calls this."""
    ticket = conversation_open_ticket(conversation_id=conversation.pk)
    if ticket is not None:
        return ticket_reply(
            ticket=ticket, author=author, text=text, client_message_id=client_message_id, attachment=attachment
        )
    message, _ = message_create(
        conversation=conversation,
        role=MessageRole.AGENT,
        text=text,
        author=author,
        client_message_id=client_message_id,
        attachment=attachment,
    )
    return message
