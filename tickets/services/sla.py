"""SLA clocks: targets per priority and VIP tier, deadlines counted in the organization's business
time, pauses while pending, and recomputation when the calendar or the policies change."""

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from tenancy.business_hours import BusinessCalendar, business_calendar
from tenancy.models import Organization
from tickets.models import SlaPolicy, Ticket
from tickets.rules import ACTIVE_STATUSES
from tickets.services.events import ticket_lock


@dataclass(frozen=True)
class SlaSettings:
    """What an organization's deadlines are computed from: its policies, as (first response,
    resolution) minutes by (priority, VIP tier), and its business calendar."""

    policies: dict[tuple[str, str], tuple[int, int]]
    calendar: BusinessCalendar


_settings: dict[tuple[int, Any, int, str], SlaSettings] = {}
_settings_lock = threading.Lock()
SETTINGS_HELD = 256  # organizations whose settings a process keeps


def sla_settings(organization: Organization) -> SlaSettings:
    """The organization's SLA settings, from this process's copy while its ``sla_version`` (one
    more at every change of a policy, business hours or a holiday, see sla_settings_changed)
    and time zone are those of the copy: a ticket edit reads none of them from the database."""
    # created_at too: a database that gives a deleted organization's id to a new one (SQLite).
    key = (organization.pk, organization.created_at, organization.sla_version, organization.timezone)
    held = _settings.get(key)
    if held is not None:
        return held
    policies = {
        (p.priority, p.vip_tier): (p.first_response_minutes, p.resolution_minutes)
        for p in SlaPolicy.objects.filter(organization=organization)
    }
    held = SlaSettings(policies=policies, calendar=business_calendar(organization))
    with _settings_lock:
        if len(_settings) >= SETTINGS_HELD:
            _settings.clear()
        _settings[key] = held
    return held


def sla_settings_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """post_save and post_delete of a policy, business hours or a holiday: every process reads
    the organization's settings again (its copies are of an older version); this one at once,
    even for an organization object read before the change. (The number moves in the change's
    transaction: a change rolled back moves nothing.)"""
    Organization.objects.filter(pk=instance.organization_id).update(sla_version=F("sla_version") + 1)
    with _settings_lock:
        _settings.clear()


def sla_targets(*, organization: Organization, priority: str, vip_tier: str) -> tuple[int, int]:
    """(first response, resolution) targets in minutes for a ticket of this priority and tier.

    An organization's policy for exactly this tier wins; a tier-less policy or the built-in
    defaults are tightened by the tier's VIP factor.
    """
    policies = sla_settings(organization).policies
    if (priority, vip_tier) in policies:
        return policies[(priority, vip_tier)]
    if (priority, "") in policies:
        first, resolution = policies[(priority, "")]
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
    calendar = sla_settings(ticket.organization).calendar
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
    calendar = sla_settings(ticket.organization).calendar
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
