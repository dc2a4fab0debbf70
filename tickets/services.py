"""Every write to the support desk: customers, conversations, messages, tickets.

Views, API views, consumers, admin actions, tasks and commands all call these functions.
Each ticket change writes a TicketEvent; rule violations raise DomainError.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.text import slugify

from tickets.audit import audit_record_on_commit
from tickets.business_hours import business_calendar
from tickets.errors import ConversationFull, DomainError
from tickets.models import (
    BreachAction,
    Channel,
    Conversation,
    Customer,
    Macro,
    Message,
    MessageRole,
    Organization,
    Priority,
    SentimentLabel,
    SentimentRecord,
    SlaPolicy,
    StaffProfile,
    StaffRole,
    Tag,
    Team,
    Ticket,
    TicketEvent,
    TicketNote,
    TicketStatus,
    VipTier,
)
from tickets.presence import chat_is_online
from tickets.roles import ROLE_GROUP_NAMES
from tickets.rules import (
    ACTIVE_STATUSES,
    HIGH_VALUE_VIP_TIERS,
    MESSAGE_MAX_CHARS,
    NEGATIVE_SENTIMENT,
    POSITIVE_SENTIMENT,
    PRIORITY_RANK,
    VERY_NEGATIVE_SENTIMENT,
    VERY_POSITIVE_SENTIMENT,
    priority_raised,
)
from tickets.search import desk_message_index, desk_ticket_index
from tickets.selectors import SlaState, ticket_sla_state

logger = logging.getLogger(__name__)

UNSET: Any = object()

S = TicketStatus
TICKET_TRANSITIONS: dict[str, frozenset[str]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.PENDING, S.RESOLVED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.OPEN, S.PENDING, S.RESOLVED, S.CLOSED}),
    S.PENDING: frozenset({S.OPEN, S.IN_PROGRESS, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),
    S.CLOSED: frozenset(),
}


# --- staff -------------------------------------------------------------------------------


@transaction.atomic
def staff_member_create(
    *,
    organization: Organization,
    username: str,
    password: str,
    role: str = StaffRole.AGENT,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> Any:
    from django.contrib.auth import get_user_model

    if role not in StaffRole.values:
        raise DomainError(f"Unknown role {role!r}; expected one of {', '.join(StaffRole.values)}.")
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise DomainError(f"A user named {username!r} already exists.")
    user = user_model.objects.create_user(
        username=username, password=password, email=email, first_name=first_name, last_name=last_name
    )
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    StaffProfile.objects.create(user=user, organization=organization, role=role)
    staff_role_set(user=user, role=role)
    return user


@transaction.atomic
def staff_role_set(*, user: Any, role: str) -> None:
    """Put the user in exactly the group of their role."""
    profile = user.staff_profile
    if profile.role != role:
        profile.role = role
        profile.save(update_fields=["role"])
    role_groups = Group.objects.filter(name__in=ROLE_GROUP_NAMES.values())
    user.groups.remove(*role_groups)
    group, _ = Group.objects.get_or_create(name=ROLE_GROUP_NAMES[StaffRole(role)])
    user.groups.add(group)


@transaction.atomic
def staff_profile_ensure(*, user: Any, organization: Organization, role: str = StaffRole.AGENT) -> StaffProfile:
    """Give a user a staff profile (once) and the group of its role."""
    profile, _ = StaffProfile.objects.get_or_create(user=user, defaults={"organization": organization, "role": role})
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    staff_role_set(user=user, role=profile.role)
    return profile


def staff_organization(user: Any) -> Organization | None:
    """The organization a staff user works for, or None (anonymous, or no profile)."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_staff_organization"):
        # One query per request, cached on the user object the request carries.
        profile = StaffProfile.objects.select_related("organization").filter(user_id=user.pk).first()
        user._staff_organization = profile.organization if profile else None
    return user._staff_organization


def _staff_in_organization(user: Any, organization: Organization) -> bool:
    return StaffProfile.objects.filter(user=user, organization=organization).exists()


# --- customers and conversations ---------------------------------------------------------


CUSTOMER_FIELDS = ("name", "email", "phone", "external_id", "vip_tier", "language")


@transaction.atomic
def customer_create(*, organization: Organization, **fields: Any) -> Customer:
    unknown = set(fields) - set(CUSTOMER_FIELDS)
    if unknown:
        raise DomainError(f"Unknown customer fields: {', '.join(sorted(unknown))}.")
    if fields.get("vip_tier", VipTier.NONE) not in VipTier.values:
        raise DomainError(f"Unknown VIP tier {fields['vip_tier']!r}.")
    external_id = fields.get("external_id", "")
    if external_id and Customer.objects.filter(organization=organization, external_id=external_id).exists():
        raise DomainError(f"A customer with external id {external_id!r} already exists.")
    customer = Customer(organization=organization, **fields)
    customer.full_clean()
    customer.save()
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, **fields: Any) -> Customer:
    unknown = set(fields) - set(CUSTOMER_FIELDS)
    if unknown:
        raise DomainError(f"Unknown customer fields: {', '.join(sorted(unknown))}.")
    external_id = fields.get("external_id")
    if (
        external_id
        and Customer.objects.filter(organization=customer.organization, external_id=external_id)
        .exclude(pk=customer.pk)
        .exists()
    ):
        raise DomainError(f"A customer with external id {external_id!r} already exists.")
    for name, value in fields.items():
        setattr(customer, name, value)
    customer.full_clean()
    customer.save()
    if {"name", "email"} & set(fields):
        for ticket in customer.tickets.select_related("customer"):
            desk_ticket_index(ticket)  # staff search finds tickets by customer name and email
    return customer


@transaction.atomic
def conversation_start(*, customer: Customer, channel: str = Channel.WEB) -> Conversation:
    if channel not in Channel.values:
        raise DomainError(f"Unknown channel {channel!r}.")
    conversation = Conversation.objects.create(organization=customer.organization, customer=customer, channel=channel)
    Customer.objects.filter(pk=customer.pk).update(last_seen_at=timezone.now())
    return conversation


@transaction.atomic
def conversation_end(*, conversation: Conversation) -> Conversation:
    if conversation.status != Conversation.Status.ENDED:
        conversation.status = Conversation.Status.ENDED
        conversation.ended_at = timezone.now()
        conversation.save(update_fields=["status", "ended_at"])
    return conversation


def conversation_group_name(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def console_group_name(organization_id: int) -> str:
    """Where an organization's staff console listens for every conversation's activity."""
    return f"console.{organization_id}"


def message_frame(message: Message) -> dict[str, Any]:
    """The websocket frame that carries one stored message to a client."""
    metadata = message.metadata or {}
    return {
        "type": "message",
        "seq": message.seq,
        "role": message.role,
        "text": message.text,
        "sources": metadata.get("sources", []),
        "intent": metadata.get("intent", ""),
        "handoff": bool(metadata.get("handoff", False)),
    }


def _broadcast_on_commit(message: Message, organization_id: int) -> None:
    """After commit, push the message to everyone watching the conversation, and to the
    organization's staff console.

    A failed broadcast loses nothing: the message is stored and a client gets it on resume.
    """

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        frame = message_frame(message)
        try:
            async_to_sync(layer.group_send)(
                conversation_group_name(message.conversation_id), {"type": "chat.message", "frame": frame}
            )
            async_to_sync(layer.group_send)(
                console_group_name(organization_id),
                {"type": "console.message", "conversation_id": message.conversation_id, "frame": frame},
            )
        except Exception:  # the channel layer is a cache of delivery, never the record
            logger.warning("broadcast of message %s failed", message.pk, exc_info=True)

    transaction.on_commit(send)


def _csat_request_on_commit(ticket: Ticket) -> None:
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
        layer = get_channel_layer()
        try:
            assert layer is not None
            async_to_sync(layer.group_send)(
                conversation_group_name(ticket.conversation_id), {"type": "chat.csat_request", "ticket_id": ticket_id}
            )
        except Exception:  # fall back to email below
            logger.warning("CSAT request for ticket %s not delivered to the widget", ticket_id, exc_info=True)
        else:
            _csat_requested(ticket_id, channel="widget")
            return "widget"
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
    _event(ticket, None, TicketEvent.Kind.CSAT, message=f"Rating requested by {channel}")


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

    ticket = _lock(ticket)
    if ticket.csat_score is not None or ticket.csat_requested_at is not None:
        return False
    if ticket.status not in (S.RESOLVED, S.CLOSED):
        return False
    customer = Customer.objects.get(pk=ticket.customer_id)
    if not customer.email:
        _event(ticket, None, TicketEvent.Kind.CSAT, message="No email address to ask for a rating")
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
    _event(ticket, None, TicketEvent.Kind.CSAT, message="Rating requested by email")
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
def message_create(
    *,
    conversation: Conversation,
    role: str,
    text: str,
    client_message_id: str = "",
    metadata: dict[str, Any] | None = None,
    author: Any = None,
    broadcast: bool = True,
) -> tuple[Message, bool]:
    """Store one message with the conversation's next sequence number.

    Idempotent on ``client_message_id``: a repeat returns the stored message and False.
    """
    if role not in MessageRole.values:
        raise DomainError(f"Unknown message role {role!r}.")
    text = (text or "").strip()
    if not text:
        raise DomainError("A message needs some text.")
    if len(text) > MESSAGE_MAX_CHARS:
        raise DomainError(f"A message may hold at most {MESSAGE_MAX_CHARS} characters.")
    if len(client_message_id) > 64:
        raise DomainError("A client message id may hold at most 64 characters.")
    # Lock the conversation row: sequence numbers are handed out one writer at a time.
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if client_message_id:
        existing = Message.objects.filter(conversation=locked, client_message_id=client_message_id).first()
        if existing:
            return existing, False
    cap = settings.CONCIERGE_CONVERSATION_MAX_MESSAGES
    if role == MessageRole.CUSTOMER and locked.last_seq >= cap:
        raise ConversationFull(f"This conversation reached {cap} messages; please start a new chat.")
    locked.last_seq += 1
    locked.save(update_fields=["last_seq"])
    conversation.last_seq = locked.last_seq
    message = Message.objects.create(
        conversation=locked,
        role=role,
        text=text,
        seq=locked.last_seq,
        client_message_id=client_message_id,
        metadata=metadata or {},
        author=author,
    )
    if role == MessageRole.CUSTOMER:
        Customer.objects.filter(pk=locked.customer_id).update(last_seen_at=message.created_at)
        if locked.status == Conversation.Status.ENDED:
            # The customer came back: the chat is live again and the assistant answers.
            locked.status = Conversation.Status.OPEN
            locked.reopened_at = message.created_at
            locked.save(update_fields=["status", "reopened_at"])
            conversation.status = locked.status
    desk_message_index(message, locked.organization_id)
    if broadcast:
        _broadcast_on_commit(message, locked.organization_id)
    return message, True


def sentiment_label_for(score: float) -> str:
    if score <= VERY_NEGATIVE_SENTIMENT:
        return SentimentLabel.VERY_NEGATIVE
    if score < NEGATIVE_SENTIMENT:
        return SentimentLabel.NEGATIVE
    if score <= POSITIVE_SENTIMENT:
        return SentimentLabel.NEUTRAL
    if score < VERY_POSITIVE_SENTIMENT:
        return SentimentLabel.POSITIVE
    return SentimentLabel.VERY_POSITIVE


@transaction.atomic
def message_sentiment_record(*, message: Message, score: float) -> SentimentRecord:
    """Record a message's sentiment; a customer message also sets the conversation's latest mood."""
    if not -1.0 <= score <= 1.0:
        raise DomainError("A sentiment score lies between -1 and 1.")
    label = sentiment_label_for(score)
    record, _ = SentimentRecord.objects.update_or_create(message=message, defaults={"score": score, "label": label})
    if message.role == MessageRole.CUSTOMER:
        Conversation.objects.filter(pk=message.conversation_id).update(sentiment_score=score, sentiment_label=label)
    return record


# --- SLA ---------------------------------------------------------------------------------


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


def _sla_apply(ticket: Ticket) -> None:
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


def _sla_pause(ticket: Ticket, now: datetime) -> None:
    ticket.sla_paused_at = now


def _sla_resume(ticket: Ticket, now: datetime) -> None:
    if ticket.sla_paused_at is None:
        return
    calendar = business_calendar(ticket.organization)
    ticket.sla_paused_seconds += int(calendar.seconds_between(ticket.sla_paused_at, now))
    ticket.sla_paused_at = None
    _sla_apply(ticket)


# --- tickets -----------------------------------------------------------------------------


def _event(
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
    return event


AUDITED_VALUES = {"status", "priority", "assignee", "team", "sla_status", "csat_score"}


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


@transaction.atomic
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
) -> Ticket:
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
    )
    _sla_apply(ticket)
    ticket.save()
    tag_rows = tags_resolve(organization=organization, names=tags)
    if tag_rows:
        ticket.tags.set(tag_rows)
    _event(ticket, actor, TicketEvent.Kind.CREATED, after={"status": ticket.status, "priority": priority})
    desk_ticket_index(ticket)
    return ticket


@transaction.atomic
def ticket_sla_recompute(*, ticket: Ticket) -> Ticket:
    """Recompute due dates from the current policy (after a policy or creation-time change)."""
    ticket = _lock(ticket)
    _sla_apply(ticket)
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


def ticket_transition_check(ticket: Ticket, to_status: str) -> None:
    if to_status not in TicketStatus.values:
        raise DomainError(f"Unknown status {to_status!r}.")
    if ticket.merged_into_id and to_status != ticket.status:
        raise DomainError(f"Ticket #{ticket.pk} was merged into #{ticket.merged_into_id}; work that one instead.")
    if to_status not in TICKET_TRANSITIONS[ticket.status]:
        allowed = ", ".join(sorted(TICKET_TRANSITIONS[ticket.status])) or "none"
        raise DomainError(f"A ticket cannot go from {ticket.status} to {to_status} (allowed: {allowed}).")


def _lock(ticket: Ticket) -> Ticket:
    """Reload the ticket under a row lock so concurrent changes apply one after another."""
    return Ticket.objects.select_for_update().select_related("customer", "organization").get(pk=ticket.pk)


@transaction.atomic
def ticket_transition(*, ticket: Ticket, to_status: str, actor: Any = None, reason: str = "") -> Ticket:
    ticket = _lock(ticket)
    if to_status == ticket.status:
        return ticket
    ticket_transition_check(ticket, to_status)
    now = timezone.now()
    before = ticket.status
    if before == S.PENDING:
        _sla_resume(ticket, now)
    if to_status == S.PENDING:
        _sla_pause(ticket, now)
    if to_status == S.RESOLVED:
        ticket.resolved_at = now
        _csat_request_on_commit(ticket)
    if to_status == S.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    if before == S.RESOLVED and to_status == S.OPEN:
        ticket.resolved_at = None
    ticket.status = to_status
    ticket.save()
    _event(ticket, actor, TicketEvent.Kind.STATUS, field="status", before=before, after=to_status, message=reason)
    return ticket


@transaction.atomic
def ticket_assign(*, ticket: Ticket, assignee: Any, actor: Any = None, reason: str = "") -> Ticket:
    ticket = _lock(ticket)
    if assignee is not None and not _staff_in_organization(assignee, ticket.organization):
        raise DomainError(f"{assignee} is not on the staff of {ticket.organization}.")
    if ticket.status == S.CLOSED:
        raise DomainError("A closed ticket cannot be reassigned.")
    before = ticket.assignee_id
    after = assignee.pk if assignee is not None else None
    if before == after:
        return ticket
    ticket.assignee = assignee
    ticket.save(update_fields=["assignee", "updated_at"])
    _event(
        ticket,
        actor,
        TicketEvent.Kind.ASSIGNED,
        field="assignee",
        before=before,
        after=after,
        message=reason or (f"Assigned to {assignee}" if assignee else "Unassigned"),
    )
    return ticket


@transaction.atomic
def ticket_update(
    *,
    ticket: Ticket,
    actor: Any = None,
    subject: Any = UNSET,
    priority: Any = UNSET,
    team: Any = UNSET,
    tags: Any = UNSET,
) -> Ticket:
    """Change a ticket's subject, priority (which resets its SLA targets), team or tags."""
    ticket = _lock(ticket)
    if ticket.status == S.CLOSED:
        raise DomainError("A closed ticket cannot be changed.")
    if subject is not UNSET:
        subject = (subject or "").strip()[:250]
        if not subject:
            raise DomainError("A ticket needs a subject.")
        if subject != ticket.subject:
            _event(ticket, actor, TicketEvent.Kind.SUBJECT, field="subject", before=ticket.subject, after=subject)
            ticket.subject = subject
            desk_ticket_index(ticket)
    if priority is not UNSET and priority != ticket.priority:
        if priority not in Priority.values:
            raise DomainError(f"Unknown priority {priority!r}.")
        _event(ticket, actor, TicketEvent.Kind.PRIORITY, field="priority", before=ticket.priority, after=priority)
        ticket.priority = priority
        _sla_apply(ticket)
    if team is not UNSET and (team.pk if team else None) != ticket.team_id:
        _check_same_organization(ticket.organization, team=team)
        _event(
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
            _event(ticket, actor, TicketEvent.Kind.TAGS, field="tags", before=before_names, after=after_names)
    return ticket


@transaction.atomic
def ticket_reply(*, ticket: Ticket, author: Any, text: str, client_message_id: str = "") -> Message:
    """An agent's public reply: stored as an agent message in the ticket's conversation and
    pushed to the customer's live chat. The first reply stops the first-response clock.
    Idempotent on ``client_message_id``: a repeat returns the stored reply and changes nothing."""
    ticket = _lock(ticket)
    if ticket.status == S.CLOSED:
        raise DomainError("A closed ticket cannot be replied to; open a new ticket instead.")
    conversation = ticket.conversation
    if conversation is None:
        conversation = conversation_start(customer=ticket.customer, channel=ticket.channel)
        ticket.conversation = conversation
        ticket.save(update_fields=["conversation", "updated_at"])
    message, created = message_create(
        conversation=conversation, role=MessageRole.AGENT, text=text, author=author, client_message_id=client_message_id
    )
    if not created:
        return message
    if ticket.first_responded_at is None:
        ticket.first_responded_at = message.created_at
        ticket.save(update_fields=["first_responded_at", "updated_at"])
    if conversation.status != Conversation.Status.HANDED_OFF and conversation.status != Conversation.Status.ENDED:
        Conversation.objects.filter(pk=conversation.pk).update(status=Conversation.Status.HANDED_OFF)
    _event(ticket, author, TicketEvent.Kind.REPLIED, message=message.text[:200], after={"message_seq": message.seq})
    if ticket.status == S.OPEN:
        ticket_transition(ticket=ticket, to_status=S.IN_PROGRESS, actor=author, reason="Agent replied")
    if ticket.assignee_id is None and author is not None and _staff_in_organization(author, ticket.organization):
        ticket_assign(ticket=ticket, assignee=author, actor=author)
    return message


@transaction.atomic
def ticket_note_add(*, ticket: Ticket, author: Any, body: str) -> TicketNote:
    body = (body or "").strip()
    if not body:
        raise DomainError("A note needs some text.")
    note = TicketNote.objects.create(ticket=ticket, author=author, body=body)
    _event(ticket, author, TicketEvent.Kind.NOTE, message=body[:200])
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


@transaction.atomic
def ticket_macro_apply(*, ticket: Ticket, macro: Macro, actor: Any = None) -> MacroOutcome:
    if macro.organization_id != ticket.organization_id:
        raise DomainError("The macro belongs to another organization.")
    if macro.set_status:
        ticket_transition_check(_lock(ticket), macro.set_status)
    _event(ticket, actor, TicketEvent.Kind.MACRO, message=f"Applied macro {macro.name!r}", after={"macro": macro.pk})
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


@transaction.atomic
def ticket_merge(*, source: Ticket, target: Ticket, actor: Any = None) -> Ticket:
    """Fold ``source`` into ``target``: notes move, tags join, the higher priority wins,
    and ``source`` is closed with a pointer to ``target``."""
    if source.pk == target.pk:
        raise DomainError("A ticket cannot be merged into itself.")
    # Lock both rows in id order so two merges of the same pair cannot deadlock.
    first, second = sorted([source, target], key=lambda t: t.pk)
    locked = {t.pk: _lock(t) for t in (first, second)}
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
    _event(target, actor, TicketEvent.Kind.MERGED, before=source.pk, after=target.pk, message=f"Merged #{source.pk}")
    ticket_transition(ticket=source, to_status=S.CLOSED, actor=actor, reason=f"Merged into #{target.pk}")
    Ticket.objects.filter(pk=source.pk).update(merged_into=target)
    _event(source, actor, TicketEvent.Kind.MERGED, before=source.pk, after=target.pk, message=f"Into #{target.pk}")
    target.refresh_from_db()
    return target


@transaction.atomic
def ticket_csat_record(*, ticket: Ticket, score: int, comment: str = "") -> Ticket:
    """The customer's 1-5 rating of a resolved ticket; updates their mean satisfaction."""
    from django.db.models import Avg

    score, comment = csat_validate(score, comment)
    ticket = _lock(ticket)
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
    _event(ticket, None, TicketEvent.Kind.CSAT, field="csat_score", before=before, after=score)
    return ticket


# --- macros ------------------------------------------------------------------------------

MACRO_FIELDS = ("name", "reply", "set_status", "set_priority", "add_tags")


def _macro_validate(macro: Macro) -> None:
    if not macro.name.strip():
        raise DomainError("A macro needs a name.")
    clash = Macro.objects.filter(organization_id=macro.organization_id, name=macro.name).exclude(pk=macro.pk)
    if clash.exists():
        raise DomainError(f"A macro named {macro.name!r} already exists.")
    if not (macro.reply.strip() or macro.set_status or macro.set_priority or macro.add_tags.strip()):
        raise DomainError("A macro must reply, or change status, priority or tags.")


@transaction.atomic
def macro_create(*, organization: Organization, **fields: Any) -> Macro:
    macro = Macro(organization=organization, **{k: v for k, v in fields.items() if k in MACRO_FIELDS})
    _macro_validate(macro)
    macro.save()
    return macro


@transaction.atomic
def macro_update(*, macro: Macro, **fields: Any) -> Macro:
    for name, value in fields.items():
        if name in MACRO_FIELDS:
            setattr(macro, name, value)
    _macro_validate(macro)
    macro.save()
    return macro


@transaction.atomic
def macro_delete(*, macro: Macro) -> None:
    macro.delete()


# --- escalation --------------------------------------------------------------------------

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
    ticket = (
        Ticket.objects.filter(conversation=conversation, status__in=ACTIVE_STATUSES).order_by("-created_at").first()
    )
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
    _event(ticket, None, TicketEvent.Kind.NOTE, message=f"Escalated by the assistant: {reason}")
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


# --- routing -----------------------------------------------------------------------------

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
    ticket = _lock(ticket)
    if ticket.assignee_id is not None or ticket.status not in ACTIVE_STATUSES:
        return ticket.assignee
    if chosen is None:
        _event(ticket, None, TicketEvent.Kind.ASSIGNED, message="No available agent has capacity; left in the queue")
        return None
    return ticket_assign(ticket=ticket, assignee=chosen.user).assignee


@transaction.atomic
def ticket_reassign_after_breach(*, ticket: Ticket) -> Any:
    """Give a breached ticket to another available agent with room (the breach policy
    'reassign'). Keeps the current assignee when nobody else can take it. Returns the
    assignee after the attempt."""
    chosen = _route_pick(ticket, exclude_user_id=ticket.assignee_id)
    ticket = _lock(ticket)
    if ticket.status not in ACTIVE_STATUSES:
        return ticket.assignee
    if chosen is None:
        _event(ticket, None, TicketEvent.Kind.ASSIGNED, message="SLA breached; nobody else has room to take it")
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
def conversation_reply(*, conversation: Conversation, author: Any, text: str, client_message_id: str = "") -> Message:
    """A person answers in a conversation: through its open ticket when there is one (so the
    first-response clock and the audit trail see it), else as a plain agent message. Every
    entry point that lets staff answer a customer calls this."""
    ticket = (
        Ticket.objects.filter(conversation=conversation, status__in=ACTIVE_STATUSES).order_by("-created_at").first()
    )
    if ticket is not None:
        return ticket_reply(ticket=ticket, author=author, text=text, client_message_id=client_message_id)
    message, _ = message_create(
        conversation=conversation, role=MessageRole.AGENT, text=text, author=author, client_message_id=client_message_id
    )
    return message


# --- SLA enforcement ---------------------------------------------------------------------


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
    ticket = Ticket.objects.select_for_update().select_related("customer", "organization").get(pk=ticket_id)
    state = ticket_sla_state(ticket, now)
    # A paused (pending) clock keeps whatever was recorded before the pause.
    recorded = state if state in (SlaState.OK, SlaState.AT_RISK, SlaState.BREACHED) else ticket.sla_status
    if recorded == ticket.sla_status:
        return None
    before = ticket.sla_status
    ticket.sla_status = recorded
    ticket.save(update_fields=["sla_status", "updated_at"])
    _event(ticket, None, TicketEvent.Kind.SLA, field="sla_status", before=before, after=recorded)
    raised = ""
    action = ticket.organization.sla_breach_action
    raises = action in (BreachAction.RAISE_PRIORITY, BreachAction.RAISE_AND_REASSIGN)
    if recorded == SlaState.BREACHED and raises and ticket.priority != Priority.URGENT:
        raised = priority_raised(ticket.priority, 1)
        # The clock keeps its original targets: a breach raises urgency, not the deadline.
        Ticket.objects.filter(pk=ticket.pk).update(priority=raised)
        _event(ticket, None, TicketEvent.Kind.PRIORITY, field="priority", before=ticket.priority, after=raised,
               message="SLA breached")  # fmt: skip
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


# --- housekeeping ------------------------------------------------------------------------


def conversations_close_stale(*, now: datetime | None = None) -> int:
    """End chats nobody has written in for the organization's stale_conversation_minutes,
    unless a ticket on them is still being worked. Returns how many were ended."""
    now = now or timezone.now()
    ended = 0
    for organization in Organization.objects.all():
        cutoff = now - timedelta(minutes=organization.stale_conversation_minutes)
        idle = (
            Conversation.objects.filter(organization=organization)
            .exclude(status=Conversation.Status.ENDED)
            .exclude(tickets__status__in=ACTIVE_STATUSES)
            .annotate(last_message_at=Max("messages__created_at"))
            .filter(Q(last_message_at__lt=cutoff) | Q(last_message_at__isnull=True, started_at__lt=cutoff))
        )
        for conversation in idle:
            conversation_end(conversation=conversation)
            ended += 1
    return ended


@transaction.atomic
def transcripts_purge(*, now: datetime | None = None) -> int:
    """Delete the messages of conversations that ended longer ago than the organization keeps
    transcripts. Tickets and their audit trail stay. Returns how many messages were deleted."""
    now = now or timezone.now()
    deleted = 0
    for organization in Organization.objects.all():
        cutoff = now - timedelta(days=organization.transcript_retention_days)
        old = Message.objects.filter(
            conversation__organization=organization,
            conversation__status=Conversation.Status.ENDED,
            conversation__ended_at__lt=cutoff,
        )
        deleted += old.delete()[0]
    return deleted
