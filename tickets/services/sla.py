"""SLA clocks: targets per priority and VIP tier, deadlines counted in the organization's business
time, pauses while pending, and recomputation when the calendar or the policies change."""

from datetime import datetime

from django.conf import settings
from django.db import transaction

from tenancy.business_hours import business_calendar
from tenancy.models import Organization
from tickets.models import SlaPolicy, Ticket
from tickets.rules import ACTIVE_STATUSES
from tickets.services.events import ticket_lock


def sla_targets(*, organization: Organization, priority: str, vip_tier: str) -> tuple[int, int]:
    """(first response, resolution) targets in minutes for a ticket of this priority and tier.

    An organization's policy for exactly this tier wins; a tier-less policy or the built-in
    defaults are tightened by the tier's VIP factor.
    """
    policies = {p.vip_tier: p for p in SlaPolicy.objects.filter(organization=organization, priority=priority)}
    if vip_tier in policies:
        exact = policies[vip_tier]
        return exact.first_response_minutes, exact.resolution_minutes
    if "" in policies:
        first, resolution = policies[""].first_response_minutes, policies[""].resolution_minutes
    else:
        first, resolution = settings.CONCIERGE_DEFAULT_SLA_MINUTES[priority]
    factor = settings.CONCIERGE_VIP_SLA_FACTOR.get(vip_tier, 1.0)
    return max(1, round(first * factor)), max(1, round(resolution * factor))


def sla_apply(ticket: Ticket) -> None:
    """Set due and at-risk times: the targets count business time from creation, and time
    spent paused (itself counted in business time) pushes every deadline back."""
    first, resolution = sla_targets(
        organization=ticket.organization, priority=ticket.priority, vip_tier=ticket.customer.vip_tier
    )
    calendar = business_calendar(ticket.organization)
    start = ticket.created_at
    paused = ticket.sla_paused_seconds
    share = settings.CONCIERGE_SLA_AT_RISK_SHARE
    ticket.first_response_due = calendar.add(start, first * 60 + paused)
    ticket.resolution_due = calendar.add(start, resolution * 60 + paused)
    ticket.first_response_at_risk_at = calendar.add(start, first * 60 * share + paused)
    ticket.resolution_at_risk_at = calendar.add(start, resolution * 60 * share + paused)


def sla_pause(ticket: Ticket, now: datetime) -> None:
    ticket.sla_paused_at = now


def sla_resume(ticket: Ticket, now: datetime) -> None:
    if ticket.sla_paused_at is None:
        return
    calendar = business_calendar(ticket.organization)
    ticket.sla_paused_seconds += int(calendar.seconds_between(ticket.sla_paused_at, now))
    ticket.sla_paused_at = None
    sla_apply(ticket)


@transaction.atomic
def ticket_sla_recompute(*, ticket: Ticket) -> Ticket:
    """Recompute due dates from the current policy (after a policy or creation-time change)."""
    ticket = ticket_lock(ticket)
    sla_apply(ticket)
    ticket.save()
    return ticket


def organization_sla_recompute(*, organization_id: int) -> int:
    """Every open ticket's deadlines follow the organization's current time zone, business hours,
    holidays and SLA policies; returns how many tickets were recomputed."""
    ticket_ids = list(
        Ticket.objects.filter(organization_id=organization_id, status__in=ACTIVE_STATUSES).values_list("pk", flat=True)
    )
    for ticket_id in ticket_ids:
        ticket_sla_recompute(ticket=Ticket(pk=ticket_id))
    return len(ticket_ids)


def organization_sla_changed(*, organization_id: int) -> None:
    """The organization's calendar or SLA policies changed (admin, API, a command): recompute its
    open tickets after commit, in the worker, so a large backlog does not hold up the request."""
    from tickets.tasks import organization_sla_recompute_task

    transaction.on_commit(lambda: organization_sla_recompute_task.delay(organization_id))


def sla_policies_default(*, organization: Organization) -> int:
    """Write the installation's default targets (CONCIERGE_DEFAULT_SLA_MINUTES) as the
    organization's own policies, so staff can edit them in admin; existing ones are kept."""
    created = 0
    for priority, (first_minutes, resolution_minutes) in settings.CONCIERGE_DEFAULT_SLA_MINUTES.items():
        _, new = SlaPolicy.objects.get_or_create(
            organization=organization,
            priority=priority,
            vip_tier="",
            defaults={"first_response_minutes": first_minutes, "resolution_minutes": resolution_minutes},
        )
        created += new
    return created
