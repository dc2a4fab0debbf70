"""Tickets: creation, the state machine, assignment, edits, replies, notes, macros applied and
merges. Every change writes a TicketEvent."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from config.errors import DomainError
from tenancy.models import Organization, Team
from tenancy.services import staff_in_organization
from tickets.models import (
    Channel,
    Conversation,
    Customer,
    Macro,
    Message,
    MessageRole,
    Priority,
    Tag,
    Ticket,
    TicketEvent,
    TicketNote,
    TicketStatus,
)
from tickets.rules import PRIORITY_RANK
from tickets.search import desk_ticket_index
from tickets.services.conversations import conversation_start, message_create
from tickets.services.csat import csat_request_on_commit
from tickets.services.events import UNSET, S, ticket_change, ticket_event_record, ticket_lock
from tickets.services.sla import sla_apply, sla_pause, sla_resume
from tickets.services.workspace import mentions_notify
from tickets.transport import chat_is_online, outbound_route

TICKET_TRANSITIONS: dict[str, frozenset[str]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.PENDING, S.RESOLVED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.OPEN, S.PENDING, S.RESOLVED, S.CLOSED}),
    S.PENDING: frozenset({S.OPEN, S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}


def tags_resolve(*, organization: Organization, names: Iterable[str]) -> list[Tag]:
    tags = []
    for raw in names:
        name = slugify(raw.strip())[:50]
        if name:
            tag, _ = Tag.objects.get_or_create(organization=organization, name=name)
            tags.append(tag)
    return tags


def _check_same_organization(organization: Organization, **objects: Any) -> None:
    for label, obj in objects.items():
        if obj is not None and obj.organization_id != organization.pk:
            raise DomainError(f"The {label} belongs to another organization.")


@ticket_change()
def ticket_create(
    *,
    organization: Organization,
    customer: Customer,
    subject: str,
    priority: str = Priority.MEDIUM,
    channel: str = Channel.WEB,
    conversation: Conversation | None = None,
    team: Team | None = None,
    tags: Iterable[str] = (),
    actor: Any = None,
    opened_at: datetime | None = None,
) -> Ticket:
    """Open a ticket. ``opened_at`` backdates an imported ticket (its SLA clocks start then)."""
    subject = (subject or "").strip()
    if not subject:
        raise DomainError("A ticket needs a subject.")
    if priority not in Priority.values:
        raise DomainError(f"Unknown priority {priority!r}.")
    if channel not in Channel.values:
        raise DomainError(f"Unknown channel {channel!r}.")
    _check_same_organization(organization, customer=customer, conversation=conversation, team=team)
    if conversation is not None and conversation.customer_id != customer.pk:
        raise DomainError("The conversation belongs to another customer.")
    ticket = Ticket(
        organization=organization,
        customer=customer,
        subject=subject[:250],
        priority=priority,
        channel=channel,
        conversation=conversation,
        team=team,
        created_at=opened_at or timezone.now(),
    )
    sla_apply(ticket)
    ticket.save()
    tag_rows = tags_resolve(organization=organization, names=tags)
    if tag_rows:
        ticket.tags.set(tag_rows)
    ticket_event_record(ticket, actor, TicketEvent.Kind.CREATED, after={"status": ticket.status, "priority": priority})
    desk_ticket_index(ticket)
    return ticket


def ticket_transition_check(ticket: Ticket, to_status: str) -> None:
    if to_status not in TicketStatus.values:
        raise DomainError(f"Unknown status {to_status!r}.")
    if ticket.merged_into_id and to_status != ticket.status:
        raise DomainError(f"Ticket #{ticket.pk} was merged into #{ticket.merged_into_id}; work that one instead.")
    if to_status not in TICKET_TRANSITIONS[ticket.status]:
        allowed = ", ".join(sorted(TICKET_TRANSITIONS[ticket.status])) or "none"
        raise DomainError(f"A ticket cannot go from {ticket.status} to {to_status} (allowed: {allowed}).")


def ticket_transition(*, ticket: Ticket, to_status: str, actor: Any = None, reason: str = "") -> Ticket:
    with ticket_change():
        return _transition(ticket_lock(ticket), to_status, actor, reason)


def _transition(ticket: Ticket, to_status: str, actor: Any, reason: str = "") -> Ticket:
    """ticket_transition on a ticket the caller holds locked."""
    if to_status == ticket.status:
        return ticket
    ticket_transition_check(ticket, to_status)
    now = timezone.now()
    before = ticket.status
    if before == S.PENDING:
        sla_resume(ticket, now)
    if to_status == S.PENDING:
        sla_pause(ticket, now)
    if to_status == S.RESOLVED:
        ticket.resolved_at = now
        csat_request_on_commit(ticket)
    if to_status == S.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    if before == S.RESOLVED and to_status == S.OPEN:
        ticket.resolved_at = None
    ticket.status = to_status
    ticket.save()
    ticket_event_record(
        ticket, actor, TicketEvent.Kind.STATUS, field="status", before=before, after=to_status, message=reason
    )
    return ticket


def ticket_assign(*, ticket: Ticket, assignee: Any, actor: Any = None, reason: str = "") -> Ticket:
    with ticket_change():
        return _assign(ticket_lock(ticket), assignee, actor, reason)


def _assign(ticket: Ticket, assignee: Any, actor: Any, reason: str = "") -> Ticket:
    """ticket_assign on a ticket the caller holds locked."""
    if assignee is not None and not staff_in_organization(assignee, ticket.organization):
        raise DomainError(f"{assignee} is not on the staff of {ticket.organization}.")
    if ticket.status == S.CLOSED:
        raise DomainError("A closed ticket cannot be reassigned.")
    before = ticket.assignee_id
    after = assignee.pk if assignee is not None else None
    if before == after:
        return ticket
    ticket.assignee = assignee
    ticket.save(update_fields=["assignee", "updated_at"])
    ticket_event_record(
        ticket,
        actor,
        TicketEvent.Kind.ASSIGNED,
        field="assignee",
        before=before,
        after=after,
        message=reason or (f"Assigned to {assignee}" if assignee else "Unassigned"),
    )
    return ticket


def ticket_update(*, ticket: Ticket, actor: Any = None, **fields: Any) -> Ticket:
    """Change a ticket's subject, priority (which resets its SLA targets), team or tags."""
    with ticket_change():
        return _update(ticket_lock(ticket), actor, **fields)


def _update(
    ticket: Ticket, actor: Any, *, subject: Any = UNSET, priority: Any = UNSET, team: Any = UNSET, tags: Any = UNSET
) -> Ticket:
    """ticket_update on a ticket the caller holds locked."""
    if ticket.status == S.CLOSED:
        raise DomainError("A closed ticket cannot be changed.")
    if subject is not UNSET:
        subject = (subject or "").strip()[:250]
        if not subject:
            raise DomainError("A ticket needs a subject.")
        if subject != ticket.subject:
            ticket_event_record(
                ticket, actor, TicketEvent.Kind.SUBJECT, field="subject", before=ticket.subject, after=subject
            )
            ticket.subject = subject
            desk_ticket_index(ticket)
    if priority is not UNSET and priority != ticket.priority:
        if priority not in Priority.values:
            raise DomainError(f"Unknown priority {priority!r}.")
        ticket_event_record(
            ticket, actor, TicketEvent.Kind.PRIORITY, field="priority", before=ticket.priority, after=priority
        )
        ticket.priority = priority
        sla_apply(ticket)
    if team is not UNSET and (team.pk if team else None) != ticket.team_id:
        _check_same_organization(ticket.organization, team=team)
        ticket_event_record(
            ticket, actor, TicketEvent.Kind.TEAM, field="team", before=ticket.team_id, after=team.pk if team else None
        )
        ticket.team = team
    ticket.save()
    if tags is not UNSET:
        before_names = sorted(ticket.tags.values_list("name", flat=True))
        tag_rows = tags_resolve(organization=ticket.organization, names=tags)
        after_names = sorted({t.name for t in tag_rows})
        if before_names != after_names:
            ticket.tags.set(tag_rows)
            ticket_event_record(
                ticket, actor, TicketEvent.Kind.TAGS, field="tags", before=before_names, after=after_names
            )
    return ticket


def ticket_edit(
    *,
    ticket: Ticket,
    actor: Any = None,
    assignee: Any = UNSET,
    status: str | None = None,
    locked: bool = False,
    **fields: Any,
) -> Ticket:
    """One edit of a ticket, as a form or an API call makes it: the assignment, then the fields
    (subject, priority, team, tags), then the status move, under one row lock. All of it or
    none: a status move the state machine refuses leaves the other changes unmade too. The
    admin ticket page and the API's PATCH both call this. ``locked``: the caller read
    ``ticket`` with ``ticket_lock`` in the transaction it is in now."""
    if locked and not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("A ticket locked in a transaction that has ended is not locked.")
    with ticket_change(savepoint=not locked):
        if not locked:
            ticket = ticket_lock(ticket)
        if assignee is not UNSET and (assignee.pk if assignee else None) != ticket.assignee_id:
            ticket = _assign(ticket, assignee, actor)
        if fields:
            ticket = _update(ticket, actor, **fields)
        if status and status != ticket.status:
            ticket = _transition(ticket, status, actor)
    return ticket


@ticket_change()
def ticket_reply(
    *, ticket: Ticket, author: Any, text: str, client_message_id: str = "", attachment: Any = None
) -> Message:
    """An agent's public reply: stored as an agent message in the ticket's conversation and
    pushed to the customer's live chat. The first reply stops the first-response clock.
    Idempotent on ``client_message_id``: a repeat returns the stored reply and changes nothing."""
    ticket = ticket_lock(ticket)
    if ticket.status == S.CLOSED:
        raise DomainError("A closed ticket cannot be replied to; open a new ticket instead.")
    conversation = ticket.conversation
    if conversation is None:
        conversation = conversation_start(customer=ticket.customer, channel=ticket.channel)
        ticket.conversation = conversation
        ticket.save(update_fields=["conversation", "updated_at"])
    message, created = message_create(
        conversation=conversation,
        role=MessageRole.AGENT,
        text=text,
        author=author,
        client_message_id=client_message_id,
        attachment=attachment,
    )
    if not created:
        return message
    if ticket.first_responded_at is None:
        ticket.first_responded_at = message.created_at
        ticket.save(update_fields=["first_responded_at", "updated_at"])
    if conversation.status != Conversation.Status.HANDED_OFF and conversation.status != Conversation.Status.ENDED:
        Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.HANDED_OFF)
    ticket_event_record(
        ticket, author, TicketEvent.Kind.REPLIED, message=message.text[:200], after={"message_seq": message.seq}
    )
    if ticket.status == S.OPEN:
        ticket_transition(ticket=ticket, to_status=S.IN_PROGRESS, actor=author, reason="Agent replied")
    if ticket.assignee_id is None and author is not None and staff_in_organization(author, ticket.organization):
        ticket_assign(ticket=ticket, assignee=author, actor=author)
    route = outbound_route(conversation.channel)
    # Email and messaging apps: the reply goes out through the conversation's channel; the web
    # chat (or a channel with nothing to send through): emailed when the customer is away.
    if route is None or route(message) is None:
        reply_email_if_away_on_commit(message)
    return message


def reply_email_if_away_on_commit(message: Message) -> None:
    """After the reply commits: when the customer's chat is not open anywhere, the reply goes to
    their email too (queued), so an answer written while they are away still reaches them."""
    from tickets.tasks import reply_email

    message_id, conversation_id = message.pk, message.conversation_id

    def queue() -> None:
        if not chat_is_online(conversation_id=conversation_id):
            reply_email.delay(message_id)

    transaction.on_commit(queue)


def reply_email_send(*, message_id: int) -> bool:
    """Email one agent reply to the customer; False when there is no address or it is gone."""
    from django.core.mail import send_mail

    message = (
        Message.objects.select_related("conversation__customer", "conversation__organization", "author")
        .filter(pk=message_id, role=MessageRole.AGENT)
        .first()
    )
    if message is None or not message.conversation.customer.email:
        return False
    customer, organization = message.conversation.customer, message.conversation.organization
    sender = (message.author.first_name or message.author.get_username()) if message.author else organization.name
    send_mail(
        subject=f"{organization.name} replied to your chat",
        message=(
            f"Hello {customer.name or 'there'},\n\n{sender} from {organization.name} wrote:\n\n{message.text}\n\n"
            "Reply in the chat on our website to continue the conversation.\n"
        ),
        from_email=None,
        recipient_list=[customer.email],
    )
    return True


@ticket_change()
def ticket_note_add(*, ticket: Ticket, author: Any, body: str) -> TicketNote:
    body = (body or "").strip()
    if not body:
        raise DomainError("A note needs some text.")
    note = TicketNote.objects.create(ticket=ticket, author=author, body=body)
    ticket_event_record(ticket, author, TicketEvent.Kind.NOTE, message=body[:200])
    mentions_notify(note=note, author=author)
    return note


@dataclass(frozen=True)
class MacroOutcome:
    ticket: Ticket
    reply: Message | None


def macro_render(*, macro: Macro, ticket: Ticket, agent: Any) -> str:
    agent_name = (agent.get_full_name() or agent.get_username()) if agent is not None else "the support team"
    values = {"customer_name": ticket.customer.name or "there", "agent_name": agent_name, "ticket_id": ticket.pk}
    text = macro.reply
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


@ticket_change()
def ticket_macro_apply(*, ticket: Ticket, macro: Macro, actor: Any = None) -> MacroOutcome:
    if macro.organization_id != ticket.organization_id:
        raise DomainError("The macro belongs to another organization.")
    if macro.set_status:
        ticket_transition_check(ticket_lock(ticket), macro.set_status)
    ticket_event_record(
        ticket, actor, TicketEvent.Kind.MACRO, message=f"Applied macro {macro.name!r}", after={"macro": macro.pk}
    )
    reply = None
    if macro.reply.strip():
        reply = ticket_reply(ticket=ticket, author=actor, text=macro_render(macro=macro, ticket=ticket, agent=actor))
    fields: dict[str, Any] = {}
    if macro.set_priority:
        fields["priority"] = macro.set_priority
    if macro.add_tags.strip():
        current = list(ticket.tags.values_list("name", flat=True))
        fields["tags"] = current + macro.add_tags.split(",")
    if fields:
        ticket_update(ticket=ticket, actor=actor, **fields)
    if macro.set_status:
        ticket_transition(ticket=ticket, to_status=macro.set_status, actor=actor, reason=f"Macro {macro.name}")
    ticket.refresh_from_db()
    return MacroOutcome(ticket=ticket, reply=reply)


@ticket_change()
def ticket_merge(*, source: Ticket, target: Ticket, actor: Any = None) -> Ticket:
    """Fold ``source`` into ``target``: notes move, tags join, the higher priority wins,
    and ``source`` is closed with a pointer to ``target``."""
    if source.pk == target.pk:
        raise DomainError("A ticket cannot be merged into itself.")
    # Lock both rows in id order so two merges of the same pair cannot deadlock.
    first, second = sorted([source, target], key=lambda t: t.pk)
    locked = {t.pk: ticket_lock(t) for t in (first, second)}
    source, target = locked[source.pk], locked[target.pk]
    if source.organization_id != target.organization_id:
        raise DomainError("Tickets of different organizations cannot be merged.")
    if source.merged_into_id:
        raise DomainError(f"Ticket #{source.pk} was already merged into #{source.merged_into_id}.")
    if target.merged_into_id or target.status == S.CLOSED:
        raise DomainError(f"Ticket #{target.pk} is closed; merge into an open ticket.")
    if source.status == S.CLOSED:
        raise DomainError(f"Ticket #{source.pk} is closed and cannot be merged.")

    TicketNote.objects.filter(ticket=source).update(ticket=target)
    TicketNote.objects.create(
        ticket=target,
        author=actor if getattr(actor, "pk", None) else None,
        body=f"Merged #{source.pk}: {source.subject}",
    )
    source_tags = list(source.tags.all())
    if source_tags:
        target.tags.add(*source_tags)
    if target.conversation_id is None and source.conversation_id is not None:
        target.conversation_id = source.conversation_id
        target.save(update_fields=["conversation", "updated_at"])
    if PRIORITY_RANK[source.priority] > PRIORITY_RANK[target.priority]:
        ticket_update(ticket=target, actor=actor, priority=source.priority)
    ticket_event_record(
        target, actor, TicketEvent.Kind.MERGED, before=source.pk, after=target.pk, message=f"Merged #{source.pk}"
    )
    ticket_transition(ticket=source, to_status=S.CLOSED, actor=actor, reason=f"Merged into #{target.pk}")
    Ticket.objects.filter(pk=source.pk).update(merged_into=target)
    ticket_event_record(
        source, actor, TicketEvent.Kind.MERGED, before=source.pk, after=target.pk, message=f"Into #{target.pk}"
    )
    target.refresh_from_db()
    return target
