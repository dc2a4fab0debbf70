"""The ticket's timeline: one TicketEvent per change (the audit trail agents see), and the row lock
under which a ticket changes."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from config.compiled import CompiledQuery
from tenancy.audit import audit_in_transaction, audit_record_on_commit
from tickets.models import Ticket, TicketEvent, TicketStatus
from tickets.transport import console_group_name, send_on_commit

UNSET: Any = object()

S = TicketStatus


def ticket_event_record(
    ticket: Ticket,
    actor: Any,
    kind: str,
    *,
    field: str = "",
    before: Any = None,
    after: Any = None,
    message: str = "",
) -> TicketEvent:
    event = TicketEvent.objects.create(
        ticket=ticket,
        actor=actor if getattr(actor, "pk", None) else None,
        kind=kind,
        field=field,
        before=before,
        after=after,
        message=message[:500],
    )
    data: dict[str, Any] = {"event": event.pk, "field": field}
    if field in AUDITED_VALUES:  # subjects and texts may hold personal data: not in the audit trail
        data.update(before=before, after=after)
    audit_record_on_commit(
        organization_id=ticket.organization_id,
        action=f"ticket.{kind}",
        actor=actor if getattr(actor, "pk", None) else None,
        object_type="ticket",
        object_id=ticket.pk,
        data=data,
    )
    # Open ticket pages and the inbox follow the change live (a status, an assignee, a reply).
    frame = {
        "type": "ticket",
        "ticket_id": ticket.pk,
        "kind": kind,
        "label": event.get_kind_display(),
        "field": field,
        "before": before if field in AUDITED_VALUES else None,
        "after": after if field in AUDITED_VALUES else None,
        "message": event.message,
        "actor": actor.get_username() if getattr(actor, "pk", None) else "",
        "at": event.created_at.isoformat(),
    }
    send_on_commit(console_group_name(ticket.organization_id), {"type": "console.ticket", "frame": frame})
    return event


AUDITED_VALUES = {"status", "priority", "assignee", "team", "sla_status", "csat_score"}


def ticket_lock(ticket: Ticket, organization_id: int | None = None) -> Ticket:
    """Reload the ticket under a row lock so concurrent changes apply one after another. With
    ``organization_id``: only a ticket of that organization (Ticket.DoesNotExist otherwise), so
    an API call finds, scopes and locks its ticket in one query. Only the ticket's row is locked,
    not the customer's and organization's it reads with it: a lock on the organization would
    make every change to any of its tickets (and its audit chain) wait for this one to commit.
    The assignee is read with it too: every answer about a ticket names them. The query is
    compiled once per process (config.compiled): building it was most of its cost."""
    if organization_id is None:
        return _TICKET_LOCK.get(pk=ticket.pk)
    return _TICKET_LOCK_IN.get(pk=ticket.pk, organization_id=organization_id)


def _tickets_locked() -> QuerySet[Ticket]:
    return Ticket.objects.select_for_update(of=("self",)).select_related("customer", "organization", "assignee")


_TICKET_LOCK = CompiledQuery(lambda pk: _tickets_locked().filter(pk=pk), pk=int)
_TICKET_LOCK_IN = CompiledQuery(
    lambda pk, organization_id: _tickets_locked().filter(pk=pk, organization_id=organization_id),
    pk=int,
    organization_id=int,
)


@contextmanager
def ticket_change(savepoint: bool = True) -> Iterator[None]:
    """The transaction of a change to tickets: its timeline events' audit entries are appended
    at its end, inside it (tenancy.audit.audit_in_transaction), instead of in a transaction of
    their own after it. ``savepoint=False`` inside a caller's transaction: no savepoint of its
    own (an error ends the caller's transaction)."""
    with transaction.atomic(savepoint=savepoint), audit_in_transaction():
        yield
