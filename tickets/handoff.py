"""What a customer waiting for a person is told: their place in the queue, an expected wait
drawn from recent first-response times, and, outside business hours, when the team is back."""

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from tenancy.business_hours import business_calendar
from tenancy.models import StaffProfile
from tickets.models import Conversation, Ticket
from tickets.rules import ACTIVE_STATUSES
from tickets.selectors import conversation_open_ticket

RECENT_DAYS = 14
RECENT_TICKETS = 50


def recent_first_response_seconds(*, organization_id: int, now: datetime) -> float | None:
    """Median wall-clock time to the first answer over the organization's latest
    first-answered tickets (up to 50, last 14 days); None when there are none."""
    rows = (
        Ticket.objects.filter(
            organization_id=organization_id,
            first_responded_at__isnull=False,
            first_responded_at__gte=now - timedelta(days=RECENT_DAYS),
        )
        .order_by("-first_responded_at")
        .values_list("created_at", "first_responded_at")[:RECENT_TICKETS]
    )
    waits = [max(0.0, (answered - opened).total_seconds()) for opened, answered in rows if answered is not None]
    return statistics.median(waits) if waits else None


def handoff_status(*, conversation_id: int, now: datetime | None = None) -> dict[str, Any] | None:
    """The ``queue`` frame for a handed-off chat whose ticket no person has answered yet; None
    otherwise (still with the assistant, answered, or closed)."""
    now = now or timezone.now()
    conversation = Conversation.objects.select_related("organization", "customer").get(pk=conversation_id)
    if conversation.status != Conversation.Status.HANDED_OFF:
        return None
    ticket = conversation_open_ticket(conversation_id=conversation.pk)
    if ticket is None or ticket.first_responded_at is not None:
        return None
    organization = conversation.organization
    ahead = Ticket.objects.filter(
        organization=organization,
        status__in=ACTIVE_STATUSES,
        first_responded_at__isnull=True,
        created_at__lt=ticket.created_at,
    ).count()
    position = ahead + 1
    typical = recent_first_response_seconds(organization_id=organization.pk, now=now)
    available = StaffProfile.objects.filter(organization=organization, is_available=True).count()
    expected = None if typical is None else round(typical * position / max(1, available))
    calendar = business_calendar(organization)
    open_now = calendar.is_open(now)
    return {
        "type": "queue",
        "ticket_id": ticket.pk,
        "position": position,
        "expected_wait_seconds": expected,
        "open": open_now,
        "reopens_at": None if open_now else calendar.next_open(now).isoformat(),
        "email_known": bool(conversation.customer.email),
    }
