"""Thin Celery tasks: ids in, a service call, retries on the database going away."""

from celery import shared_task
from django.db import OperationalError

from tickets import services
from tickets.models import Organization, Ticket


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=30, time_limit=60)
def ticket_escalated(ticket_id: int) -> dict[str, object]:
    """Route an escalated ticket to a person and tell them. Re-running it changes nothing."""
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None:
        return {"ticket": ticket_id, "skipped": "deleted"}
    already = ticket.assignee_id is not None
    assignee = services.ticket_route(ticket=ticket)
    notified = 0 if already else services.ticket_escalation_notify(ticket=ticket)
    return {"ticket": ticket_id, "assignee": getattr(assignee, "pk", None), "notified": notified}


@shared_task(soft_time_limit=60, time_limit=90)
def route_backlog() -> int:
    """Give unassigned tickets to whoever has room (runs on beat; staff come back, capacity frees)."""
    return sum(services.tickets_route_backlog(organization=o) for o in Organization.objects.all())


@shared_task(soft_time_limit=50, time_limit=55)
def sla_check() -> int:
    """Every minute on beat: record at-risk and breached tickets (see tickets.services.sla_check)."""
    return len(services.sla_check())


@shared_task(soft_time_limit=300, time_limit=330)
def housekeeping() -> dict[str, int]:
    """Hourly on beat: end stale chats, then delete transcripts past their retention."""
    return {"ended": services.conversations_close_stale(), "messages_deleted": services.transcripts_purge()}
