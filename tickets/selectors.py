"""Reads of the support desk, scoped to one organization, with their joins applied."""

from collections.abc import Iterable
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple, Protocol

from django.db import connections
from django.db.models import Case, Count, F, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.fields.json import KT
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.compiled import CompiledQuery
from tenancy.models import Organization
from tickets.crypto import blind_index
from tickets.fields import EncryptedTextField
from tickets.models import (
    Conversation,
    Customer,
    Macro,
    Message,
    MessageRole,
    ReplySuggestion,
    Ticket,
    TicketStatus,
    VipTier,
)
from tickets.rules import ACTIVE_STATUSES


class SlaState:
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    PAUSED = "paused"
    DONE = "done"


def sla_breached_q(now: datetime) -> Q:
    """Active tickets past a deadline on their own clock: now, or when a pending ticket paused."""
    running = Q(sla_paused_at__isnull=True) & (
        Q(first_responded_at__isnull=True, first_response_due__lt=now) | Q(resolution_due__lt=now)
    )
    paused = Q(sla_paused_at__isnull=False) & (
        Q(first_responded_at__isnull=True, first_response_due__lt=F("sla_paused_at"))
        | Q(resolution_due__lt=F("sla_paused_at"))
    )
    return Q(status__in=ACTIVE_STATUSES) & (running | paused)


def sla_at_risk_q(now: datetime) -> Q:
    risky = Q(first_responded_at__isnull=True, first_response_at_risk_at__lte=now) | Q(resolution_at_risk_at__lte=now)
    return Q(status__in=ACTIVE_STATUSES, sla_paused_at__isnull=True) & risky & ~sla_breached_q(now)


class SlaClock(Protocol):
    """What the SLA state reads: a Ticket, or one of ``ticket_rows``' rows seen as attributes."""

    status: str
    sla_paused_at: datetime | None
    first_responded_at: datetime | None
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_response_at_risk_at: datetime | None
    resolution_at_risk_at: datetime | None


def ticket_sla_state(ticket: SlaClock, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if ticket.status not in ACTIVE_STATUSES:
        return SlaState.DONE
    clock = ticket.sla_paused_at or now
    waiting_first = ticket.first_responded_at is None
    if (waiting_first and ticket.first_response_due and clock > ticket.first_response_due) or (
        ticket.resolution_due and clock > ticket.resolution_due
    ):
        return SlaState.BREACHED
    if ticket.sla_paused_at is not None:
        return SlaState.PAUSED
    if (waiting_first and ticket.first_response_at_risk_at and now >= ticket.first_response_at_risk_at) or (
        ticket.resolution_at_risk_at and now >= ticket.resolution_at_risk_at
    ):
        return SlaState.AT_RISK
    return SlaState.OK


def ticket_list(*, organization: Organization) -> QuerySet[Ticket]:
    """What the API shows of tickets: the customer's and assignee's names joined in, the
    tags prefetched. Team, conversation and merged-into are shown as ids, read from the
    ticket's own columns: joining them (as the first version did) tripled the SQL Django
    compiles and the model objects it builds for every row."""
    return (
        Ticket.objects.filter(organization=organization).select_related("customer", "assignee").prefetch_related("tags")
    )


# The API's ticket fields as columns: what TicketSerializer renders (tags and the SLA state are
# added by ticket_rows), read with values() instead of model objects. The list endpoint spent
# more time building Ticket, Customer and User objects and running DRF's field machinery over
# them than in PostgreSQL (bench/README.md, "Scale work, third round").
_ROW_COLUMNS = {
    "id": "id", "subject": "subject", "status": "status", "priority": "priority", "channel": "channel",
    "customer": "customer_id", "customer_name": "customer__name", "conversation": "conversation_id",
    "assignee": "assignee_id", "assignee_username": "assignee__username", "team": "team_id",
    "created_at": "created_at", "updated_at": "updated_at", "first_response_due": "first_response_due",
    "resolution_due": "resolution_due", "first_responded_at": "first_responded_at", "resolved_at": "resolved_at",
    "closed_at": "closed_at", "merged_into": "merged_into_id", "csat_score": "csat_score",
    "csat_comment": "csat_comment",
}  # fmt: skip
_SLA_COLUMNS = ("sla_paused_at", "first_response_at_risk_at", "resolution_at_risk_at")
_ROW_TIMES = ("created_at", "updated_at", "first_response_due", "resolution_due", "first_responded_at",
              "resolved_at", "closed_at")  # fmt: skip


def ticket_tag_names(database: str) -> Any:
    """On PostgreSQL, an expression for a ticket query's rows: the ticket's tag names in order,
    as an array read in the same query (``tag_names``, which ``ticket_rows`` uses instead of a
    query of its own). None elsewhere."""
    if connections[database].vendor != "postgresql":
        return None
    from django.contrib.postgres.expressions import ArraySubquery

    names = Ticket.tags.through.objects.filter(ticket_id=OuterRef("id")).order_by("tag__name")
    return ArraySubquery(names.values("tag__name"))


class _CountedBare(QuerySet):
    """values() rows whose count() is that of the tickets they were read from: values() joins
    the customer and the assignee for their names, and PostgreSQL cannot drop an inner join
    from a count (the count compiled and ran in 430 us with them, 290 without, for the demo
    company's desk). Only the queryset ``ticket_values`` returns counts so (what a paginator
    counts); one derived from it (filtered, sliced) counts itself."""

    _bare: QuerySet[Any] | None = None

    def count(self) -> int:
        if self._bare is not None and self._result_cache is None and not self.query.is_sliced:
            return self._bare.count()
        return super().count()


def ticket_values(tickets: QuerySet[Ticket]) -> QuerySet[Ticket, dict[str, Any]]:
    """The filtered, ordered tickets as the columns ``ticket_rows`` renders (joins and
    prefetches of the model query dropped: values() joins what it names); counted without the
    joins the names need."""
    bare = tickets.select_related(None).prefetch_related(None)
    rows = bare.values(*_ROW_COLUMNS.values(), *_SLA_COLUMNS)
    names = ticket_tag_names(tickets.db)
    if names is not None:
        rows = rows.annotate(tag_names=names)
    rows.__class__ = _CountedBare
    rows._bare = bare
    return rows


def _time(value: datetime | None, zone: Any) -> str | None:
    """As DRF's DateTimeField renders it (ISO 8601 in the current time zone, UTC as Z)."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def ticket_rows(values: Iterable[dict[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    """The API's ticket objects (the same keys and values as TicketSerializer) from
    ``ticket_values`` rows: one more query for their tags unless the rows carry them (on
    PostgreSQL), and one for the customers shown by email or phone because they gave no name
    (decrypted only for those)."""
    rows = list(values)
    zone = timezone.get_current_timezone()
    tags: dict[int, list[str]] = {row["id"]: row["tag_names"] for row in rows if "tag_names" in row}
    if rows and len(tags) < len(rows):
        through = Ticket.tags.through.objects.filter(ticket_id__in=[row["id"] for row in rows])
        for ticket_id, name in through.order_by("tag__name").values_list("ticket_id", "tag__name"):
            tags.setdefault(ticket_id, []).append(name)
    unnamed = {row["customer_id"] for row in rows if not row["customer__name"]}
    shown = {customer.pk: str(customer) for customer in Customer.objects.filter(pk__in=unnamed)} if unnamed else {}
    rendered = []
    for row in rows:
        item = {key: row[column] for key, column in _ROW_COLUMNS.items()}
        item["customer_name"] = row["customer__name"] or shown.get(row["customer_id"], "")
        for key in _ROW_TIMES:
            item[key] = _time(item[key], zone)
        item["tags"] = tags.get(row["id"], [])
        item["sla_state"] = ticket_sla_state(SimpleNamespace(**row), now)
        rendered.append(item)
    return rendered


def ticket_values_of(ticket: Ticket) -> dict[str, Any]:
    """A Ticket object (one a service returned, read under its lock) as one of
    ``ticket_values``' rows: its customer and assignee read as the serializer read them."""
    row = {column: getattr(ticket, column) for column in _ROW_COLUMNS.values() if "__" not in column}
    row.update({column: getattr(ticket, column) for column in _SLA_COLUMNS})
    row["customer__name"] = ticket.customer.name
    row["assignee__username"] = ticket.assignee.username if ticket.assignee is not None else None
    return row


def ticket_detail(*, organization: Organization) -> QuerySet[Ticket]:
    return ticket_list(organization=organization).prefetch_related("events__actor", "notes__author")


def customer_by_email(*, organization: Organization, email: str) -> Customer | None:
    """Exact, case-insensitive: emails are encrypted, so the lookup goes through their keyed hash."""
    return Customer.objects.filter(organization=organization, email_hash=blind_index(email)).first()


def customer_list(*, organization: Organization) -> QuerySet[Customer]:
    return Customer.objects.filter(organization=organization)


def conversation_list(*, organization: Organization) -> QuerySet[Conversation]:
    return Conversation.objects.filter(organization=organization).select_related("customer")


def conversation_messages(*, conversation: Conversation, after_seq: int = 0) -> QuerySet[Message]:
    return (
        Message.objects.filter(conversation=conversation, seq__gt=after_seq)
        .select_related("sentiment", "author")
        .prefetch_related("attachments")
        .order_by("seq")
    )


def conversation_transcript(*, conversation_id: int) -> QuerySet[Message]:
    # "email": the mail a message came in as or went out as (the email channel's record, with its
    # delivery state), and "messaging" the same for a messaging app's, joined here so the
    # transcript shows it without a query per message.
    return (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("sentiment", "author", "email", "messaging")
        .order_by("seq")
    )


# --- a chat turn's reads by id, compiled once per process (config.compiled) -------------------
# Every turn runs these with new ids; with their SQL built each time, a turn through the services
# took 23-24.5 ms of CPU in one process, 18.6-19.8 ms without (bench/README.md, eleventh round).

_CONVERSATION_LOCK = CompiledQuery(
    lambda pk, organization_id: Conversation.objects.select_for_update().filter(pk=pk, organization_id=organization_id),
    pk=int,
    organization_id=int,
)
_MESSAGE_BY_CLIENT_ID = CompiledQuery(
    lambda conversation_id, client_message_id: Message.objects.filter(
        conversation_id=conversation_id, client_message_id=client_message_id
    ).order_by("pk")[:1],
    conversation_id=int,
    client_message_id=str,
)
_MESSAGE_WITH_CONVERSATION = CompiledQuery(
    lambda pk: Message.objects.select_related("conversation__customer", "conversation__organization").filter(pk=pk),
    pk=int,
)
_BOT_REPLY_TO = CompiledQuery(
    # The reply's metadata records the customer message it answers; compared as text, so the
    # number is an argument like any other.
    lambda conversation_id, in_reply_to: (
        Message.objects.alias(in_reply_to=KT("metadata__in_reply_to"))
        .filter(conversation_id=conversation_id, role=MessageRole.BOT, in_reply_to=in_reply_to)
        .order_by("seq")[:1]
    ),
    conversation_id=int,
    in_reply_to=str,
)
_TURNS_BEFORE: dict[int, CompiledQuery[Message]] = {}


def conversation_lock(*, conversation_id: int, organization_id: int) -> Conversation:
    """The conversation's row under a lock (its messages' sequence numbers, and one reply per
    customer message, are handed out one writer at a time). Conversation.DoesNotExist when it is
    not this organization's."""
    return _CONVERSATION_LOCK.get(pk=conversation_id, organization_id=organization_id)


def message_by_client_id(*, conversation_id: int, client_message_id: str) -> Message | None:
    """The message a client already sent with this id (a resent message is stored once)."""
    return _MESSAGE_BY_CLIENT_ID.one(conversation_id=conversation_id, client_message_id=client_message_id)


def message_with_conversation(*, message_id: int) -> Message:
    """A message with its conversation, the conversation's customer and organization."""
    return _MESSAGE_WITH_CONVERSATION.get(pk=message_id)


def bot_reply_to(*, conversation_id: int, seq: int) -> Message | None:
    """The bot message answering the customer message ``seq`` of this conversation, if one was
    stored (a chat turn asks, under the conversation's lock, before it answers)."""
    return _BOT_REPLY_TO.one(conversation_id=conversation_id, in_reply_to=str(seq))


class EarlierTurn(NamedTuple):
    """A message before the one being answered, as the assistant reads it (``turns_before``)."""

    role: str
    seq: int
    text: str
    metadata: dict[str, Any] | None
    sentiment_score: float | None  # the customer message's recorded sentiment, if any


def turns_before(*, conversation_id: int, seq: int, count: int) -> list[EarlierTurn]:
    """The last ``count`` customer and bot messages before ``seq``, oldest first (role, seq,
    text and metadata), each customer message with its sentiment score where one was recorded
    (in the same query). Tuples, not instances: up to sixteen model instances a chat turn (each
    message and its sentiment record) were made only to be read once."""
    query = _TURNS_BEFORE.get(count)
    if query is None:
        query = _TURNS_BEFORE[count] = CompiledQuery(
            lambda conversation_id, seq: (
                Message.objects.filter(
                    conversation_id=conversation_id, role__in=[MessageRole.BOT, MessageRole.CUSTOMER], seq__lt=seq
                )
                .order_by("-seq")
                .values_list(*EarlierTurn._fields[:-1], "sentiment__score")[:count]
            ),
            conversation_id=int,
            seq=int,
        )
    return [EarlierTurn(*row) for row in reversed(query.tuples(conversation_id=conversation_id, seq=seq))]


def macro_list(*, organization: Organization) -> QuerySet[Macro]:
    return Macro.objects.filter(organization=organization)


def customer_history(*, customer: Customer) -> QuerySet[Ticket]:
    return Ticket.objects.filter(customer=customer).select_related("assignee").prefetch_related("tags")


def conversation_open_ticket(*, conversation_id: int) -> Ticket | None:
    """The conversation's newest ticket that is still being worked, if any."""
    return (
        Ticket.objects.filter(conversation_id=conversation_id, status__in=ACTIVE_STATUSES)
        .order_by("-created_at")
        .first()
    )


# --- the inbox ---------------------------------------------------------------------------

# (key, label) of the inbox's views, in the order the inbox shows them.
INBOX_VIEWS = [
    ("mine", _("Mine")),
    ("unassigned", _("Unassigned")),
    ("open", _("All open")),
    ("waiting", _("Waiting on customer")),
    ("at_risk", _("SLA at risk")),
    ("breached", _("SLA breached")),
    ("vip", _("VIP")),
]


def inbox_view_q(view: str, *, user_id: int | None, now: datetime) -> Q:
    """The tickets one inbox view holds. "All open" is every ticket still being worked but not
    waiting on the customer; "waiting on customer" is the pending ones."""
    active = Q(status__in=ACTIVE_STATUSES)
    return {
        "mine": active & Q(assignee_id=user_id) if user_id else Q(pk__in=[]),
        "unassigned": active & Q(assignee__isnull=True),
        "open": active & ~Q(status=TicketStatus.PENDING),
        "waiting": Q(status=TicketStatus.PENDING),
        "at_risk": sla_at_risk_q(now),
        "breached": sla_breached_q(now),
        "vip": active & ~Q(customer__vip_tier=VipTier.NONE),
    }[view]


def inbox_counts(*, organization: Organization, user_id: int | None, now: datetime | None = None) -> dict[str, int]:
    """Each view's ticket count, in one query."""
    now = now or timezone.now()
    counts = Ticket.objects.filter(organization=organization).aggregate(
        **{key: Count("pk", filter=inbox_view_q(key, user_id=user_id, now=now)) for key, _ in INBOX_VIEWS}
    )
    return {key: int(counts[key] or 0) for key, _ in INBOX_VIEWS}


def sla_due_expression() -> Case:
    """The deadline a ticket is racing: the first response's until someone answers, then the
    resolution's."""
    return Case(
        When(first_responded_at__isnull=True, first_response_due__isnull=False, then=F("first_response_due")),
        default=F("resolution_due"),
    )


def inbox_rows(queryset: QuerySet[Ticket]) -> QuerySet[Ticket]:
    """The inbox's columns beyond the ticket's own: the conversation's newest message (text and
    role) and when the customer last wrote and an agent last answered, as subqueries (for the
    rows of a list page only; the SLA deadline is ``sla_due_expression``)."""
    messages = Message.objects.filter(conversation_id=OuterRef("conversation_id"))
    newest = messages.order_by("-seq")
    return queryset.annotate(
        last_text=Subquery(newest.values("text")[:1], output_field=EncryptedTextField()),
        last_role=Subquery(newest.values("role")[:1]),
        last_customer_at=Subquery(messages.filter(role=MessageRole.CUSTOMER).order_by("-seq").values("created_at")[:1]),
        last_agent_at=Subquery(messages.filter(role=MessageRole.AGENT).order_by("-seq").values("created_at")[:1]),
        last_seq=F("conversation__last_seq"),
    )


def suggestion_outcomes(
    *, since: datetime, until: datetime | None = None, organization: Organization | None = None
) -> dict[str, int]:
    """How many reply suggestions made in [since, until) ended each way (pending, sent, edited,
    discarded), for one organization or all."""
    rows = ReplySuggestion.objects.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if organization is not None:
        rows = rows.filter(organization=organization)
    return dict(rows.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
