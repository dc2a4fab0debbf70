"""Thin Celery tasks: ids in, a service call, retries on the database going away."""

from celery import shared_task
from django.db import OperationalError

from tenancy.models import Organization
from tickets import reports, services
from tickets.models import Ticket


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=30, time_limit=60)
def ticket_escalated(ticket_id: int) -> dict[str, object]:
    """Route an escalated ticket to a person and tell them. Re-running it (a redelivery after a
    worker died mid-task) finishes what is missing and repeats nothing."""
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if ticket is None:
        return {"ticket": ticket_id, "skipped": "deleted"}
    assignee = services.ticket_route(ticket=ticket)
    notified = services.ticket_escalation_notify(ticket=ticket)
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


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=30, time_limit=60)
def csat_email(ticket_id: int) -> bool:
    """Email a resolved ticket's customer a rating link (once; see ticket_csat_email)."""
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    return ticket is not None and services.ticket_csat_email(ticket=ticket)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=600, time_limit=660)
def reports_refresh(period: str) -> int:
    """Hourly (day) and on Mondays (week): build the last complete period's report for every
    organization (hourly, because each organization's day ends in its own time zone) and
    rebuild the previous ones while their 72-hour reopen window settles."""
    return reports.reports_refresh(period=period)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=300, time_limit=330)
def organization_sla_recompute_task(organization_id: int) -> int:
    return services.organization_sla_recompute(organization_id=organization_id)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=30, time_limit=60)
def reply_email(message_id: int) -> bool:
    """An agent's reply, emailed to a customer who was away from the chat."""
    return services.reply_email_send(message_id=message_id)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=30, time_limit=60)
def mention_email(notification_id: int) -> bool:
    """Email a staff member that a colleague mentioned them in a note."""
    return services.mention_email_send(notification_id=notification_id)
