"""The SLA pass (beat, every minute, and `manage.py sla_check`): records tickets that became at
risk, breached, or ok again, and applies the organization's breach action."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tenancy.models import BreachAction
from tickets.models import Priority, Ticket, TicketEvent
from tickets.rules import (
    ACTIVE_STATUSES,
    priority_raised,
)
from tickets.selectors import SlaState, ticket_sla_state
from tickets.services.events import ticket_event_record
from tickets.services.routing import ticket_reassign_after_breach


@dataclass(frozen=True)
class SlaChange:
    ticket_id: int
    before: str
    after: str
    priority_raised_to: str = ""
    reassigned_to: str = ""


def sla_check(*, now: datetime | None = None) -> list[SlaChange]:
    """Record SLA states that changed since the last pass: at risk, breached, or back to ok
    (after a first reply, say). A newly breached ticket goes up one priority step, is given to
    another agent, or both, as its organization's breach policy says. Running it again
    without time passing changes nothing."""
    now = now or timezone.now()
    changes = []
    candidates = Ticket.objects.filter(status__in=ACTIVE_STATUSES).values_list("pk", flat=True)
    for ticket_id in candidates:
        change = _sla_check_one(ticket_id, now)
        if change is None:
            continue
        if change.after == SlaState.BREACHED:
            change = _sla_breach_reassign(change)
        changes.append(change)
    return changes


@transaction.atomic
def _sla_check_one(ticket_id: int, now: datetime) -> SlaChange | None:
    ticket = Ticket.objects.select_for_update(of=("self",)).select_related("customer", "organization").get(pk=ticket_id)
    state = ticket_sla_state(ticket, now)
    # A paused (pending) clock keeps whatever was recorded before the pause.
    recorded = state if state in (SlaState.OK, SlaState.AT_RISK, SlaState.BREACHED) else ticket.sla_status
    if recorded == ticket.sla_status:
        return None
    before = ticket.sla_status
    ticket.sla_status = recorded
    ticket.save(update_fields=["sla_status", "updated_at"])
    ticket_event_record(ticket, None, TicketEvent.Kind.SLA, field="sla_status", before=before, after=recorded)
    raised = ""
    action = ticket.organization.sla_breach_action
    raises = action in (BreachAction.RAISE_PRIORITY, BreachAction.RAISE_AND_REASSIGN)
    if recorded == SlaState.BREACHED and raises and ticket.priority != Priority.URGENT:
        raised = priority_raised(ticket.priority, 1)
        # The clock keeps its original targets: a breach raises urgency, not the deadline.
        Ticket.objects.filter(pk=ticket.pk).update(priority=raised)
        ticket_event_record(
            ticket, None, TicketEvent.Kind.PRIORITY, field="priority", before=ticket.priority, after=raised,
            message="SLA breached",
        )  # fmt: skip
    return SlaChange(ticket_id=ticket.pk, before=before, after=recorded, priority_raised_to=raised)


def _sla_breach_reassign(change: SlaChange) -> SlaChange:
    ticket = Ticket.objects.select_related("organization").get(pk=change.ticket_id)
    reassigns = ticket.organization.sla_breach_action in (BreachAction.REASSIGN, BreachAction.RAISE_AND_REASSIGN)
    if not reassigns or ticket.assignee_id is None:
        return change
    before = ticket.assignee_id
    assignee = ticket_reassign_after_breach(ticket=ticket)
    if assignee is None or assignee.pk == before:
        return change
    return SlaChange(
        ticket_id=change.ticket_id,
        before=change.before,
        after=change.after,
        priority_raised_to=change.priority_raised_to,
        reassigned_to=assignee.get_username(),
    )
